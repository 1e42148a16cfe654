"""Reading the state (issue 16): `agentlab runs`, `agentlab status`, `agentlab review` and the live progress table,
read by a person at 80 and 120 columns, over real run directories made by real runs against the fakes."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.scripts import PLAN, full_run
from tests.spine_helpers import ROOT, lean_settings

IDEA = "Does sink+window KV eviction keep perplexity within 5% at 4x compression on a small Llama model?"
HEADS = ("id", "topic", "phase", "status", "updated", "tokens", "cost")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


@pytest.fixture
def env(agent_env, llm_server, tmp_path, monkeypatch):
    return lean_settings(agent_env, llm_server, tmp_path, monkeypatch)


def agentlab(args: list[str], env: dict, columns: int = 80, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT), "COLUMNS": str(columns)}
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([sys.executable, "-m", "agentlab.cli", *args], env=full, capture_output=True, text=True,
                          timeout=timeout, **kw)


def ok(out: subprocess.CompletedProcess, *codes: int) -> str:
    assert out.returncode in (codes or (0,)), out.stdout + out.stderr
    return out.stdout


def runs_json(env: dict) -> list[dict]:
    return json.loads(ok(agentlab(["runs", "--json"], env)))


def status_json(env: dict, run_id: str) -> dict:
    return json.loads(ok(agentlab(["status", run_id, "--json"], env)))


def commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("agentlab ")]


def fits(text: str, columns: int) -> None:
    assert max(len(line) for line in text.splitlines()) <= columns, text


def wait_for(pred, timeout: float = 120.0, what: str = "") -> object:
    end = time.time() + timeout
    while time.time() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_runs_and_status_read_at_80_and_120_columns(env, tmp_path):
    """Short unique ids, cut topics, one line per run, horizontal headers; a human status with the next command."""
    empty = ok(agentlab(["runs", "--runs-dir", str(tmp_path / "nothing")], env))
    assert "no runs in" in empty and 'agentlab run "' in empty and commands(empty)
    ok(agentlab(["run", IDEA, "--headless", "--checkpoints", "literature", "--max-papers", "2"], env))
    out = agentlab(["run", "Sink tokens at 4x?", "--headless", "--max-papers", "2", "--max-tokens", "1500"], env)
    assert out.returncode == 3 and "budget exhausted" in out.stdout, out.stdout + out.stderr
    listed = runs_json(env)
    assert [r["label"] for r in listed] == ["parked (literature)", "stopped (budget)"]
    assert all(len(r["id"]) > len(r["short_id"]) and r["id"].startswith(r["short_id"]) and len(r["short_id"]) >= 8 for r in listed)
    assert len({r["short_id"] for r in listed}) == 2 and all(r["updated"] and "tokens" in r for r in listed)

    for columns in (80, 120):
        text = ok(agentlab(["runs"], env, columns))
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) == 3, text  # the header and one line per run
        assert re.match(r"\s*" + r"\s+".join(HEADS) + r"\s*$", lines[0]), text  # headers side by side
        fits(text, columns)
        for r, line in zip(listed, lines[1:]):
            assert line.split()[0] == r["short_id"] and r["label"] in line and "ago" in line
        if columns == 80:
            assert "…" in lines[1] and IDEA not in text  # the topic is cut, not wrapped
        else:
            assert "literature_review" in lines[1]

    parked, stopped = listed
    assert "no report yet" in ok(agentlab(["review", parked["short_id"], "--no-diff"], env))
    for columns in (80, 120):
        shown = ok(agentlab(["status", parked["short_id"]], env, columns))
        fits(shown, columns)
        assert "{" not in shown and "parked (literature)" in shown and "Usage per phase" in shown
        assert re.search(r"literature_review\s+done\s+\d+\.\ds\s+\d+", shown), shown
        cmds = commands(shown)
        assert f"agentlab resume {status_json(env, parked['id'])['short_id']} --approve" in cmds, shown
        budget = ok(agentlab(["status", stopped["id"]], env, columns))
        fits(budget, columns)
        assert "stopped (budget)" in budget and "tokens budget exhausted" in " ".join(budget.split())
        assert any(re.fullmatch(r"agentlab resume \S+ --max-tokens \d+", c) for c in commands(budget)), budget
    st = status_json(env, stopped["short_id"])
    assert (st["status"], st["label"], st["phase"]) == ("stopped", "stopped (budget)", stopped["phase"])
    assert st["kind"] == "budget" and "exhausted" in st["message"] and st["next"]
    assert st["usage_by_phase"]["literature_review"]["status"] == "stopped"
    flag_n = st["next"][0].split()[-1]
    out = agentlab(["resume", st["short_id"], "--headless", "--checkpoints", "literature", "--max-tokens", flag_n],
                   env)
    assert out.returncode in (0, 3), out.stdout + out.stderr  # the suggested command is one that runs
    if os.environ.get("SHOW"):
        print(text, shown, budget, sep="\n")


def _interactive(env: dict, args: list[str]) -> subprocess.Popen:
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT), "COLUMNS": "120", "EDITOR": "", "VISUAL": ""}
    return subprocess.Popen([sys.executable, "-m", "agentlab.cli", *args], env=full, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _until_label(env: dict, label: str) -> dict:
    def seen():
        rows = runs_json(env)
        return rows[0] if rows and rows[0]["label"] == label else None
    return wait_for(seen, what=label)


def test_a_run_at_the_prompt_is_waiting_and_ctrl_c_there_keeps_its_stop(env):
    proc = _interactive(env, ["run", IDEA, "--interactive", "--checkpoints", "plan", "--max-papers", "2"])
    try:
        row = _until_label(env, "waiting (plan)")
        shown = ok(agentlab(["status", row["short_id"]], env))
        assert "waiting (plan)" in shown and f"process {proc.pid}" in " ".join(shown.split()), (shown, proc.poll())
        proc.send_signal(signal.SIGINT)
        said = proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
    assert "your answer" in said, said
    row = runs_json(env)[0]
    assert row["label"] == "parked (plan)", row  # Ctrl-C at the prompt lost nothing: it still waits there
    assert "agentlab resume" in " ".join(status_json(env, row["id"])["next"])


def test_ctrl_c_at_a_budget_stop_stays_stopped_budget(env):
    proc = _interactive(env, ["run", IDEA, "--interactive", "--max-papers", "2", "--max-tokens", "1500"])
    try:
        _until_label(env, "waiting (budget)")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    row = runs_json(env)[0]
    assert row["label"] == "stopped (budget)" and row["kind"] == "budget", row
    shown = ok(agentlab(["status", row["short_id"]], env))
    assert "stopped (budget)" in shown and "interrupted" not in shown


def _pty(args: list[str], env: dict, columns: int = 120, timeout: float = 240) -> str:
    """The command's terminal output (a real pty: the live table is drawn)."""
    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT), "COLUMNS": str(columns), "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "agentlab.cli", *args], env=full, stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    chunks, end = [], time.time() + timeout
    while time.time() < end:
        try:
            data = os.read(master, 65536)
        except OSError:  # the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(master)
    return ANSI.sub("", b"".join(chunks).decode(errors="replace"))


