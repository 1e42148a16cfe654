"""A real headless run whose experiment code attacks the host (a prompt-injected method.py, run by the harness
as its plugin inside the sandbox), against the scripted LLM: nothing the job leaves behind is followed,
trusted, leaked into a prompt or committed, and the run goes on to a good node instead of crashing on every
resume."""

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
from tests.fakes.scripts import METHOD, code_replies, fenced, full_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# A working method (the harness measures it and exits 0), plus code that runs when the harness imports the
# plugin and, through atexit, after the harness has written results.json: the files the host then reads,
# commits and (on resume) writes through.
HOSTILE = METHOD + '''
import atexit, os


def _takeover():
    try:  # replace the code the host will commit (and, on resume, write through)
        os.remove("method.py"); os.symlink({victim!r}, "method.py")
    except OSError as e:
        print("method.py:", e.strerror)
    os.remove("results.json")
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
atexit.register(_takeover)
'''

NESTED = METHOD + '''
import atexit

atexit.register(lambda: open("results.json", "w").write("[" * 100000 + "]" * 100000))
'''


def test_a_hostile_node_is_contained_and_the_run_goes_on(agent_env, llm_server, tmp_path):
    marker = f"ROOT-ONLY-{uuid.uuid4().hex}"
    secret = tmp_path / "secret.txt"
    # a valid harness results file: were the host to follow the link, it would accept it and quote the marker
    ppl = {"per_seed": [9.0], "mean": 9.0, "n": 1, "per_item": [[9.0]]}
    secret.write_text(json.dumps({
        "schema": "agentlab.harness/1", "family": "kv", "primary": "ppl", "reference": "full",
        "metrics": {"ppl": {"direction": "lower"}},
        "cells": [{"id": "full", "method": "full", "role": "reference", "status": "ok", "values": {"ppl": ppl}},
                  {"id": "proposed", "method": "proposed", "status": "ok", "values": {"ppl": ppl}},
                  {"id": "h2o", "method": "h2o", "status": "failed", "error": marker}]}))
    secret.chmod(0o600)
    victim = tmp_path / "victim.py"
    victim.write_text("# host file\n")
    hostile = HOSTILE.format(victim=str(victim), secret=str(secret))
    # two drafts (deeply nested results, then the takeover), then a debug node of the hostile one: its reason
    # and stderr go back to the model, and its reply is the good method
    full_run(llm_server, text=code_replies(fenced({"method.py": NESTED}), fenced({"method.py": hostile}),
                                           fenced({"method.py": METHOD})))
    settings = load_settings(None, {"checkpoints": "experiment.implement", "max_papers": 1, "drafts": 2,
                                    "stage_budgets": {"implement": {"nodes": 3}}, "harness_items": 1})
    run = RunDir.create(Path(settings.runs_dir), "hostile")
    settings.save(run.settings_path)
    out = drive(run, settings, {"idea": "Does sink+window KV eviction keep the error small at 4x?"},
                Console(file=io.StringIO()), live=False)  # fmt: skip
    assert out.status == "parked", out
    payload, values = pending_interrupt(run, settings)
    assert payload.get("stage") == "implement", payload
    impl = values["experiment"]["stages"]["implement"]
    nodes = impl["nodes"]
    assert [(n["kind"], n["status"]) for n in nodes] == [("draft", "failed"), ("draft", "failed"), ("debug", "ok")], nodes
    nested, bad, good = nodes
    assert "deep" in nested["reason"] or "nested" in nested["reason"], nested
    assert "symbolic link" in bad["reason"], bad
    assert good["parent"] == bad["id"] and impl["best"] == good["id"]
    debug_prompt = [r for r in llm_server.requests if r["key"] == "text"][2]["messages"][-1]["content"]
    assert "_takeover" in debug_prompt and bad["reason"] in debug_prompt  # the hostile node did reach a prompt

    # the host's files are untouched and nothing of the secret went anywhere
    assert victim.read_text() == "# host file\n"
    sent = json.dumps([r["messages"] for r in llm_server.requests])
    assert marker not in sent
    assert marker not in json.dumps(values, default=str)
    repo = git.Repo(run.repo_dir)
    history = repo.git.log("-p", "--all")
    assert marker not in history

    # what was committed is the code that ran, plus regular files only
    d = bad["dir"]
    assert repo.git.show(f"HEAD:{d}/method.py") == hostile.rstrip("\n")  # (GitPython strips the last newline)
    tree = repo.git.ls_tree("-r", "--name-only", "HEAD", f"{d}/").split("\n")
    assert not any(n.endswith((".gitignore", "results.json", "metrics.json", "log.fifo")) or "/.git/" in n
                   for n in tree), tree  # fmt: skip
    huge = run.repo_dir / d / "huge.bin"  # RLIMIT_FSIZE stopped the 1 TiB sparse file at 0 bytes
    assert not huge.exists() or huge.stat().st_size == 0
    assert (run.repo_dir / d / "method.py").read_text() == hostile and not (run.repo_dir / d / "method.py").is_symlink()
    assert not (run.repo_dir / d / "results.json").exists() or not (run.repo_dir / d / "results.json").is_symlink()
    assert f"{good['dir']}/results.json" in repo.git.ls_tree("-r", "--name-only", "HEAD")
    saved = json.loads((run.repo_dir / d / ".job" / "result.json").read_text())  # the sandbox's own record
    refused = " ".join(saved["not_collected"])
    assert "results.json" in refused and ".gitignore" in refused
