"""Experiment-phase benchmark: how well the staged tree search does on one fixed idea per harness family.

For each family (kv eviction, pruning, speculative decoding, window attention) it drives one research run
in-process, from the idea through literature and plan to the experiment checkpoint (the sandbox and the
harness are real; literature comes from the fake arXiv on 127.0.0.1), with either
  - the scripted LLM (default): the replies of tests/fakes/scripts.full_run (kv) and
    tests/fakes/family_scripts.family_run (the others), a real method.py per family; or
  - `--embedded`: the embedded SmolLM2-135M model for every LLM call (literature and plan included), started
    the way the CLI does when no OPENAI_BASE_URL is set (agentlab.endpoint.resolve_endpoint). Slow on a CPU.
The harness measures on `--harness-model` (tiny-llama by default: a random tiny Llama, seconds per node;
smollm2 for the real model).

It prints, per family and LLM: the valid-node rate (ok nodes / nodes, all stages), the nodes (ok / all), the
wall minutes and the LLM tokens of every stage (from each stage's `used`), and whether the run reached the
experiment checkpoint with every stage ok, or where it stopped and why.

    .venv/bin/python benchmarks/experiment.py [--families kv prune speculative attention] [--embedded]
        [--harness-model tiny-llama|smollm2] [--drafts 2] [--seeds 3] [--items 4] [--implement-nodes 6]
        [--json out.json] [--workdir DIR] [--verbose]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tests.fakes.arxiv_server import FakeArxiv  # noqa: E402
from tests.fakes.family_scripts import FAMILIES, family_run  # noqa: E402
from tests.fakes.openai_server import ScriptedLLM  # noqa: E402
from tests.fakes.scripts import full_run  # noqa: E402

STAGES = ("baselines", "implement", "sweep", "ablations", "seeds")
IDEAS = {
    "kv": "Does keeping attention sinks plus the most recent tokens beat H2O at a quarter of the KV cache?",
    "prune": FAMILIES["prune"]["idea"],
    "speculative": FAMILIES["speculative"]["idea"],
    "attention": FAMILIES["attention"]["idea"],
}
_ENV_CLEARED = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "AGENTLAB_CONFIG", "AGENTLAB_MODEL", "AGENTLAB_EXPERIMENT_MODEL")


@contextlib.contextmanager
def patched_environ(env: dict[str, str]) -> Iterator[None]:
    """os.environ with the LLM variables cleared and `env` applied; restored afterwards."""
    saved = dict(os.environ)
    for k in _ENV_CLEARED:
        os.environ.pop(k, None)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_settings(args: argparse.Namespace, workdir: Path, family: str, endpoint: dict[str, str]):
    from agentlab.config import load_settings

    over: dict[str, Any] = {"checkpoints": "experiment", "max_papers": args.papers, "drafts": args.drafts,
                            "seeds": args.seeds, "harness_items": args.items, "experiment_model": args.harness_model,
                            "runs_dir": str(workdir / family / "runs"),
                            "stage_budgets": {"implement": {"nodes": args.implement_nodes}}}
    over.update(endpoint)
    return load_settings(None, over, env=dict(os.environ))


def stage_rows(exp: dict) -> dict[str, dict]:
    """Per stage: status, reason, nodes, ok nodes, minutes and tokens (from `used`)."""
    out = {}
    for name in STAGES:
        st = (exp.get("stages") or {}).get(name)
        if st is None:
            continue
        used = st.get("used") or {}
        out[name] = {"status": st.get("status"), "reason": st.get("reason") or "", "nodes": len(st["nodes"]),
                     "ok": sum(n.get("status") == "ok" for n in st["nodes"]),
                     "kinds": [n.get("kind") for n in st["nodes"]],
                     "minutes": used.get("minutes"), "tokens": used.get("tokens")}
    return out


def verdict(payload: dict | None, exp: dict, status: str) -> tuple[bool, str]:
    """(reached the experiment checkpoint with every stage ok, where it stopped and why otherwise)."""
    stages = exp.get("stages") or {}
    all_ok = bool(exp.get("done")) and all((stages.get(s) or {}).get("status") in ("ok", "skipped") for s in STAGES)
    p = payload or {}
    if p.get("kind") == "checkpoint" and p.get("phase") == "experiment" and all_ok:
        return True, "experiment checkpoint, every stage ok"
    failed = next((s for s in STAGES if (stages.get(s) or {}).get("status") == "failed"), None)
    where = f"experiment stage {failed}" if failed else f"phase {p.get('phase') or '?'}"
    return False, f"{status} at {where} ({p.get('kind', 'no checkpoint')}): {str(p.get('message') or '')[:300]}"


def one_run(args: argparse.Namespace, workdir: Path, family: str, endpoint: dict[str, str], llm: str) -> dict:
    """Drive one run of `family` to the experiment checkpoint; its numbers."""
    from agentlab.runner import drive, pending_interrupt
    from agentlab.runs import RunDir

    settings = run_settings(args, workdir, family, endpoint)
    run = RunDir.create(Path(settings.runs_dir), f"{family} benchmark")
    settings.save(run.settings_path)
    console = Console(file=sys.stderr if args.verbose else io.StringIO())
    t0 = time.perf_counter()
    try:
        out = drive(run, settings, {"idea": IDEAS[family]}, console, live=False)
        status = out.status
    except Exception as exc:  # noqa: BLE001 - a benchmark records a crash as where the run stopped
        status = f"crashed ({type(exc).__name__}: {str(exc)[:300]})"
    wall = time.perf_counter() - t0
    payload, values = pending_interrupt(run, settings)
    exp = values.get("experiment") or {}
    rows = stage_rows(exp)
    plan = values.get("plan") or {}
    nodes, ok = sum(r["nodes"] for r in rows.values()), sum(r["ok"] for r in rows.values())
    reached, why = verdict(payload, exp, status)
    return {"family": family, "llm": llm, "harness_model": settings.experiment_model,
            "family_chosen": exp.get("family"), "status": status, "reached": reached, "why": why,
            "valid_node_rate": round(ok / nodes, 3) if nodes else None, "nodes": nodes, "ok_nodes": ok,
            "wall_minutes": round(wall / 60, 2), "stages": rows, "run_dir": str(run.path),
            "plan": {k: plan.get(k) for k in ("title", "baselines", "ablations")},
            "baselines": exp.get("baselines"), "proposal": exp.get("proposal") or "method.py (code)",
            "node_reasons": {n["id"]: n.get("reason") for st in (exp.get("stages") or {}).values()
                             for n in st["nodes"] if n.get("status") != "ok"},
            "conclusions": [f"proposed vs {c.get('baseline')}: {c.get('conclusion')}"
                            for c in (values.get("analysis") or {}).get("comparisons") or []]}


@contextlib.contextmanager
def llm_endpoint(embedded: bool, families: list[str]) -> Iterator[tuple[dict[str, str], Any]]:
    """(settings overrides that point at the LLM, a callable scripting it for a family)."""
    if not embedded:
        with ScriptedLLM() as srv:
            def script(family: str) -> None:
                srv.requests.clear()
                full_run(srv) if family == "kv" else family_run(srv, family)

            yield {"base_url": srv.base_url, "api_key": "sk-bench", "model": "scripted-model"}, script
        return
    from agentlab.config import load_settings
    from agentlab.endpoint import resolve_endpoint

    base = load_settings(None, {"base_url": None}, env=dict(os.environ))
    with resolve_endpoint(base, Console(file=sys.stderr)) as eff:  # starts the embedded SmolLM2 server
        over = {"base_url": eff.base_url, "api_key": eff.api_key, "model": eff.model}
        over.update({k: getattr(eff, k) for k in _embedded_keys() if hasattr(eff, k)})
        yield over, lambda family: None


def _embedded_keys() -> list[str]:
    from agentlab.endpoint import EMBEDDED_PROFILE

    return list(EMBEDDED_PROFILE)


def run_all(args: argparse.Namespace) -> list[dict]:
    results = []
    llm = "embedded" if args.embedded else "scripted"
    with _workdir(args.workdir) as tmp, FakeArxiv() as fa:
        env = {"AGENTLAB_ARXIV_URL": fa.url, "AGENTLAB_ARXIV_DELAY": "0", "HF_HUB_OFFLINE": "1",
               "AGENTLAB_CACHE_DIR": str(Path(tmp) / "cache"), "TOKENIZERS_PARALLELISM": "false"}
        with patched_environ(env), llm_endpoint(args.embedded, args.families) as (endpoint, script):
            for family in args.families:
                print(f"[{llm}] {family}: running ...", file=sys.stderr, flush=True)
                script(family)
                r = one_run(args, Path(tmp), family, endpoint, llm)
                print(f"[{llm}] {family}: {r['why']} ({r['wall_minutes']} min)", file=sys.stderr, flush=True)
                results.append(r)
    return results


@contextlib.contextmanager
def _workdir(path: Path | None) -> Iterator[str]:
    """The runs' directory: `path` (kept) or a temporary one (removed)."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="agentlab-bench-") as tmp:
        yield tmp


