"""Host side of the sandboxes that run untrusted, LLM-written experiment code."""

from agentlab.sandbox.base import Job, JobResult, Limits, Sandbox, SandboxUnavailable, available_backends, get_backend

__all__ = ["Job", "JobResult", "Limits", "Sandbox", "SandboxUnavailable", "get_backend", "available_backends"]
