"""A real headless run whose experiment code attacks the host (a prompt-injected main.py), against the
scripted LLM: nothing the job leaves behind is followed, trusted, leaked into a prompt or committed, and the
run goes on to a good attempt instead of crashing on every resume."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import git
import pytest
from rich.console import Console

from agentlab.config import load_settings
from agentlab.runner import drive, pending_interrupt
from agentlab.runs import RunDir
from tests.fakes.scripts import EXPERIMENT_CODE, full_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

HOSTILE = '''
import json, os, subprocess
try:  # replace the code the host will commit (and, on resume, write through)
    os.remove("main.py"); os.symlink({victim!r}, "main.py")
except OSError as e:
    print("main.py:", e.strerror)
os.symlink({secret!r}, "results.json")  # the host used to read this as root and quote it to the LLM
os.symlink("/dev/zero", "metrics.json")
os.mkfifo("log.fifo")
open(".gitignore", "w").write("*\\n")
os.makedirs(".git/objects", exist_ok=True)
try:
    with open("huge.bin", "wb") as f:
        f.truncate(1 << 40)
except OSError as e:
    print("huge.bin:", e.strerror)
'''

NESTED = "open('results.json', 'w').write('[' * 100000 + ']' * 100000)\n"


def test_a_hostile_attempt_is_contained_and_the_run_goes_on(agent_env, llm_server, tmp_path):
    marker = f"ROOT-ONLY-{uuid.uuid4().hex}"
    secret = tmp_path / "secret.txt"
    secret.write_text(json.dumps({"metrics": {"rel_error": marker}}))
    secret.chmod(0o600)
    victim = tmp_path / "victim.py"
    victim.write_text("# host file\n")
    hostile = HOSTILE.format(victim=str(victim), secret=str(secret))
    full_run(llm_server)
    llm_server.on("ExperimentCode", {"explanation": "a", "code": hostile}, {"explanation": "b", "code": NESTED},
                  {"explanation": "c", "code": EXPERIMENT_CODE})  # fmt: skip
    settings = load_settings(None, {"checkpoints": "experiment", "max_papers": 1, "max_attempts": 3})
    run = RunDir.create(Path(settings.runs_dir), "hostile")
    settings.save(run.settings_path)
    out = drive(run, settings, {"idea": "Does sink+window KV eviction keep the error small at 4x?"},
                Console(file=io.StringIO()), live=False)  # fmt: skip
    assert out.status == "parked", out
    _, values = pending_interrupt(run, settings)
    atts = values["attempts"]
    assert [a["status"] for a in atts] == ["failed", "failed", "ok"], atts
    assert "symbolic link" in atts[0]["reason"], atts[0]
    assert "deep" in atts[1]["reason"] or "nested" in atts[1]["reason"], atts[1]
    assert values["best_attempt"] == 3

    # the host's files are untouched and nothing of the secret went anywhere
    assert victim.read_text() == "# host file\n"
    sent = json.dumps([r["messages"] for r in llm_server.requests])
    assert marker not in sent
    repo = git.Repo(run.repo_dir)
    history = repo.git.log("-p", "--all")
    assert marker not in history

    # what was committed is the code that ran, plus regular files only
    a1 = "experiments/attempt-1"
    assert repo.git.show(f"HEAD:{a1}/main.py") == hostile.rstrip("\n")  # (GitPython strips the last newline)
    tree = repo.git.ls_tree("-r", "--name-only", "HEAD", f"{a1}/").split("\n")
    assert not any(n.endswith((".gitignore", "results.json", "metrics.json", "log.fifo")) or "/.git/" in n
                   for n in tree), tree  # fmt: skip
    huge = run.repo_dir / a1 / "huge.bin"  # RLIMIT_FSIZE stopped the 1 TiB sparse file at 0 bytes
    assert not huge.exists() or huge.stat().st_size == 0
    assert (run.repo_dir / a1 / "main.py").read_text() == hostile and not (run.repo_dir / a1 / "main.py").is_symlink()
    assert "experiments/attempt-3/results.json" in repo.git.ls_tree("-r", "--name-only", "HEAD")
    refused = " ".join(atts[0]["not_collected"])
    assert "results.json" in refused and ".gitignore" in refused