def _cell(row: dict | None, key: str) -> str:
    if row is None:
        return "-"
    if key == "nodes":
        return f"{row['ok']}/{row['nodes']}" + ("" if row["status"] == "ok" else f" {row['status']}")
    v = row.get(key)
    return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def print_tables(results: list[dict]) -> None:
    con = Console(width=200)
    t = Table(title="experiment phase per family and LLM")
    for col in ("family", "llm", "chosen", "valid nodes", "wall min", "outcome"):
        t.add_column(col, overflow="fold")
    for r in results:
        rate = "-" if r["valid_node_rate"] is None else f"{r['ok_nodes']}/{r['nodes']} = {r['valid_node_rate']:.2f}"
        t.add_row(r["family"], r["llm"], str(r["family_chosen"]), rate, f"{r['wall_minutes']:.2f}",
                  ("OK " if r["reached"] else "STOPPED ") + r["why"])
    con.print(t)
    for key, title in (("nodes", "nodes per stage (ok/all)"), ("minutes", "wall minutes per stage"),
                       ("tokens", "LLM tokens per stage")):
        s = Table(title=title)
        s.add_column("family / llm")
        for name in STAGES:
            s.add_column(name)
        for r in results:
            s.add_row(f"{r['family']} / {r['llm']}", *[_cell(r["stages"].get(n), key) for n in STAGES])
        con.print(s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=list(IDEAS), choices=list(IDEAS))
    ap.add_argument("--embedded", action="store_true", help="the embedded SmolLM2 model instead of the scripted LLM")
    ap.add_argument("--harness-model", default="tiny-llama", choices=["tiny-llama", "smollm2"])
    ap.add_argument("--drafts", type=int, default=2, help="implement stage: first drafts")
    ap.add_argument("--implement-nodes", type=int, default=6, help="implement stage: node budget")
    ap.add_argument("--seeds", type=int, default=3, help="seeds stage: seeds")
    ap.add_argument("--items", type=int, default=4, help="harness items per seed")
    ap.add_argument("--papers", type=int, default=3, help="literature: papers")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temporary dir)")
    ap.add_argument("--verbose", action="store_true", help="show the runs' progress on stderr")
    args = ap.parse_args()
    results = run_all(args)
    print_tables(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "experiment", "args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
