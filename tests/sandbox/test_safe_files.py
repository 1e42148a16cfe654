"""Files a job leaves behind are hostile: links, FIFOs, /dev/zero, sparse giants, deep or huge JSON and
secrets meant to leak through error messages are refused by safe_files and the experiment's results reader
(agentlab.experiment.nodes.read_results), quickly,
without their content ever reaching a message. Every case here would fool `json.loads(p.read_text())`."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from agentlab.experiment.nodes import MAX_RESULTS_BYTES, read_results
from agentlab.sandbox.safe_files import (
    UntrustedFileError,
    check_relpath,
    load_json,
    read_bytes,
    read_json,
    read_text,
    validation_message,
    write_new,
)

MARKER = "S3CRET-MARKER-7f3a9"


def harness_file(**over) -> dict:
    """A valid harness results file (docs/experiments.md)."""
    cell = {"id": "full", "method": "full", "params": {}, "role": "reference", "status": "ok", "error": "",
            "wall_seconds": 0.1, "values": {"ppl": {"per_seed": [3.0], "mean": 3.0, "std": None, "ci95": None,
                                                     "n": 1, "per_item": [[2.5, 3.5]]}}}
    return {"schema": "agentlab.harness/1", "spec": {}, "family": "kv", "primary": "ppl", "reference": "full",
            "metrics": {"ppl": {"direction": "lower"}}, "env": {}, "cells": [cell], **over}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "attempt-1"
    d.mkdir()
    return d


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A root-only file outside the work dir holding what would be a perfectly valid results.json."""
    p = tmp_path / "shadow"
    p.write_text(json.dumps(harness_file(env={"leak": MARKER})))
    p.chmod(0o600)
    return p


def refused(root, rel: str = "results.json", **kw) -> UntrustedFileError:
    with pytest.raises(UntrustedFileError) as info:
        read_json(root, rel, **kw)
    assert MARKER not in str(info.value)
    return info.value


def reason_of(work: Path) -> str:
    results, reason = read_results(work)
    assert results is None and reason
    assert MARKER not in reason
    return reason


# ---- links, special files, size ---------------------------------------------------------------------

def test_symlink_to_a_root_only_file_is_refused_and_never_read(work, secret):
    (work / "results.json").symlink_to(secret)
    err = refused(work)
    assert err.kind == "symlink" and "results.json is a symbolic link" in str(err)
    reason = reason_of(work)
    assert "symbolic link" in reason and "never followed" in reason


def test_a_symlinked_parent_directory_is_refused(work, secret):
    (work / "out").symlink_to(secret.parent, target_is_directory=True)
    err = refused(work, "out/shadow")
    assert err.kind == "symlink" and str(err).startswith("out is a symbolic link")
    with pytest.raises(UntrustedFileError) as info:
        read_bytes(work, "out/shadow", 1000)
    assert info.value.kind == "symlink"


def test_a_file_where_a_directory_should_be_is_refused(work):
    (work / "out").write_text("x")
    assert refused(work, "out/results.json").kind == "not_regular"


@pytest.mark.timeout(20)
def test_a_fifo_is_refused_without_blocking(work):
    os.mkfifo(work / "results.json")
    t0 = time.monotonic()
    assert refused(work).kind == "not_regular"
    assert "not a regular file" in reason_of(work)
    assert time.monotonic() - t0 < 5


@pytest.mark.timeout(20)
def test_a_link_to_dev_zero_is_refused(work):
    (work / "results.json").symlink_to("/dev/zero")
    assert refused(work).kind == "symlink"
    assert "symbolic link" in reason_of(work)


def test_a_directory_named_results_json_is_refused(work):
    (work / "results.json").mkdir()
    assert refused(work).kind == "not_regular"


@pytest.mark.timeout(20)
def test_a_2_gib_sparse_file_is_refused_without_being_read(work):
    with open(work / "results.json", "wb") as f:
        f.truncate(2 << 30)
    t0 = time.monotonic()
    err = refused(work)
    assert err.kind in ("sparse", "too_large") and str(2 << 30) in str(err)
    assert "results.json" in reason_of(work)
    assert time.monotonic() - t0 < 2


def test_an_oversized_file_is_refused_naming_its_size_and_the_cap(work):
    data = json.dumps({"metrics": {"acc": 0.5}, "details": {"pad": "x" * (MAX_RESULTS_BYTES + 1000)}})
    (work / "results.json").write_text(data)
    err = refused(work)
    assert err.kind == "too_large" and str(len(data)) in str(err) and "1000000" in str(err)
    assert f"{MAX_RESULTS_BYTES} bytes" in reason_of(work)


