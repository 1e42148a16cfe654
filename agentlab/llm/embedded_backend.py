"""The `embedded` backend: the local SmolLM2 server started by `agentlab.endpoint.resolve_endpoint`.

The model runs in its own process (`agentlab.llm.embedded_server`, int4 ONNX on onnxruntime-genai):
onnxruntime, its threads and its memory stay out of the agent process, a crash or kill -9 of either side is contained, and the process group
is stopped as a whole. That server speaks the OpenAI wire format, so this backend reuses the
OpenAI-compatible transport and its error mapping, and differs in what it knows up front:

- its capabilities are certain, not probed: json_schema and json_object are constrained decoding
  (onnxruntime-genai guidance): a reply that ends normally is JSON matching the schema (every
  required property, no others); one cut off by max_tokens comes back with finish_reason "length",
  which the LLM layer re-asks like any truncated reply. A schema guidance cannot compile is a 400
  naming response_format, i.e. a missing capability for that call, and the ladder steps down;
- a prompt that does not fit the small context is final, with advice that fits a 135M demo model;
- `check` names the demonstration model.

`resolve_endpoint` selects it by handing the LLM layer the URL `embedded+http://127.0.0.1:PORT/v1`.
"""

from __future__ import annotations

import openai

from agentlab.llm.backend import BackendConfig, BackendError, ChatRequest, FinalError
from agentlab.llm.openai_backend import OpenAIBackend


class EmbeddedBackend(OpenAIBackend):
    """The embedded SmolLM2-135M server, behind the same protocol as any OpenAI-compatible endpoint."""

    name = "embedded"
    modes = frozenset(("json_schema", "json_object", "prompt"))

    def __init__(self, config: BackendConfig) -> None:
        from agentlab.llm.embedded import API_KEY

        super().__init__(BackendConfig(base_url=config.base_url, api_key=config.api_key or API_KEY,
                                       timeout=config.timeout, name=config.name))

    def classify(self, exc: openai.APIError, request: ChatRequest) -> BackendError:
        err = super().classify(exc, request)
        if isinstance(err, FinalError) and "too long" in err.message:
            return FinalError(f"{err.message}. The embedded demonstration model has a small context; "
                              "use a real endpoint (OPENAI_BASE_URL) for longer inputs.", status=err.status)
        return err

    def check(self, model: str) -> tuple[bool, str]:
        ok, detail = super().check(model)
        return ok, f"embedded demonstration model: {detail}"
