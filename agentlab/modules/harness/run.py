"""The harness core: one model, one data split, every cell of a spec through the same measurement code.

Family-agnostic: everything method-specific goes through the ``Family`` protocol (``prepare`` the items of
a seed once, ``evaluate`` every cell on them). The core owns the model, the split, the seeds, timing,
failures, statistics (``agentlab.modules.stats``) and the results file (``docs/experiments.md``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from agentlab.modules import stats
from agentlab.modules.harness.family import Family, SpecError, get_family
from agentlab.modules.harness.spec import HarnessSpec, cells, load_spec

__api__ = False

SCHEMA = "agentlab.harness/1"
ERROR_CHARS = 500


class HarnessError(RuntimeError):
    """The run cannot produce results: the reference method failed, or the items could not be prepared."""


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]


# ---- plugins --------------------------------------------------------------------------------------------
def _plugin_line(exc: BaseException, path: Path) -> str:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" (line {exc.lineno})"
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f" (line {lines[-1]})" if lines else ""


def load_plugins(paths: Iterable[str | os.PathLike]) -> list:
    """Import each plugin file by path, so the methods it registers (``@kv_method(...)``) become valid names.

    Returns the modules; a missing file or one that fails to import is a ``SpecError("plugin", ...)``.
    """
    mods = []
    for p in paths:
        path = Path(p).resolve()
        if not path.is_file():
            raise SpecError("plugin", f"{p}: no such file")
        name = f"agentlab_harness_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise SpecError("plugin", f"{p}: not a Python file")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise SpecError("plugin", f"{p}{_plugin_line(exc, path)}: {_error(exc)}") from None
        mods.append(mod)
    return mods


# ---- model and data -------------------------------------------------------------------------------------
def _threads() -> int | None:
    raw = os.environ.get("AGENTLAB_HARNESS_THREADS", "1").strip()
    return None if raw in ("", "0", "auto") else int(raw)


def load_model(name: str, device: str = "auto"):
    """``(model, encode)`` for a spec's ``model``: ``encode(text)`` gives 1-D token ids (LongTensor)."""
    import torch

    from agentlab.modules import data, models

    if name == "tiny-llama":  # random weights (seed 0), UTF-8 bytes as tokens: for fast tests
        model = models.tiny_llama(vocab=256, layers=2, hidden=128, heads=4, kv_heads=2, intermediate=256, seed=0)
        model = model.to(models.select_device(device)).eval()
        return model, lambda text: torch.tensor(list(text.encode("utf-8")), dtype=torch.long)
    model, tok = models.load_smollm2(device=device)
    return model, lambda text: data.token_ids(tok, text)[0]


def split_tokens(encode: Callable[[str], Any], split: str):
    """``(tokens, calib)``: the eval text's first half (``val``) or second half (``test``), and the calib ids."""
    from agentlab.modules import data

    ids = encode(data.load_text("eval"))
    half = int(ids.shape[0]) // 2
    return (ids[:half] if split == "val" else ids[half:]), encode(data.load_text("calib"))


def _env(model, spec: HarnessSpec, wall: float) -> dict:
    import torch
    import transformers

    p = next(model.parameters())
    name = torch.cuda.get_device_name(p.device) if p.device.type == "cuda" else (
        platform.processor() or platform.machine())
    return {"device": p.device.type, "device_name": name, "dtype": str(p.dtype).replace("torch.", ""),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "model": spec.model, "wall_seconds": round(wall, 3)}


# ---- measuring --------------------------------------------------------------------------------------------
def _checked(out: Any, family: Family, metrics: list[str], n_items: int) -> dict[str, list[float]]:
    """The family's output for the spec's metrics, as floats; ValueError when a metric is missing or misshapen."""
    if not isinstance(out, dict):
        raise ValueError(f"{type(family).__name__}.evaluate returned {type(out).__name__}, not a dict")
    got = {}
    for m in metrics:
        if m not in out:
            raise ValueError(f"{type(family).__name__}.evaluate returned no {m!r} (got {sorted(out)})")
        vals = out[m] if isinstance(out[m], (list, tuple)) else [out[m]]
        want = n_items if family.metrics[m].per_item else 1
        if len(vals) != want:
            raise ValueError(f"{type(family).__name__}.evaluate returned {len(vals)} values of {m!r}, not {want}")
        got[m] = [float(v) for v in vals]
    return got