def test_ordinary_files_small_empty_and_large_are_not_taken_for_sparse(work):
    (work / "tiny.json").write_text("[1]")
    (work / "empty.json").write_bytes(b"")
    rows = [{"i": i, "v": i / 7} for i in range(6000)]  # ~200 kB of real data
    (work / "big.json").write_text(json.dumps(rows))
    assert read_json(work, "tiny.json") == [1]
    assert read_bytes(work, "empty.json", 10) == b""
    assert read_json(work, "big.json") == rows
    fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:  # a directory fd works as the root, and is left open for the caller
        assert read_text(fd, "tiny.json", 10) == "[1]"
        os.fstat(fd)
    finally:
        os.close(fd)


def test_missing_files_and_directories_say_so(work):
    assert refused(work).kind == "missing"
    assert refused(work, "experiments/results.json").kind == "missing"
    assert reason_of(work) == "the harness wrote no results.json"


# ---- JSON content -------------------------------------------------------------------------------------

def test_100k_deep_nesting_is_refused_before_the_parser_recurses(work):
    (work / "results.json").write_text("[" * 100_000)
    err = refused(work)
    assert err.kind == "too_deep" and "line 1, column 33" in str(err)
    assert "results.json was refused" in reason_of(work)
    with pytest.raises(UntrustedFileError, match="deeper than 32"):
        load_json('{"a": ' * 100_000 + "1" + "}" * 100_000)


def test_brackets_and_escaped_quotes_inside_strings_do_not_count_as_depth():
    tricky = {"metrics": {"acc": 0.5}, "details": {"s": "[" * 1000 + '\\"{{{"', "n": 12345678901234567890}}
    assert load_json(json.dumps(tricky)) == tricky


def test_a_5000_digit_number_is_refused(work):
    (work / "results.json").write_text('{"metrics": {"acc": ' + "9" * 5000 + "}}")
    err = refused(work)
    assert err.kind == "number_too_long" and "9999" not in str(err)
    assert "longer than 40" in reason_of(work)
    for text in ("[0." + "1" * 5000 + "]", "[1e" + "1" * 100 + "]"):
        with pytest.raises(UntrustedFileError) as info:
            load_json(text)
        assert info.value.kind == "number_too_long"


def test_non_utf8_is_refused_with_the_offset_only(work):
    (work / "results.json").write_bytes(b'{"metrics": {"acc": 0.5}, "x": "\xff\xfe' + MARKER.encode() + b'"}')
    err = refused(work)
    assert err.kind == "not_utf8" and "offset 32" in str(err)
    assert "results.json was refused" in reason_of(work)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinite_numbers_are_refused(work, text):
    (work / "results.json").write_text('{"metrics": {"acc": ' + text + "}}")
    assert refused(work).kind == "not_finite"
    assert "results.json was refused" in reason_of(work)


def test_too_many_items_and_too_long_strings_are_refused():
    with pytest.raises(UntrustedFileError) as info:
        load_json(json.dumps(list(range(200))), max_items=100)
    assert info.value.kind == "too_many_items"
    with pytest.raises(UntrustedFileError) as info:
        load_json(json.dumps([MARKER * 100]), max_string_chars=50)
    assert info.value.kind == "string_too_long" and MARKER not in str(info.value)


def test_invalid_json_reports_a_position_not_the_content(work):
    (work / "results.json").write_text('{"metrics": {"acc": ' + MARKER + "}}")
    err = refused(work)
    assert err.kind == "bad_json" and "line 1, column 21" in str(err)
    assert "results.json was refused" in reason_of(work)


# ---- the results.json contract ------------------------------------------------------------------------

def test_200k_metric_names_are_refused_with_a_bounded_message(work):
    (work / "results.json").write_text(json.dumps(harness_file(metrics={f"m{i}": {} for i in range(200_000)})))
    reason = reason_of(work)
    assert len(reason) < 1000 and "results.json" in reason
    (work / "results.json").write_text(json.dumps(harness_file(metrics={f"{MARKER}{i}": {} for i in range(17)})))
    reason = reason_of(work)
    assert len(reason) < 1000 and "at most 16" in reason


@pytest.mark.parametrize("bad", [
    {"metrics": {"acc": MARKER}},
    harness_file(cells=[{"id": MARKER, "method": "m", "status": "maybe"}]),
    harness_file(cells=[{"id": f"bad id {{{MARKER}}}", "method": "m", "status": "ok"}]),
    harness_file(cells=[{"id": "x", "method": "m", "status": "ok", "values": {"ppl": {"mean": MARKER}}}]),
    harness_file(cells=[]),
    harness_file(schema=MARKER),
    harness_file(metrics=MARKER),
    [MARKER],
    MARKER,
])  # fmt: skip
def test_validation_errors_never_quote_the_file(work, bad):
    (work / "results.json").write_text(json.dumps(bad))
    reason = reason_of(work)
    assert "not a harness results file" in reason and len(reason) < 1000


