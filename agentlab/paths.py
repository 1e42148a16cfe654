"""Where the project's data files live (prompts/, templates/, sandbox/).

`prompts/` and `templates/` sit at the top of the source tree and ship inside the wheel as the data
packages `agentlab._prompts` / `agentlab._templates` (setup.py maps them), so a `pip install .`, a wheel or
pipx finds them exactly as a checkout does: through importlib.resources, never relative to the cwd.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent


def _data_dir(name: str, env: str, checkout: str) -> Path:
    """$env, else the data package inside the installed package, else the source checkout's folder."""
    if os.environ.get(env):
        return Path(os.environ[env])
    installed = files("agentlab") / name  # importlib.resources: wherever the package was installed
    if installed.is_dir():
        return Path(str(installed))
    return PROJECT_ROOT / checkout  # a checkout (or an editable install of one)


def prompts_dir() -> Path:
    return _data_dir("_prompts", "AGENTLAB_PROMPTS_DIR", "prompts")


def templates_dir() -> Path:
    return _data_dir("_templates", "AGENTLAB_TEMPLATES_DIR", "templates")


def sandbox_assets_dir() -> Path:
    return PROJECT_ROOT / "sandbox"


def smollm2_cache_dir() -> Path:
    """Where the toolkit keeps its converted SmolLM2 weights ($AGENTLAB_MODEL_CACHE overrides)."""
    return Path(os.environ.get("AGENTLAB_MODEL_CACHE", Path.home() / ".cache" / "agentlab" / "smollm2-135m"))
