"""A realistic staged experiment for the interpret and report tests: harness results files (docs/experiments.md)
for every stage of a kv run, written into a run repo, and the `state["experiment"]` that points at them.

Values are deterministic: per cell and seed, items = mean + seed offset + an item effect shared by every cell
(the items are paired) + noise centred within the seed, so every seed's mean and the cell's mean are exact.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

from agentlab.experiment.analysis import analyze
from agentlab.modules import stats

ITEM_EFFECT = (-0.3, 0.2, -0.1, 0.2)  # shared by all cells: the same items
SEED_OFFSET = {1: (0.0,), 2: (-0.05, 0.05), 3: (-0.05, 0.0, 0.05)}  # per-seed shift, by number of seeds
FULL_BYTES = 1572864
METRICS = {"ppl": {"direction": "lower", "unit": "", "help": "perplexity of the target tokens"},
           "kv_bytes": {"direction": "lower", "unit": "bytes", "help": "KV cache bytes kept", "per_item": False},
           "compression": {"direction": "higher", "unit": "x", "help": "full cache / kept cache"}}
BEST = {"budget": 0.25, "recency": 32, "pool": 5}
PATHS = {s: f"experiments/p1/{s}-{1 if s != 'implement' else 2}/results.json"
         for s in ("baselines", "implement", "sweep", "ablations", "seeds")}


def _ppl(mean: float, n_seeds: int, sigma: float, rng: random.Random) -> dict:
    per_item = []
    for s in range(n_seeds):
        noise = [rng.gauss(0, sigma) for _ in ITEM_EFFECT]
        centre = sum(noise) / len(noise)
        off = SEED_OFFSET[n_seeds][s]
        per_item.append([mean + off + e + z - centre for e, z in zip(ITEM_EFFECT, noise)])
    seed_means = [sum(x) / len(x) for x in per_item]
    return {**stats.summarize(seed_means), "per_item": per_item}


def _once(v: float, n_seeds: int) -> dict:
    return stats.summarize([v] * n_seeds)


def cell(method: str, params: dict, ppl: float, n_seeds: int, rng: random.Random, sigma: float = 0.05,
         role: str = "method") -> dict:
    budget = params.get("budget", 1.0)
    cid = method if role == "reference" else f"{method}[{','.join(f'{k}={v}' for k, v in params.items())}]"
    return {"id": cid, "method": method, "params": params, "role": role, "status": "ok", "error": "",
            "wall_seconds": 1.5,
            "values": {"ppl": _ppl(ppl, n_seeds, sigma, rng), "kv_bytes": _once(FULL_BYTES * budget, n_seeds),
                       "compression": _once(1 / budget, n_seeds)}}


def results(split: str, seeds: list[int], cells: list[dict]) -> dict:
    spec = {"family": "kv", "model": "smollm2", "split": split, "items": len(ITEM_EFFECT), "seeds": seeds,
            "context_tokens": 512, "target_tokens": 64,
            "methods": [{"name": c["method"], "params": c["params"]} for c in cells if c["role"] == "method"]}
    return {"schema": "agentlab.harness/1", "spec": spec, "family": "kv", "primary": "ppl", "reference": "full",
            "metrics": copy.deepcopy(METRICS), "env": {"device": "cpu", "dtype": "float32", "threads": 1, "model": "smollm2",
                                        "wall_seconds": 12.3},
            "cells": cells}


def _methods(budget: float) -> tuple[dict, dict, dict]:
    return {"budget": budget}, {"budget": budget, "window": 32}, {**BEST, "budget": budget}


def stage_files(noisy: bool = False, proposed: float = 14.24) -> dict[str, dict]:
    """stage -> results file. `noisy`: the proposed method is within noise of SnapKV on the test split."""
    rng = random.Random(7)
    h2o, snap, mine = _methods(0.25)

    def val(seeds: int, extra: list[tuple]) -> list[dict]:
        return [cell("full", {}, 13.95, seeds, rng, role="reference")] + [cell(*e, seeds, rng) for e in extra]

    sweep = [cell("full", {}, 13.95, 2, rng, role="reference")]
    for b, (p, h, s) in zip((0.125, 0.25, 0.5), ((16.90, 18.40, 17.60), (14.31, 15.20, 14.80), (14.02, 14.35, 14.10))):
        ph, ps, pm = _methods(b)
        sweep += [cell("proposed", pm, p, 2, rng), cell("h2o", ph, h, 2, rng), cell("snapkv", ps, s, 2, rng)]
    sigma = 0.6 if noisy else 0.05
    seeds = [cell("full", {}, 13.90, 3, rng, role="reference"), cell("h2o", h2o, 15.05, 3, rng),
             cell("snapkv", snap, 14.26 if noisy else 14.60, 3, rng, sigma=sigma),
             cell("proposed", mine, proposed, 3, rng, sigma=sigma)]
    return {
        "baselines": results("val", [0], val(1, [("h2o", h2o, 15.20), ("snapkv", snap, 14.80)])),
        "implement": results("val", [0], val(1, [("h2o", h2o, 15.20), ("snapkv", snap, 14.80),
                                                 ("proposed", mine, 14.31)])),
        "sweep": results("val", [0, 1], sweep),
        "ablations": results("val", [0, 1], val(2, [("proposed", mine, 14.31), ("proposed", {**mine, "recency": 0}, 15.02),
                                                    ("proposed", {**mine, "pool": 1}, 14.66)])),
        "seeds": results("test", [0, 1, 2], seeds),
    }


def experiment_state(files: dict[str, dict], paths: dict[str, str] | None = None) -> dict:
    paths = {**PATHS, **(paths or {})}
    stages = {}
    for name in ("baselines", "implement", "sweep", "ablations", "seeds"):
        path = paths[name]
        node = path.split("/")[2]
        ok = name in files
        stages[name] = {"name": name, "status": "ok" if ok else "failed", "reason": "" if ok else "no valid node",
                        "best": node if ok else None, "results_path": path if ok else None,
                        "used": {"nodes": 1, "minutes": 0.5, "tokens": 800},
                        "nodes": [{"id": node, "stage": name, "kind": "spec", "parent": None,
                                   "status": "ok" if ok else "failed", "dir": path.rsplit("/", 1)[0],
                                   "results_path": path if ok else None}]}
    return {"pass": 1, "family": "kv", "primary": "ppl", "direction": "lower", "knob": "budget", "stage": "seeds",
            "done": "seeds" in files, "feedback": [], "stages": stages,
            "best": {"node": "implement-2", "method": "proposed", "params": dict(BEST)}}


def write_files(repo_dir: Path, files: dict[str, dict], paths: dict[str, str] | None = None) -> None:
    paths = {**PATHS, **(paths or {})}
    for name, res in files.items():
        p = Path(repo_dir) / paths[name]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(res, indent=1))


def run_state(repo_dir: Path | None = None, noisy: bool = False, proposed: float = 14.24,
              paths: dict[str, str] | None = None) -> dict:
    """{"experiment", "results", "analysis"} of the staged run; its files written under repo_dir when given."""
    files = stage_files(noisy=noisy, proposed=proposed)
    if repo_dir is not None:
        write_files(repo_dir, files, paths)
    return {"experiment": experiment_state(files, paths), "results": files["seeds"],
            "analysis": analyze(files["seeds"], proposed_method="proposed")}
