"""AgentLab: an autonomous research agent for LLM-efficiency research."""

__version__ = "0.1.0"
