"""One node of the experiment search: write its files and harness spec, run the harness in the sandbox,
read the results file it left (hostile input), score it against the baselines measured in the same file.

A node is a directory `repo/experiments/p<pass>/<stage>-<k>/` and one commit. Its job id is
`<run>-x<pass>-<stage>-<k>`: a resumed run that reaches the same node reuses the job's saved result (or
reattaches to it) instead of running it again.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from agentlab.paths import smollm2_cache_dir
from agentlab.phases.common import RunContext, clip
from agentlab.sandbox import Job, Limits, get_backend
from agentlab.sandbox.safe_files import UntrustedFileError, read_json, validation_message, write_new
from agentlab.state import Node

RESULTS = "results.json"
SPEC = "spec.json"
MAX_RESULTS_BYTES = 4_000_000
PROPOSED = "proposed"  # the label (or plugin method name) of the method under study
_ID = re.compile(r"^[A-Za-z0-9_.:/@+\-\[\]=,() ]{1,200}$")


class Values(BaseModel):
    per_seed: list[float | None] = Field(default_factory=list, max_length=10)
    mean: float | None = None
    std: float | None = None
    ci95: list[float] | None = Field(None, min_length=2, max_length=2)
    n: int = 0
    per_item: list[list[float | None]] = Field(default_factory=list, max_length=10)

    @field_validator("per_item")
    @classmethod
    def _bounded(cls, v: list[list]) -> list[list]:
        if any(len(row) > 256 for row in v):
            raise ValueError("at most 256 items per seed")
        return v


class Cell(BaseModel):
    id: str = Field(pattern=_ID.pattern)
    method: str = Field(max_length=80)
    label: str = Field("", max_length=80)
    params: dict[str, Any] = Field(default_factory=dict, max_length=32)
    role: Literal["reference", "method"] = "method"
    status: Literal["ok", "failed"]
    error: str = Field("", max_length=2000)
    wall_seconds: float = 0.0
    values: dict[str, Values] = Field(default_factory=dict, max_length=16)


class HarnessFile(BaseModel):
    """The parts of a harness results file (docs/experiments.md) the engine relies on, checked."""

    schema_: Literal["agentlab.harness/1"] = Field(alias="schema")
    family: str = Field(max_length=40)
    primary: str = Field(max_length=64)
    reference: str = Field(max_length=200)
    metrics: dict[str, dict[str, Any]] = Field(max_length=16)
    env: dict[str, Any] = Field(default_factory=dict)
    cells: list[Cell] = Field(min_length=1, max_length=80)


def is_proposed(cell: dict) -> bool:
    """A cell of the method under study (label `proposed`: its id is `proposed` or `proposed[<swept>]`)."""
    from agentlab.experiment.analysis import is_proposed as _is

    return _is(cell, PROPOSED)


def slug(text: str, limit: int = 40) -> str:
    """A cell label from free text (an ablation's name in the plan): [a-z0-9-] only."""
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return out or "unnamed"


def model_mounts(model: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """The host's converted SmolLM2 weights, read-only, for a harness on smollm2 (no mount for tiny-llama)."""
    cache = smollm2_cache_dir()
    if model == "smollm2" and (cache / "config.json").is_file():
        return (str(cache),), {"AGENTLAB_MODEL_CACHE": str(cache)}
    return (), {}


def read_results(workdir: Path) -> tuple[dict | None, str]:
    """(results, "") for a valid harness results file; (None, reason) otherwise. No reason quotes the file."""
    try:
        data = read_json(workdir, RESULTS, max_bytes=MAX_RESULTS_BYTES)
    except UntrustedFileError as exc:
        if exc.kind == "missing":
            return None, "the harness wrote no results.json"
        return None, f"results.json was refused: {exc}"
    try:
        HarnessFile.model_validate(data)
    except ValidationError as exc:
        return None, f"results.json is not a harness results file: {validation_message(exc, 600)}"
    return data, ""  # type: ignore[return-value]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def cell_mean(cell: dict, metric: str) -> float | None:
    v = ((cell.get("values") or {}).get(metric) or {}).get("mean")
    return float(v) if _finite(v) and cell.get("status") == "ok" else None


def better(a: float, b: float, direction: str) -> bool:
    return a < b if direction == "lower" else a > b


def relative(m: float, b: float, direction: str) -> float:
    """How much better `m` is than `b`, as a share of |b| (positive = better)."""
    if b == 0:
        return 0.0 if m == b else math.copysign(1.0, (b - m) if direction == "lower" else (m - b))
    return ((b - m) if direction == "lower" else (m - b)) / abs(b)


def best_cell(cells: list[dict], metric: str, direction: str, pick) -> dict | None:
    """The cell with the best mean of `metric` among those `pick` accepts."""
    out = None
    for c in cells:
        m = cell_mean(c, metric)
        if m is not None and pick(c) and (out is None or better(m, cell_mean(out, metric), direction)):
            out = c
    return out


def score(results: dict, knob: str | None = None, knob_value: Any = None) -> tuple[float | None, dict]:
    """The proposed method's primary metric relative to the best baseline in the same file, at the same knob
    value (the reference when no baseline ran): (score, {"cell", "mean", "against", "against_mean"})."""
    primary, cells = results["primary"], results["cells"]
    direction = (results["metrics"].get(primary) or {}).get("direction", "lower")

    def at_knob(c: dict) -> bool:
        return knob is None or knob_value is None or knob not in (c.get("params") or {}) \
            or c["params"][knob] == knob_value

    prop = best_cell(cells, primary, direction, lambda c: is_proposed(c) and at_knob(c))
    base = best_cell(cells, primary, direction, lambda c: c.get("role") == "method" and not is_proposed(c)
                     and at_knob(c)) or best_cell(cells, primary, direction, lambda c: c.get("role") == "reference")
    if prop is None or base is None:
        return None, {}
    m, b = cell_mean(prop, primary), cell_mean(base, primary)
    return relative(m, b, direction), {"cell": prop["id"], "mean": m, "against": base["id"], "against_mean": b}


def timed(metric: str, results: dict) -> bool:
    """Whether a metric is a wall-clock measurement (its unit is per second, or it is a time)."""
    unit = str(((results.get("metrics") or {}).get(metric) or {}).get("unit", ""))
    return unit.endswith("/s") or unit in ("s", "ms") or metric.endswith(("_per_s", "_seconds", "_ms"))


def reference_drift(results: dict, trusted: dict | None) -> str:
    """A reason when the reference cell differs from a plugin-free run on the same items (a plugin that
    tampered with the measurement, or nondeterminism); "" when they agree or cannot be compared."""
    if not trusted:
        return ""
    same = ("model", "split", "items", "seeds", "context_tokens", "target_tokens")
    if any((results.get("spec") or {}).get(k) != (trusted.get("spec") or {}).get(k) for k in same):
        return ""
    ref = {c["id"]: c for c in results["cells"]}.get(results["reference"])
    tref = {c["id"]: c for c in trusted["cells"]}.get(trusted["reference"])
    if not ref or not tref:
        return "the reference cell is missing from results.json"
    for metric, v in (tref.get("values") or {}).items():
        if timed(metric, trusted):
            continue  # wall-clock speed differs between any two runs
        a, b = ((ref.get("values") or {}).get(metric) or {}).get("mean"), v.get("mean")
        if _finite(b) and not (_finite(a) and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)):
            return (f"the reference's {metric} differs from the plugin-free baselines run on the same items: "
                    "the method changed how the harness measures (results discarded)")
    return ""


def run_node(ctx: RunContext, node: Node, spec: dict, files: dict[str, str], trusted: dict | None = None,
             knob: str | None = None, knob_value: Any = None) -> tuple[Node, dict | None]:
    """Write the node's files and spec, run the harness on them, check and score the results, commit."""
    s, run = ctx.settings, ctx.run
    workdir = run.repo_dir / node["dir"]
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in {**files, SPEC: json.dumps(spec, indent=1, sort_keys=True)}.items():
        write_new(workdir, name, text.encode())  # never through a link a job left
    plugins = [a for f in sorted(files) if f.endswith(".py") and "/" not in f for a in ("--plugin", f)]
    mounts, env = model_mounts(str(spec.get("model", "")))
    job = Job(id=node["job_id"], workdir=str(workdir),
              command=["python", "-m", "agentlab.modules.harness", SPEC, "--out", RESULTS, *plugins],
              readonly_paths=mounts, env={**env, "AGENTLAB_HARNESS_THREADS": "1"}, inputs=(SPEC, *sorted(files)),
              limits=Limits(wall_seconds=s.attempt_timeout, memory_mb=s.attempt_memory_mb, gpus=s.attempt_gpus),
              labels={"agentlab.run": run.id, "agentlab.node": node["id"]})
    ctx.progress("experiment", f"{node['id']} ({node['kind']}): running the harness in {s.sandbox}")
    res = get_backend(s.sandbox).run(job)
    results, reason = None, f"the harness {res.reason}, exit code {res.exit_code}"
    refused = [x for x in res.not_collected if x.startswith(RESULTS + ":")]
    if res.ok:
        results, reason = read_results(workdir)
        if results is None and refused:
            reason = f"results.json was not accepted from the sandbox ({clip(refused[0], 200)}); it must be a regular file"
    elif res.exit_code == 2:
        lines = res.stderr_tail.strip().splitlines()
        reason = "the harness refused the spec: " + clip(lines[-1] if lines else "", 600)
    if results is not None:
        reason = reference_drift(results, trusted)
        if reason:
            results = None
    node.update({"wall_seconds": res.wall_seconds, "error_tail": clip(res.stderr_tail, 2000),
                 "not_collected": [clip(x, 200) for x in res.not_collected[:10]],
                 "files": sorted(files), "results_path": f"{node['dir']}/{RESULTS}" if results else None})
    _finish(node, results, reason, knob, knob_value)
    node["commit"] = run.commit([node["dir"]], f"{node['id']} ({node['kind']}): {node['status']}"
                                + (f" score {node['score']:+.4g}" if node.get("score") is not None else ""))
    return node, results


def _finish(node: Node, results: dict | None, reason: str, knob: str | None, knob_value: Any) -> None:
    """Status, reason and score of a node from its (checked) results."""
    if results is None:
        node.update(status="failed", reason=reason or "no results", score=None)
        return
    failed = [c for c in results["cells"] if c["status"] == "failed"]
    node["score"], node["primary"] = score(results, knob, knob_value)
    wanted = [c for c in results["cells"] if is_proposed(c)]
    bad_prop = [c for c in wanted if c["status"] == "failed"]
    if wanted and not [c for c in wanted if c["status"] == "ok"]:
        node.update(status="failed", reason="the proposed method failed in every cell: " + clip(bad_prop[0]["error"], 800))
        return
    if not wanted and failed and len(failed) == len(results["cells"]) - 1:
        node.update(status="failed", reason="every method failed: " + clip(failed[0]["error"], 800))
        return
    node.update(status="ok", reason="" if not failed else
                f"{len(failed)} cell(s) failed: " + "; ".join(f"{c['id']}: {clip(c['error'], 160)}" for c in failed[:3]))