def _timed(family: Family, model, items, method: str, params: dict, seed: int):
    import torch

    torch.manual_seed(seed)  # a method that samples is reproducible per seed
    cuda = next(model.parameters()).device.type == "cuda"
    start = time.perf_counter()
    out = family.evaluate(model, items, method, dict(params))
    if cuda:
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def _fmt_values(got: dict[str, list[float]]) -> str:
    return ", ".join(f"{m}={sum(v) / len(v):.4g}" for m, v in got.items())


def _run_seed(family, model, tokens, calib, spec, seed, plan, state, log) -> None:
    import torch

    torch.manual_seed(seed)
    try:
        items = family.prepare(model, tokens, calib, spec, seed)
    except Exception as exc:
        raise HarnessError(f"preparing the items of seed {seed} failed: {_error(exc)}") from exc
    n_items = len(items.items)
    for cid, method, params in plan:
        st = state[cid]
        if st["error"]:
            continue
        try:
            out, dt = _timed(family, model, items, method, params, seed)
            got = _checked(out, family, spec.metrics, n_items)
        except Exception as exc:
            st["error"] = _error(exc)
            log(f"seed {seed} {cid}: FAILED {st['error']}\n" + "".join(traceback.format_exception(exc, limit=-4)))
            if cid == plan[0][0]:
                raise HarnessError(f"the reference {cid!r} failed on seed {seed}: {st['error']}") from exc
            continue
        st["wall"] += dt
        for m, vals in got.items():
            st["values"].setdefault(m, []).append(vals)
        log(f"seed {seed} {cid}: {_fmt_values(got)} ({dt:.2f}s)")


def _values(family: Family, per_seed_lists: dict[str, list[list[float]]]) -> dict:
    out = {}
    for m, seeds in per_seed_lists.items():
        v = stats.summarize([sum(s) / len(s) for s in seeds])
        if family.metrics[m].per_item:
            v["per_item"] = seeds
        out[m] = v
    return out


def _cell(family: Family, cid: str, method: str, params: dict, st: dict) -> dict:
    failed = bool(st["error"])
    return {"id": cid, "method": method, "params": params, "role": "reference" if cid == family.reference else "method",
            "status": "failed" if failed else "ok", "error": st["error"], "wall_seconds": round(st["wall"], 4),
            "values": {} if failed else _values(family, st["values"])}


def _metric_info(family: Family, names: list[str]) -> dict:
    return {m: {"direction": i.direction, "unit": i.unit, "help": i.help, "per_item": i.per_item}
            for m, i in ((m, family.metrics[m]) for m in names)}


def run_spec(spec, plugins: Iterable[str | os.PathLike] = (), log: Callable[[str], Any] = print) -> dict:
    """Measure every cell of ``spec`` (dict, JSON text, path or ``HarnessSpec``) and return the results dict.

    Plugins are imported first, then the spec is validated (``SpecError``); a failing cell is recorded as
    failed and the others still run; a failing reference raises ``HarnessError``.
    """
    import torch

    t0 = time.perf_counter()
    load_plugins(plugins)
    spec = load_spec(spec)
    family = get_family(spec.family)
    plan = cells(spec, family)
    threads = _threads()
    if threads:
        torch.set_num_threads(threads)
    model, encode = load_model(spec.model, os.environ.get("AGENTLAB_HARNESS_DEVICE", "auto"))
    tokens, calib = split_tokens(encode, spec.split)
    log(f"{family.name}: {len(plan)} cells x {len(spec.seeds)} seeds x {spec.items} items on {spec.model} "
        f"({spec.split}, {int(tokens.shape[0])} tokens)")
    state = {cid: {"error": "", "wall": 0.0, "values": {}} for cid, _, _ in plan}
    with torch.no_grad():
        for seed in spec.seeds:
            _run_seed(family, model, tokens, calib, spec, seed, plan, state, log)
    return {"schema": SCHEMA, "spec": spec.model_dump(), "family": family.name, "primary": spec.primary,
            "reference": family.reference, "metrics": _metric_info(family, spec.metrics),
            "env": _env(model, spec, time.perf_counter() - t0),
            "cells": [_cell(family, cid, m, p, state[cid]) for cid, m, p in plan]}


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_results(path: str | os.PathLike, results: dict) -> Path:
    """Write ``results`` as JSON (non-finite numbers as null, so the file is strict JSON); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_finite(results), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return out
