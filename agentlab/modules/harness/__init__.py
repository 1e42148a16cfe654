"""The toolkit's evaluation harness: a declarative spec runs every cell (methods x settings x seeds) through
the same measurement code and writes one results file (``docs/experiments.md``).

    python -m agentlab.modules.harness spec.json --plugin method.py --out results.json

``load_spec`` validates a spec (``SpecError`` names the field), ``cells`` expands its sweeps, ``run_spec``
measures it and ``write_results`` writes ``results.json``. Families (kv, prune, attention, speculative) are
registered in ``family.HARNESS_FAMILIES``; importing this package imports neither torch nor a family.
"""

from __future__ import annotations

from agentlab.modules.harness.family import HARNESS_FAMILIES, Family, Items, MetricInfo, SpecError, get_family
from agentlab.modules.harness.spec import MAX_CELLS, HarnessSpec, MethodSpec, cells, load_spec

__api__ = False

__all__ = ["HARNESS_FAMILIES", "Family", "Items", "MetricInfo", "SpecError", "get_family", "MAX_CELLS",
           "HarnessSpec", "MethodSpec", "cells", "load_spec", "run_spec", "write_results", "load_plugins",
           "HarnessError"]


def __getattr__(name: str):
    if name in ("run_spec", "write_results", "load_plugins", "HarnessError"):
        from agentlab.modules.harness import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
