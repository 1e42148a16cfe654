"""The experiment toolkit: KV-cache compression, pruning, speculative decoding, window attention, metrics.

Experiments import submodules by name (``from agentlab.modules import kv, prune, speculative, attention,
metrics``). Importing this package is cheap: nothing here imports torch; each submodule is imported on
first attribute access, so the orchestrator (which may run without torch) can import
``agentlab.modules.apidoc`` freely. The submodules are the files of this package (a new file is a new
submodule, and ``apidoc`` documents it unless it sets ``__api__ = False``).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

SUBMODULES: tuple[str, ...] = tuple(m.name for m in pkgutil.iter_modules(__path__))

__all__ = list(SUBMODULES)


def __getattr__(name: str) -> ModuleType:
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(SUBMODULES))
