"""The run directory: everything one research run owns, in one place.

runs/<id>/
  meta.json          topic, status, phase, pid, timestamps (the run index reads these)
  settings.json      the run's settings (no secrets)
  checkpoints.sqlite LangGraph checkpoints (unless a Postgres URL is configured)
  ledger.jsonl       every LLM call
  memo/              validated LLM results by step key (a resumed step does not pay twice)
  repo/              git repository: experiments/attempt-N/…, report/…; one commit per attempt/revision
  logs/run.log       human-readable log
  logs/events.jsonl  structured events (e.g. a setting changed on resume: old, new, source), one JSON per line
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import git

from agentlab.llm.ledger import Ledger


class RunNotFound(LookupError):
    pass


def new_run_id(topic: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", topic.lower()).strip("-")[:32].strip("-") or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(2)}"


@dataclass
class RunDir:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def meta_path(self) -> Path:
        return self.path / "meta.json"

    @property
    def settings_path(self) -> Path:
        return self.path / "settings.json"

    @property
    def checkpoint_db(self) -> Path:
        return self.path / "checkpoints.sqlite"

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.path / "ledger.jsonl")

    @property
    def memo_dir(self) -> Path:
        return self.path / "memo"

    @property
    def repo_dir(self) -> Path:
        return self.path / "repo"

    @property
    def log_path(self) -> Path:
        return self.path / "logs" / "run.log"

    # ---- creation / lookup -------------------------------------------------------------------
    @classmethod
    def create(cls, runs_dir: Path, topic: str) -> "RunDir":
        runs_dir.mkdir(parents=True, exist_ok=True)
        run = cls(runs_dir / new_run_id(topic))
        run.path.mkdir()
        (run.path / "logs").mkdir()
        run.repo()  # initialise git
        run.write_meta(topic=topic, status="created", phase="", created=time.time(), active_minutes=0.0)
        return run

    @classmethod
    def open(cls, runs_dir: Path, run_id: str) -> "RunDir":
        p = runs_dir / run_id
        if not (p / "meta.json").exists():
            matches = [d for d in runs_dir.glob(f"{run_id}*") if (d / "meta.json").exists()] if runs_dir.exists() else []
            if len(matches) == 1:
                p = matches[0]
            else:
                hint = "ambiguous prefix" if matches else "no such run"
                raise RunNotFound(f"{hint}: {run_id!r} in {runs_dir} (see `agentlab runs`)")
        return cls(p)

    # ---- metadata ------------------------------------------------------------------------------
    def meta(self) -> dict:
        try:
            return json.loads(self.meta_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def write_meta(self, **updates) -> dict:
        m = self.meta()
        m.update(updates)
        m["updated"] = time.time()
        tmp = self.meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(m, indent=2))
        tmp.replace(self.meta_path)
        return m

    def effective_status(self) -> str:
        """`running` only if the process that claimed the run is alive; otherwise `interrupted`."""
        m = self.meta()
        status = m.get("status", "?")
        if status == "running":
            pid = m.get("pid")
            if not pid or not _alive(pid):
                return "interrupted"
        return status

    def record_phase(self, phase: str, msg: str) -> None:
        """Keep the phase the run is in and each phase's state and time in meta.json (`phases`: {name: {status,
        elapsed, since}}), from the progress messages `started`, `done` and `stopped…`. A phase that starts makes
        every later phase pending again: a `back` or a revision redoes them. Other messages are notes: ignored."""
        if msg not in ("started", "done") and not msg.startswith("stopped"):
            return
        from agentlab.phases.spec import phase_names

        rec = {p: dict(r) for p, r in (self.meta().get("phases") or {}).items()}
        row, now = rec.setdefault(phase, {"status": "pending", "elapsed": 0.0}), time.time()
        if msg == "started":
            names = phase_names()
            for later in names[names.index(phase) + 1:] if phase in names else ():
                if later in rec:
                    rec[later].update(status="pending", since=None)
            row.update(status="running", since=now)
            self.write_meta(phase=phase, phases=rec)
            return
        if row.get("since"):
            row["elapsed"] = round(float(row.get("elapsed") or 0.0) + now - row["since"], 3)
        row.update(status="done" if msg == "done" else "stopped", since=None)
        self.write_meta(phases=rec)

    def log(self, line: str) -> None:
        self.log_path.parent.mkdir(exist_ok=True)
        with self.log_path.open("a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    @property
    def events_path(self) -> Path:
        return self.path / "logs" / "events.jsonl"

    def event(self, kind: str, **fields) -> dict:
        """Append a structured event to logs/events.jsonl (and a line to run.log); returns it."""
        entry = {"ts": time.time(), "event": kind, **fields}
        self.events_path.parent.mkdir(exist_ok=True)
        with self.events_path.open("a") as f:
            f.write(json.dumps(entry, default=str) + "\n")
        self.log(f"{kind}: " + ", ".join(f"{k}={v!r}" for k, v in fields.items()))
        return entry

    def events(self, kind: str | None = None) -> list[dict]:
        """The run's events (of `kind`), oldest first."""
        try:
            lines = self.events_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = [json.loads(line) for line in lines if line.strip()]
        return [e for e in out if kind is None or e.get("event") == kind]

    # ---- git ---------------------------------------------------------------------------------
    def repo(self) -> git.Repo:
        if (self.repo_dir / ".git").exists():
            return git.Repo(self.repo_dir)
        self.repo_dir.mkdir(parents=True, exist_ok=True)
        r = git.Repo.init(self.repo_dir)
        with r.config_writer() as cw:
            cw.set_value("user", "name", "AgentLab")
            cw.set_value("user", "email", "agentlab@localhost")
        (self.repo_dir / "README.md").write_text(f"# AgentLab run {self.id}\n")
        # full job logs stay on disk but out of history; .job/result.json (tails, reason) is committed
        (self.repo_dir / ".gitignore").write_text("**/.job/*.log\n__pycache__/\n*.aux\n*.fls\n*.fdb_latexmk\n")
        r.git.add("README.md", ".gitignore")  # not index.add: it chdirs the whole process
        r.git.commit("-q", "-m", "run created")
        return r

    def commit(self, paths: list[str], message: str) -> str:
        """Commit `paths` (relative to repo/); returns the commit sha (no-op commits are skipped).

        Only an allowlist is staged: regular files under `paths` (no links, FIFOs or devices, no nested `.git`,
        no git control files, nothing sparse or over `COMMIT_MAX_FILE`), at most `COMMIT_MAX_FILES`; tracked
        files that are gone or no longer qualify are removed from the index. Every git call has a timeout."""
        r = self.repo()
        keep, tracked = [], set()
        for rel in paths:
            keep += _committable(self.repo_dir, rel)
            tracked |= set(r.git.ls_files("-z", "--", rel, kill_after_timeout=GIT_TIMEOUT).split("\0")) - {""}
        keep = keep[:COMMIT_MAX_FILES]
        for i in range(0, len(keep), 200):
            r.git.add("-f", "--", *keep[i : i + 200], kill_after_timeout=GIT_TIMEOUT)
        gone = sorted(tracked - set(keep))
        for i in range(0, len(gone), 200):
            r.git.rm("--cached", "-q", "--ignore-unmatch", "--", *gone[i : i + 200], kill_after_timeout=GIT_TIMEOUT)
        if not r.git.diff("--cached", "--name-only", kill_after_timeout=GIT_TIMEOUT):
            return r.head.commit.hexsha
        r.git.commit("-q", "-m", message, kill_after_timeout=GIT_TIMEOUT)
        return r.head.commit.hexsha


