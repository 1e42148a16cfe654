"""`agentlab eval coc`: chain of clarification vs. baselines and ablations, on any endpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from agentlab.cli.common import choice_enum
from agentlab.config import ConfigError, load_settings
from agentlab.eval.harness import METHODS, evaluate, summarize, table
from agentlab.eval.qa import load_qa
from agentlab.eval.synthetic import KINDS, make_set
from agentlab.llm import LLM, BudgetExceeded, Ledger, LLMError
from agentlab.retrieval.coc import CocConfig
from agentlab.retrieval.retriever import RETRIEVERS

RetrieverName = choice_enum("RetrieverName", RETRIEVERS)

eval_app = typer.Typer(help="Evaluation harnesses (coc: chain-of-clarification retrieval vs. baselines).",
                       no_args_is_help=True, pretty_exceptions_enable=False)


@eval_app.callback()
def _group() -> None:
    """Evaluation harnesses (coc: chain-of-clarification retrieval vs. baselines)."""


def _ints(s: str, name: str) -> list[int]:
    try:
        return [int(x.strip().lower().replace("k", "000")) for x in s.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{name}: a comma list of integers such as 8k,32k,128k (got {s!r})") from None


@eval_app.command("coc")
def coc(
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL)"),
    model: Optional[str] = typer.Option(None, help="model name (default: AGENTLAB_MODEL or the configured model)"),
    api_key: Optional[str] = typer.Option(None, help="API key (default: OPENAI_API_KEY)"),
    lengths: str = typer.Option("8k,32k,128k", help="synthetic document lengths in tokens, comma list"),
    n: int = typer.Option(2, help="synthetic items per kind and length; questions per document for --qa-file"),
    seed: int = typer.Option(0, help="seed of the synthetic set"),
    kinds: str = typer.Option(",".join(KINDS), help=f"synthetic kinds, comma list of: {', '.join(KINDS)}"),
    methods: str = typer.Option(",".join(METHODS), help=f"methods to compare, comma list of: {', '.join(METHODS)}"),
    qa_file: list[Path] = typer.Option([], help="real QA samples (.jsonl L-Eval or .json Qasper); repeatable"),
    synthetic: bool = typer.Option(True, "--synthetic/--no-synthetic",
                                   help="include the synthetic set (--no-synthetic: only the --qa-file samples)"),
    depth: Optional[int] = typer.Option(None, help="clarification depth D"),
    branching: Optional[int] = typer.Option(None, help="clarifications per step B"),
    chunk_tokens: Optional[int] = typer.Option(None, help="chunk size in tokens"),
    context_budget: Optional[int] = typer.Option(None, help="document tokens per call"),
    retriever: Optional[RetrieverName] = typer.Option(None, help="candidate pre-selection (default: the configured "
                                                                 "retriever)"),
    out: Path = typer.Option(Path("coc_eval.json"), help="where to write the JSON results"),
    config: Optional[Path] = typer.Option(None, help="agentlab.toml to read settings from"),
) -> None:
    """Run CoC, its ablations and the baselines on a seeded synthetic long-context set (needles,
    multi-key needles, two-hop bridge questions; gold chunk ids) and on real QA samples."""
    try:
        s = load_settings(config, {"base_url": base_url, "model": model, "api_key": api_key})
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    s = replace(s, temperature=0.0,
                coc_depth=depth if depth is not None else s.coc_depth,
                coc_branching=branching if branching is not None else s.coc_branching,
                chunk_tokens=chunk_tokens or s.chunk_tokens,
                context_budget_tokens=context_budget or s.context_budget_tokens,
                retriever=retriever.value if retriever is not None else s.retriever)
    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    bad = [m for m in chosen if m not in METHODS]
    if bad:
        raise typer.BadParameter(f"unknown method(s) {', '.join(bad)}; use {', '.join(METHODS)}", param_hint="--methods")
    try:
        llm = LLM(s, Ledger(None))
    except LLMError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    datasets = []
    ks = tuple(k.strip() for k in kinds.split(",") if k.strip())
    if [k for k in ks if k not in KINDS]:
        raise typer.BadParameter(f"unknown kind(s) {', '.join(k for k in ks if k not in KINDS)}; use "
                                 f"{', '.join(KINDS)}", param_hint="--kinds")
    if synthetic:
        datasets.append(("synthetic", make_set(_ints(lengths, "--lengths"), n, seed, ks, s.chunk_tokens)))
    for f in qa_file:
        if not f.exists():
            typer.echo(f"note: {f} not found, skipped", err=True)
            continue
        datasets.append((f"qa:{f.stem}", load_qa(f, n, s.chunk_tokens)))
    cfg = CocConfig(depth=s.coc_depth, branching=s.coc_branching, context_budget=s.context_budget_tokens,
                    retriever=s.retriever, phase="eval")
    rows = []
    try:
        for name, items in datasets:
            typer.echo(f"{name}: {len(items)} questions x {len(chosen)} methods on {s.model} at {s.base_url}", err=True)
            for r in evaluate(items, llm, cfg, s.chunk_tokens, chosen, progress=lambda m: typer.echo(m, err=True)):
                rows.append({"dataset": name, **r})
    except (LLMError, BudgetExceeded, ConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    summary = summarize(rows, ("dataset", "method"))
    by_kind = summarize(rows, ("dataset", "kind", "length", "method"))
    typer.echo(table(summary))
    result = {"config": {"base_url": s.base_url, "model": s.model, "depth": s.coc_depth, "branching": s.coc_branching,
                         "chunk_tokens": s.chunk_tokens, "context_budget_tokens": s.context_budget_tokens,
                         "retriever": s.retriever, "lengths": lengths, "n": n, "seed": seed,
                         "methods": list(chosen)},
              "summary": summary, "by_kind_length": by_kind, "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    typer.echo(f"wrote {out}", err=True)