def _rows(frame: str) -> dict[str, list[str]]:
    rows = {}
    for line in frame.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if cells and cells[0] in ("literature_review", "plan", "experiment", "interpret", "write_report", "review"):
            rows[cells[0]] = cells
    return rows


def test_live_table_on_resume_and_after_back(env):
    ok(agentlab(["run", IDEA, "--headless", "--checkpoints", "literature,plan", "--max-papers", "2"], env))
    run_id = runs_json(env)[0]["id"]
    ok(agentlab(["resume", run_id, "--approve", "--headless"], env))  # literature -> plan, parks at plan
    times = status_json(env, run_id)["usage_by_phase"]
    assert times["literature_review"]["status"] == "done" and times["plan"]["status"] == "done"

    text = _pty(["resume", run_id, "--back", "literature", "--headless", "--checkpoints", "literature,plan"], env)
    frames = [f for f in text.split("AgentLab run")[1:] if "literature_review" in f]
    assert frames, text
    first, last = _rows(frames[0]), _rows(frames[-1])
    assert first["plan"][1] == "done" and first["literature_review"][1] == "done", frames[0]
    assert first["plan"][2] == f"{times['plan']['time_s']:.1f}s", frames[0]  # its recorded time, not 0.0s
    assert last["literature_review"][1] == "done" and last["plan"][1] == "pending", frames[-1]  # redone after back
    assert runs_json(env)[0]["label"] == "parked (literature)"


def test_review_shows_report_problems_and_says_what_the_trace_is(env, llm_server):
    full_run(llm_server, Plan={**PLAN, "ablations": []},
             ReportOutline={"title": "Sink tokens", "tables": [{"source": "no-such-data", "caption": "x"}],
                            "figures": []})
    ok(agentlab(["run", IDEA, "--headless", "--checkpoints", "review", "--max-papers", "2"], env, timeout=600))
    run_id = runs_json(env)[0]["short_id"]
    for columns in (80, 120):
        shown = ok(agentlab(["review", run_id, "--no-diff"], env, columns))
        assert "Report problems (revision 1)" in shown and "table 1 dropped: no dataset 'no-such-data'" in \
            " ".join(shown.split()), shown
    status = ok(agentlab(["status", run_id], env))
    fits(status, 80)
    assert "Report problems (revision 1)" in status and "no-such-data" in status
    assert f"agentlab review {status_json(env, run_id)['short_id']}" in commands(status)
    assert "no traceability table yet" not in shown and "Numbers and their sources" in shown
    trace = sorted(Path(runs_json(env)[0]["path"], "repo", "report").glob("trace-rev-*.json"))[-1]
    trace.write_text("[]")  # a revision whose text renders no number (an empty trace, as the writer saves it)
    shown = ok(agentlab(["review", run_id, "--no-diff"], env))
    assert f"the report (revision {trace.stem.rsplit('-', 1)[1]}) has no rendered numbers" in shown, shown