GIT_TIMEOUT = 120  # seconds for any one git call
COMMIT_MAX_FILE = 50 << 20
COMMIT_MAX_FILES = 5000
_GIT_CONTROL = {".git", ".gitignore", ".gitattributes", ".gitmodules"}
_IGNORED_LOGS = (".log",)  # full job logs stay out of history (the repo's .gitignore says the same)


def _committable(repo_dir: Path, rel: str) -> list[str]:
    """Regular files under repo_dir/rel that may enter history, as repo-relative posix paths (no link followed)."""
    out: list[str] = []
    stack = [rel.strip("/")]
    while stack and len(out) < COMMIT_MAX_FILES:
        cur = stack.pop()
        try:
            st = os.lstat(repo_dir / cur)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                names = sorted(os.listdir(repo_dir / cur))[:COMMIT_MAX_FILES]
            except OSError:
                continue
            stack += [f"{cur}/{n}" for n in names if n not in _GIT_CONTROL and n != "__pycache__"]
        elif stat.S_ISREG(st.st_mode) and not st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            name = cur.rsplit("/", 1)[-1]
            if "/.job/" in f"/{cur}" and name.endswith(_IGNORED_LOGS):
                continue
            sparse = st.st_size > 65536 and st.st_blocks * 512 < st.st_size // 2
            if st.st_size <= COMMIT_MAX_FILE and not sparse and not name.endswith((".aux", ".fls", ".fdb_latexmk")):
                out.append(cur)
    return sorted(out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def list_runs(runs_dir: Path) -> list[RunDir]:
    if not runs_dir.exists():
        return []
    runs = [RunDir(p) for p in runs_dir.iterdir() if (p / "meta.json").exists()]
    return sorted(runs, key=lambda r: r.meta().get("created", 0))
