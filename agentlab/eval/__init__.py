"""Evaluation harnesses (`agentlab eval coc`)."""
