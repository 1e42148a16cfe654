"""The `agentlab` command line: run, resume, runs, status, review, doctor, plus sandbox, eval, batch.

Layout (one module per group of commands, all sharing `agentlab.cli.common`):

  agentlab/cli/run.py      run, resume            (call the runner API, agentlab.runner)
  agentlab/cli/plan.py     plan                   (write out a run's plan; read an edited one back)
  agentlab/cli/info.py     runs, status, doctor
  agentlab/cli/review.py   review                 (the review display + resume_run)
  agentlab/cli/prompt.py   the terminal checkpoint prompt
  agentlab/cli/docs.py     docs/cli.md from every command's --help
  agentlab/sandbox/cli.py, agentlab/eval/cli.py, agentlab/batch/cli.py   the sub-commands

Commands are imported only when used (agentlab.cli.lazy), so `agentlab --help` stays fast; the
one-line help here must equal each command's first docstring line (a test checks).
"""

from __future__ import annotations

import typer

from agentlab.cli.lazy import Lazy, LazyGroup

COMMANDS: dict[str, Lazy] = {
    "run": Lazy("agentlab.cli.run:run", "Start a research run on IDEA."),
    "resume": Lazy("agentlab.cli.run:resume", "Continue a run from its last checkpoint, in this process."),
    "plan": Lazy("agentlab.cli.plan:plan", "Write out a run's current plan as YAML, to edit and pass back with "
                 "resume --edit-plan."),
    "runs": Lazy("agentlab.cli.info:runs", "List runs: id, topic, phase, status, tokens, cost."),
    "status": Lazy("agentlab.cli.info:status",
                   "Show one run: where it is, what it waits for, usage per phase, experiment stages, report."),
    "review": Lazy("agentlab.cli.review:review", "Show the report (PDF path, reviewer scores per revision, LaTeX "
                   "diff, number traceability, integrity checks) and answer it."),
    "doctor": Lazy("agentlab.cli.info:doctor", "Report what is present and what is missing, with the exact fix for "
                   "each."),
    "sandbox": Lazy("agentlab.sandbox.cli:sandbox_app",
                    "Run scripts in the experiment sandbox; check which backends work here."),
    "eval": Lazy("agentlab.eval.cli:eval_app", "Evaluation harnesses (coc: chain-of-clarification retrieval vs. "
                 "baselines)."),
    "batch": Lazy("agentlab.batch.cli:batch", "Run every workflow in PATH as its own run; rerun to continue what is "
                  "unfinished.", {"allow_interspersed_args": True}),  # PATH before or after the options
}


class AgentlabGroup(LazyGroup):
    lazy = COMMANDS


app = typer.Typer(cls=AgentlabGroup, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="AgentLab: an autonomous research agent for LLM-efficiency research.")


@app.callback()
def _root() -> None:
    """AgentLab: an autonomous research agent for LLM-efficiency research."""


def main() -> None:
    """The console script: `agentlab ...`."""
    app()


__all__ = ["app", "main", "COMMANDS"]