def test_validation_message_has_no_input_and_is_clipped():
    class M(BaseModel):
        a: int
        b: dict[str, int]

    with pytest.raises(ValidationError) as info:
        M.model_validate({"a": MARKER, "b": {"k\x1b[31m" + "y" * 100: MARKER}})
    assert MARKER in str(info.value)  # what pydantic itself would have put into the prompt
    msg = validation_message(info.value)
    assert MARKER not in msg and "\x1b" not in msg and msg.startswith("a: ")
    assert "y" * 41 not in msg
    assert len(validation_message(info.value, limit=50)) <= 50


def test_a_normal_results_file_is_accepted_as_written(work):
    data = harness_file()
    (work / "results.json").write_text(json.dumps(data))
    assert read_results(work) == (data, "")


# ---- paths and writing --------------------------------------------------------------------------------

@pytest.mark.parametrize("rel", ["../x", "/etc/x", ".git/config", ".gitignore", ".job/stdout.log", "a//b",
                                 "a/./b", "a/", "", "-rf", "a\0b", "a b", "a/b/c/d/e/f/g", "x" * 129])
def test_check_relpath_refuses_escapes_dotfiles_and_odd_names(rel):
    with pytest.raises(UntrustedFileError) as info:
        check_relpath(rel)
    assert info.value.kind == "invalid" and "\0" not in str(info.value)


def test_check_relpath_accepts_ordinary_paths():
    assert check_relpath("experiments/attempt-1/results.json") == "experiments/attempt-1/results.json"
    assert check_relpath("figures/fig_1.v2+final.pdf") == "figures/fig_1.v2+final.pdf"


def test_write_new_replaces_a_symlink_and_leaves_its_target_alone(work, secret):
    before = secret.read_bytes()
    (work / "main.py").symlink_to(secret)
    write_new(work, "main.py", b"print('hi')\n", mode=0o6755)
    assert secret.read_bytes() == before and stat.S_IMODE(secret.stat().st_mode) == 0o600
    st = os.lstat(work / "main.py")
    assert stat.S_ISREG(st.st_mode) and (work / "main.py").read_bytes() == b"print('hi')\n"
    assert stat.S_IMODE(st.st_mode) == 0o755  # setuid and setgid dropped


def test_write_new_creates_directories_but_never_through_a_link(work, secret):
    write_new(work, "report/figures/fig-1.txt", b"x", mode=0o666)
    assert (work / "report/figures/fig-1.txt").read_bytes() == b"x"
    assert stat.S_IMODE((work / "report/figures/fig-1.txt").stat().st_mode) == 0o644
    (work / "out").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(UntrustedFileError) as info:
        write_new(work, "out/shadow", b"pwned")
    assert info.value.kind == "symlink" and MARKER in secret.read_text()
    (work / "dir").mkdir()
    with pytest.raises(UntrustedFileError):
        write_new(work, "dir", b"x")
    for rel in ("../escape", "/tmp/escape", ".git/config"):
        with pytest.raises(UntrustedFileError):
            write_new(work, rel, b"x")
    assert not (work.parent / "escape").exists()


# ---- `agentlab sandbox run` ---------------------------------------------------------------------------

@pytest.mark.parametrize("script,want", [
    ("import os; os.symlink(SECRET_PATH, 'results.json')", "results.json refused: results.json is a symbolic link"),
    ("open('results.json', 'w').write('{\"metrics\": {\"acc\": [' * 50000)", "results.json refused"),
    ("import json; json.dump({'metrics': {'acc': 0.5}, 'd': '[red]x[/]' * 2000}, open('results.json', 'w'))",
     'results.json: {"metrics": {"acc": 0.5}, "d": "[red]x[/]'),
])  # fmt: skip
def test_cli_sandbox_run_prints_results_through_the_safe_reader(tmp_path, monkeypatch, secret, script, want):
    from agentlab.sandbox.cli import sandbox_app

    monkeypatch.chdir(tmp_path)
    f = tmp_path / "exp.py"
    f.write_text(script.replace("SECRET_PATH", repr(str(secret))))
    r = CliRunner().invoke(sandbox_app, ["run", str(f), "--backend", "unsafe-local", "--timeout", "20",
                                         "--workdir", str(tmp_path / "wd")])
    assert want in r.output and MARKER not in r.output, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith("results.json"))
    assert len(line) <= 2100
