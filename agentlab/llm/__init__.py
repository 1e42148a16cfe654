"""The LLM layer: `LLM` (memo, ledger, budgets, retries, structured-output ladder, JSON repair) above a
transport seam (`ChatBackend`) with two built-in backends: any OpenAI-compatible endpoint and the
embedded SmolLM2 server. More backends come from the `agentlab.llm_backends` entry-point group."""

from agentlab.llm.backend import (
    LLM_BACKENDS,
    BackendConfig,
    BackendError,
    CapabilityMissing,
    ChatBackend,
    ChatReply,
    ChatRequest,
    FinalError,
    TransientError,
    Usage,
)
from agentlab.llm.budget import Budget, BudgetExceeded
from agentlab.llm.client import LLM, LLMError
from agentlab.llm.ledger import Ledger

__all__ = ["LLM", "LLMError", "Ledger", "Budget", "BudgetExceeded", "LLM_BACKENDS", "BackendConfig",
           "BackendError", "CapabilityMissing", "ChatBackend", "ChatReply", "ChatRequest", "FinalError",
           "TransientError", "Usage"]
