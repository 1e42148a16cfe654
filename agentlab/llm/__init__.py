"""The LLM layer: any OpenAI-compatible endpoint, structured outputs with repair, retries, budgets, ledger."""

from agentlab.llm.budget import Budget, BudgetExceeded
from agentlab.llm.client import LLM, LLMError
from agentlab.llm.ledger import Ledger

__all__ = ["LLM", "LLMError", "Ledger", "Budget", "BudgetExceeded"]
