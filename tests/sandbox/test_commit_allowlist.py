"""The run repo's commit takes an allowlist: what an attempt directory holds beyond regular files never
enters history (a .gitignore that hides results, a nested .git, links, FIFOs, sparse or setuid files)."""

from __future__ import annotations

import os

import git

from agentlab.runs import RunDir


def test_commit_records_only_regular_files(tmp_path):
    run = RunDir.create(tmp_path / "runs", "allowlist")
    d = run.repo_dir / "experiments" / "attempt-1"
    (d / ".git").mkdir(parents=True)
    (d / ".git" / "HEAD").write_text("ref: refs/heads/evil\n")
    (d / "main.py").write_text("print('hi')\n")
    (d / "results.json").write_text('{"metrics": {"x": 1.5}}')
    (d / ".gitignore").write_text("results.json\n")
    os.symlink("/etc/passwd", d / "passwd.txt")
    os.mkfifo(d / "pipe")
    with open(d / "sparse.bin", "wb") as f:
        f.truncate(60 << 20)
    (d / "suid").write_text("x")
    os.chmod(d / "suid", 0o4755)
    sha = run.commit(["experiments/attempt-1"], "attempt 1")
    names = git.Repo(run.repo_dir).git.ls_tree("-r", "--name-only", sha).split("\n")
    got = sorted(n for n in names if n.startswith("experiments/"))
    assert got == ["experiments/attempt-1/main.py", "experiments/attempt-1/results.json"], got
    # a file that later turns into a link leaves history instead of being recorded as a link
    (d / "results.json").unlink()
    os.symlink("/etc/shadow", d / "results.json")
    sha = run.commit(["experiments/attempt-1"], "attempt 1 again")
    names = git.Repo(run.repo_dir).git.ls_tree("-r", "--name-only", sha).split("\n")
    assert "experiments/attempt-1/results.json" not in names
