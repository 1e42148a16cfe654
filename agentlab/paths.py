"""Where the project's data files live (prompts/, templates/, sandbox/)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent


def prompts_dir() -> Path:
    return Path(os.environ.get("AGENTLAB_PROMPTS_DIR", PROJECT_ROOT / "prompts"))


def templates_dir() -> Path:
    return Path(os.environ.get("AGENTLAB_TEMPLATES_DIR", PROJECT_ROOT / "templates"))


def sandbox_assets_dir() -> Path:
    return PROJECT_ROOT / "sandbox"


def smollm2_cache_dir() -> Path:
    """Where the toolkit keeps its converted SmolLM2 weights ($AGENTLAB_MODEL_CACHE overrides)."""
    return Path(os.environ.get("AGENTLAB_MODEL_CACHE", Path.home() / ".cache" / "agentlab" / "smollm2-135m"))
