"""Fixtures for the report tests: a scripted OpenAI-compatible server and a fresh run directory."""

import pytest

from tests.fakes.openai_server import ScriptedLLM


@pytest.fixture
def srv():
    with ScriptedLLM() as s:
        yield s
