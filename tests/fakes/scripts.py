"""A full research run's worth of scripted replies: a plan with baselines and an ablation, a baselines spec,
a real method.py for the harness (fenced code, as coder models write it), reviews that accept; every other
schema answered by a minimal valid instance (autoreply)."""

from __future__ import annotations

from typing import Any

from tests.fakes.autoreply import install
from tests.fakes.openai_server import ScriptedLLM

PLAN = {
    "title": "Sink plus recency KV eviction on a small model",
    "hypothesis": "Keeping 4 sink tokens and the most recent tokens keeps perplexity close to the full cache at 4x.",
    "method": "Score context tokens by recency and always keep the first tokens (attention sinks).",
    "metrics": [{"name": "ppl", "direction": "lower", "description": "perplexity of the continuation"},
                {"name": "kv_bytes", "direction": "lower", "description": "bytes the cache holds"}],
    "baselines": ["H2O", "key-norm eviction"],
    "ablations": ["no attention sinks"],
    "experiment_outline": "Compare against H2O and key-norm eviction at a quarter of the cache.",
    "risks": "Small model, short texts.",
}

FAMILY = {"family": "kv", "rationale": "KV-cache eviction"}
BASELINES = {"baselines": ["h2o", "key_norm"], "primary": "ppl", "rationale": "the plan's baselines"}

# The proposed method: recency scores, the first `sink` tokens always kept (a StreamingLLM-style score).
METHOD = '''import torch

from agentlab.modules.methods import kv_method


@kv_method("proposed")
def score(ctx, sink: int = 4):
    b, h, t = ctx.keys.shape[0], ctx.keys.shape[1], ctx.tokens
    s = torch.arange(t, dtype=torch.float32).expand(b, h, t).clone()
    return ctx.protect(s, first=sink) if sink > 0 else s
'''


def fenced(files: dict[str, str], prose: str = "Here is the implementation.") -> str:
    """A reply the way coder models write it: prose, then one named fenced block per file."""
    return prose + "\n\n" + "\n".join(f"```python {name}\n{code}```\n" for name, code in files.items()) + \
        "\nThe harness will measure it."


METHOD_REPLY = fenced({"method.py": METHOD})

GOOD_REVIEW = {"summary": "A small but honest study.", "strengths": ["clear"], "weaknesses": ["toy data"],
               "soundness": 3, "presentation": 3, "contribution": 2, "overall": 7, "confidence": 3}


def code_replies(*replies: str):
    """A `text` reply callable that answers the experiment's code prompts in order (the last repeats)."""
    queue = list(replies)

    def reply(body: dict, schema: Any) -> str:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return reply


def full_run(srv: ScriptedLLM, **overrides: Any) -> ScriptedLLM:
    replies: dict[str, Any] = {
        "Plan": PLAN,
        "FamilyChoice": FAMILY,
        "BaselineSpec": BASELINES,
        "text": METHOD_REPLY,
        "AblationChoice": {"params": {"sink": 0}, "rationale": "no sinks"},
        "Review": GOOD_REVIEW,
        "Interpretation": {"summary": "The method was measured against H2O and key-norm eviction.",
                           "verdict": "inconclusive", "key_findings": ["see results"], "caveats": ["small model"]},
    }
    replies.update(overrides)
    return install(srv, replies)
