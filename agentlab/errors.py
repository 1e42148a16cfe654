"""`Resumable`: the one base class of failures that park a run instead of crashing it.

A phase that fails with a `Resumable` error (budget spent, endpoint down, model output that never
validated, sandbox missing, LaTeX that would not compile, ...) records a `stop` and goes to the
checkpoint, where `agentlab resume` retries it. Any other exception is treated as a bug: the run
still stops resumably, but the traceback goes to the run log.

This module imports nothing from agentlab, so any module may derive its errors from `Resumable`:

    class SandboxUnavailable(Resumable, RuntimeError):
        stop_kind = "error"

Every such error derives from it directly (`BudgetExceeded`, `LLMError`, `LiteratureUnavailable`,
`SandboxUnavailable`, `ReportFailed`, `PhaseStop`), so `run_phase` simply writes `except Resumable`.
"""

from __future__ import annotations

from typing import ClassVar


class Resumable(Exception):
    """A failure a person can fix; the run stays resumable. `stop_kind` is `budget` or `error`."""

    stop_kind: ClassVar[str] = "error"
