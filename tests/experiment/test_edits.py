"""`agentlab.experiment.edits`: whole files in named fenced blocks, SEARCH/REPLACE edits, and hostile replies."""

from __future__ import annotations

import json
import time

import pytest

from agentlab.experiment.edits import EditError, EditResult, format_files, parse_reply

CODE = 'import torch\n\n\ndef prune(model, ratio):\n    return model\n'
PARENT = {
    "method.py": (
        "import torch\n"
        "\n"
        "\n"
        "def prune(model, ratio):\n"
        "    scores = model.weight.abs()\n"
        "    keep = scores > scores.quantile(ratio)\n"
        "    return keep\n"
    ),
    "utils.py": "def helper():\n    return 1\n",
}
FENCE = "```"


def edit(name: str, search: str, replace: str, fenced: bool = True) -> str:
    block = f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"
    return f"{name}\n{FENCE}python\n{block}{FENCE}\n" if fenced else f"{name}\n{block}"


# --- whole files -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reply", [
    f"Here it is:\n\n{FENCE}python method.py\n{CODE}{FENCE}\n",
    f'{FENCE}python title="method.py"\n{CODE}{FENCE}\n',
    f"{FENCE}py filename=method.py\n{CODE}{FENCE}\n",
    f"{FENCE}method.py\n{CODE}{FENCE}\n",
    f"{FENCE}python:method.py\n{CODE}{FENCE}\n",
    f"method.py\n{FENCE}python\n{CODE}{FENCE}\n",
    f"**method.py**\n\n{FENCE}python\n{CODE}{FENCE}\n",
    f"# method.py\n{FENCE}python\n{CODE}{FENCE}\n",
    f"File: method.py\n{FENCE}python\n{CODE}{FENCE}\n",
    f"### File: `method.py`\n{FENCE}python\n{CODE}{FENCE}\n",
    f"`method.py`:\n{FENCE}\n{CODE}{FENCE}\n",
    f"~~~python method.py\n{CODE}~~~\n",
    f"1. The method:\n\n   {FENCE}python method.py\n   " + CODE.replace("\n", "\n   ").rstrip(" ") + f"   {FENCE}\n",
])
def test_named_block_forms(reply):
    result = parse_reply(reply)
    assert result == EditResult({"method.py": CODE}, ["method.py"], "files")


def test_first_line_inside_block_names_the_file():
    result = parse_reply(f"{FENCE}python\n# file: method.py\n{CODE}{FENCE}\n")
    assert result.files == {"method.py": "# file: method.py\n" + CODE}  # kept: a python comment
    result = parse_reply(f'{FENCE}json\n# file: config.json\n{{"a": 1}}\n{FENCE}\n')
    assert result.files == {"config.json": '{"a": 1}\n'}  # dropped: JSON has no comments


def test_lone_unnamed_python_block_is_the_default_file():
    reply = f"I rewrote it.\n\n{FENCE}python\n{CODE}{FENCE}\n\nRun it."
    assert parse_reply(reply, default_name="method.py").files == {"method.py": CODE}
    with pytest.raises(EditError, match="none says which file it is"):
        parse_reply(reply)
    with pytest.raises(EditError, match="2 code block"):
        parse_reply(reply + f"\n{FENCE}python\nprint(1)\n{FENCE}\n", default_name="method.py")


def test_unnamed_blocks_beside_a_named_one_are_ignored():
    reply = (f"{FENCE}python method.py\n{CODE}{FENCE}\n\nUsage:\n\n{FENCE}bash\npython method.py --ratio 0.5\n"
             f"{FENCE}\n\n{FENCE}python\nprune(model, 0.5)\n{FENCE}\n")
    assert parse_reply(reply, default_name="method.py").files == {"method.py": CODE}


def test_several_files_replace_and_add_to_the_parent():
    reply = f"{FENCE}python utils.py\nX = 2\n{FENCE}\n\npkg/mod.py\n{FENCE}python\nY = 3\n{FENCE}\n"
    result = parse_reply(reply, PARENT)
    assert result.files == {**PARENT, "utils.py": "X = 2\n", "pkg/mod.py": "Y = 3\n"}
    assert result.changed == ["utils.py", "pkg/mod.py"] and result.mode == "files"


def test_an_unchanged_file_is_not_listed_as_changed():
    result = parse_reply(format_files({"utils.py": PARENT["utils.py"]}), PARENT)
    assert result.files == PARENT and result.changed == []


def test_no_code_says_so_and_shows_the_format():
    with pytest.raises(EditError) as err:
        parse_reply("I think the method is fine as it is.")
    assert "contains no code" in str(err.value)
    assert "```python method.py" in str(err.value) and "<<<<<<< SEARCH" in str(err.value)


def test_unclosed_block_is_refused():
    with pytest.raises(EditError, match="line 1 of the reply is never closed"):
        parse_reply(f"{FENCE}python method.py\n{CODE}")


def test_json_looking_content_is_kept_verbatim():
    py = 'CFG = {"ratio": 0.5, "path": "a\\\\b", "msg": "line\\n"}\nprint("{\\"x\\": 1}")\n'
    data = '{\n  "lr": 1e-3,\n  "text": "tab\\there \\"quoted\\" \\u00e9"\n}\n'
    result = parse_reply(f"{FENCE}python method.py\n{py}{FENCE}\n{FENCE}json config.json\n{data}{FENCE}\n")
    assert result.files == {"method.py": py, "config.json": data}
    assert json.loads(result.files["config.json"])["text"] == 'tab\there "quoted" \u00e9'


# --- round trip --------------------------------------------------------------------------------------------------

def test_format_files_round_trips():
    files = {
        "method.py": 'def f():\n    """Example:\n\n    ```\n    f()\n    ```\n    """\n\n    return 1\n',
        "notes.md": "# Notes\n\n````python\nx = 1\n````\n",
        "config.json": '{"a": [1, 2]}\n',
        "empty.txt": "",
        "pkg/mod.py": "\n\nX = 1\n\n",
    }
    text = format_files(files)
    assert text.startswith("````python method.py\n")  # a longer fence than any inside
    assert "\n```json config.json\n" in text and "\n`````markdown notes.md\n" in text
    result = parse_reply(text)
    assert result.files == files and result.mode == "files"
    assert parse_reply(text, files).changed == []


# --- edits -------------------------------------------------------------------------------------------------------

def test_exact_edit_inside_and_outside_a_fence():
    want = PARENT["method.py"].replace("scores > ", "scores >= ")
    for fenced in (True, False):
        result = parse_reply(edit("method.py", "    keep = scores > scores.quantile(ratio)\n",
                                  "    keep = scores >= scores.quantile(ratio)\n", fenced), PARENT)
        assert result.files == {**PARENT, "method.py": want}
        assert result.changed == ["method.py"] and result.mode == "edits"


def test_name_inside_the_fence_and_several_blocks_in_one_fence():
    reply = (f"{FENCE}python\nmethod.py\n<<<<<<< SEARCH\nimport torch\n=======\nimport torch\nimport math\n"
             ">>>>>>> REPLACE\n<<<<<<< SEARCH\n    return keep\n=======\n    return keep.float()\n>>>>>>> REPLACE\n"
             "utils.py\n<<<<<<< SEARCH\n    return 1\n=======\n    return 2\n>>>>>>> REPLACE\n" + FENCE)
    result = parse_reply(reply, PARENT)
    assert result.files["method.py"] == ("import torch\nimport math\n\n\ndef prune(model, ratio):\n"
                                         "    scores = model.weight.abs()\n    keep = scores > scores.quantile(ratio)\n"
                                         "    return keep.float()\n")
    assert result.files["utils.py"] == "def helper():\n    return 2\n"
    assert result.changed == ["method.py", "utils.py"]


def test_whitespace_tolerant_match_reindents_the_replacement():
    # the model dropped the indentation and added trailing spaces
    reply = edit("method.py", "scores = model.weight.abs()   \nkeep = scores > scores.quantile(ratio)\n",
                 "scores = model.weight.abs()\nif ratio:\n    keep = scores > 0\n")
    result = parse_reply(reply, PARENT)
    assert result.files["method.py"] == ("import torch\n\n\ndef prune(model, ratio):\n"
                                         "    scores = model.weight.abs()\n    if ratio:\n        keep = scores > 0\n"
                                         "    return keep\n")


def test_whitespace_tolerant_match_with_deeper_indentation():
    reply = edit("utils.py", "        def helper():\n            return 1\n",
                 "        def helper():\n            return 3\n")
    assert parse_reply(reply, PARENT).files["utils.py"] == "def helper():\n    return 3\n"


def test_relative_indentation_must_agree():
    reply = edit("utils.py", "def helper():\nreturn 1\n", "x\n")
    with pytest.raises(EditError, match="does not match"):
        parse_reply(reply, PARENT)


def test_empty_search_creates_a_missing_file_but_not_an_existing_one():
    result = parse_reply(edit("extra.py", "", "X = 1\n"), PARENT)
    assert result.files["extra.py"] == "X = 1\n" and result.changed == ["extra.py"]
    with pytest.raises(EditError, match="SEARCH part of the block for utils.py is empty, but utils.py exists"):
        parse_reply(edit("utils.py", "", "X = 1\n"), PARENT)


def test_mixed_reply_applies_in_order():
    reply = f"{FENCE}python new.py\nA = 1\n{FENCE}\n" + edit("new.py", "A = 1\n", "A = 2\n")
    result = parse_reply(reply, PARENT)
    assert result.files["new.py"] == "A = 2\n" and result.mode == "mixed"


def test_unnamed_edit_uses_the_only_parent_file_or_asks():
    block = "<<<<<<< SEARCH\n    return 1\n=======\n    return 5\n>>>>>>> REPLACE\n"
    only = {"utils.py": PARENT["utils.py"]}
    assert parse_reply(block, only).files == {"utils.py": "def helper():\n    return 5\n"}
    with pytest.raises(EditError, match="does not say which file it edits.*method.py, utils.py"):
        parse_reply(block, PARENT)


def test_crlf_reply():
    reply = edit("utils.py", "    return 1\n", "    return 4\n").replace("\n", "\r\n")
    assert parse_reply(reply, PARENT).files["utils.py"] == "def helper():\n    return 4\n"


def test_failed_search_shows_the_closest_lines():
    reply = edit("method.py", "    scores = model.weight.abs().mean()\n    keep = scores >= scores.quantile(ratio)\n",
                 "    keep = None\n")
    with pytest.raises(EditError) as err:
        parse_reply(reply, PARENT)
    assert str(err.value) == (
        "The SEARCH text for method.py does not match any lines of method.py.\n"
        "SEARCH:\n"
        "    scores = model.weight.abs().mean()\n"
        "    keep = scores >= scores.quantile(ratio)\n"
        "\n"
        "The most similar lines in method.py (lines 5-6):\n"
        "    5 |     scores = model.weight.abs()\n"
        "    6 |     keep = scores > scores.quantile(ratio)\n"
        "\n"
        "Copy the SEARCH lines exactly from the file (same lines, same indentation), "
        "or send method.py whole in a fenced block."
    )


def test_failed_search_clips_long_search_text():
    search = "".join(f"missing_line_{k} = {k}\n" for k in range(100))
    with pytest.raises(EditError) as err:
        parse_reply(edit("utils.py", search, "x\n"), PARENT)
    assert "missing_line_29" in str(err.value) and "missing_line_30 " not in str(err.value)
    assert "[... clipped]" in str(err.value) and len(str(err.value)) < 3000


def test_ambiguous_search_says_how_many_and_where():
    parent = {"m.py": "x = 0\nfor i in range(3):\n    x += i\n\nfor i in range(3):\n    x += i\n"}
    with pytest.raises(EditError, match=r"matches 2 places \(lines 2, 5\); it must match exactly one"):
        parse_reply(edit("m.py", "for i in range(3):\n    x += i\n", "pass\n"), parent)
    with pytest.raises(EditError, match=r"matches 2 places \(lines 3, 6\)"):  # ambiguous only when loose
        parse_reply(edit("m.py", "x += i  \n", "pass\n"), parent)


def test_unknown_file_lists_the_files():
    with pytest.raises(EditError, match=r"methd.py is not one of the files: method.py, utils.py\."):
        parse_reply(edit("methd.py", "import torch\n", "import numpy\n"), PARENT)


@pytest.mark.parametrize("reply, message", [
    (f"{FENCE}python method.py\nx\n", "never closed"),
    ("method.py\n<<<<<<< SEARCH\nx\n=======\ny\n", "never ends with a >>>>>>> REPLACE"),
    ("method.py\n<<<<<<< SEARCH\nx\n>>>>>>> REPLACE\n", "has no ======= line"),
])
def test_malformed_blocks(reply, message):
    with pytest.raises(EditError, match=message):
        parse_reply(reply, PARENT)


# --- safety ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, why", [
    ("../evil.py", "leaves the working folder"),
    ("pkg/../../evil.py", "leaves the working folder"),
    ("/etc/evil.py", "is an absolute path"),
    ("~/evil.py", "is an absolute path"),
    ("C:/evil.py", "is an absolute path"),
    (".hidden.py", "hidden \\(dot\\) file"),
    ("pkg/.env.json", "hidden \\(dot\\) file"),
    ("run.sh", "extension that is not allowed"),
    ("model.pt", "extension that is not allowed"),
    ("a/b/c.py", "not a plain relative name"),
    ("we$ird.py", "not a plain relative name"),
    ("x" * 70 + ".py", "not a plain relative name"),
])
def test_bad_names_are_refused(name, why):
    for reply in (f"{FENCE}python {name}\nx = 1\n{FENCE}\n", f"{name}\n{FENCE}python\nx = 1\n{FENCE}\n",
                  edit(name, "", "x = 1\n")):
        with pytest.raises(EditError, match=f"Refused file name .*: it .*{why}.*File names are plain relative"):
            parse_reply(reply, PARENT)


def test_allowed_may_refuse_more():
    def allowed(name):
        return name not in {"results.json", "spec.json"}

    with pytest.raises(EditError, match="Refused file name 'results.json': it is not a file the reply may write"):
        parse_reply(f'{FENCE}json results.json\n{{"acc": 1.0}}\n{FENCE}\n', allowed=allowed)
    assert parse_reply(f"{FENCE}json cfg.json\n{{}}\n{FENCE}\n", allowed=allowed).files == {"cfg.json": "{}\n"}


def test_too_many_files():
    reply = "".join(f"{FENCE}python f{k}.py\nX = {k}\n{FENCE}\n" for k in range(3))
    assert len(parse_reply(reply, max_files=3).files) == 3
    with pytest.raises(EditError, match="would leave 3 files .*; at most 2"):
        parse_reply(reply, max_files=2)
    with pytest.raises(EditError, match="would leave 4 files"):
        parse_reply(reply, {"old.py": ""}, max_files=3)


def test_too_large():
    big = "x = 1\n" * 100
    with pytest.raises(EditError, match="a.py would be 600 bytes; at most 500 bytes per file"):
        parse_reply(f"{FENCE}python a.py\n{big}{FENCE}\n", max_bytes=500)
    with pytest.raises(EditError, match="total 720 bytes; at most 500 in all"):
        parse_reply(f"{FENCE}python a.py\n{big[:360]}{FENCE}\n{FENCE}python b.py\n{big[:360]}{FENCE}\n",
                    max_bytes=500)
    with pytest.raises(EditError, match="too long"):
        parse_reply("x" * 10_000_000)


def test_nul_and_surrogates_are_refused():
    with pytest.raises(EditError, match="NUL bytes"):
        parse_reply(f"{FENCE}python a.py\nx = '\x00'\n{FENCE}\n")
    with pytest.raises(EditError, match="not valid Unicode"):
        parse_reply(f"{FENCE}python a.py\nx = '\ud800'\n{FENCE}\n")


def test_too_many_edit_blocks():
    reply = "utils.py\n" + "<<<<<<< SEARCH\n=======\n>>>>>>> REPLACE\n" * 65
    with pytest.raises(EditError, match="more than 64 SEARCH/REPLACE blocks"):
        parse_reply(reply, PARENT)


def test_hostile_repetitive_input_stays_fast():
    parent = {"a.py": "x\n" * 90_000}
    search = "x\n" * 40_000 + "y\n"
    start = time.monotonic()
    with pytest.raises(EditError, match="does not match"):
        parse_reply(edit("a.py", search, "z\n", fenced=False), parent, max_bytes=400_000)
    with pytest.raises(EditError, match="20 or more places"):
        parse_reply(edit("a.py", "x\n" * 1000, "z\n", fenced=False), parent, max_bytes=400_000)
    long = {"a.py": ("a" * 120 + "\n") * 1600}  # similar-but-not-equal long lines: difflib's worst case
    with pytest.raises(EditError, match="does not match"):
        parse_reply(edit("a.py", ("a" * 119 + "b\n") * 30, "z\n", fenced=False), long)
    lines = "\n".join(["`" * 5000, "<" * 5000, "=" * 5000, "a.py" * 5000] * 50)
    with pytest.raises(EditError):
        parse_reply(lines)
    assert time.monotonic() - start < 10


# --- a realistic reply -------------------------------------------------------------------------------------------

METHOD = '''"""Magnitude pruning with a per-layer sparsity schedule."""

from __future__ import annotations

import torch
from torch import nn


def layer_ratios(n_layers: int, ratio: float, power: float = 1.0) -> list[float]:
    """Sparsity per layer: later layers are pruned more, the mean stays `ratio`."""
    if n_layers == 1:
        return [ratio]
    raw = [(i / (n_layers - 1)) ** power for i in range(n_layers)]
    mean = sum(raw) / n_layers or 1.0
    return [min(0.95, ratio * r / mean) for r in raw]


@torch.no_grad()
def prune(model: nn.Module, ratio: float = 0.5, power: float = 1.0) -> nn.Module:
    """Zero the smallest-magnitude weights of every linear layer, in place.

    Config, as the harness passes it: {"ratio": 0.5, "power": 1.0}
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for module, r in zip(linears, layer_ratios(len(linears), ratio, power)):
        w = module.weight
        k = int(w.numel() * r)
        if k == 0:
            continue
        threshold = w.abs().flatten().kthvalue(k).values
        mask = w.abs() > threshold
        w.mul_(mask)
        module.register_buffer("prune_mask", mask, persistent=False)
    return model


def sparsity(model: nn.Module) -> float:
    """Fraction of zero weights over all linear layers."""
    total = zeros = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            total += m.weight.numel()
            zeros += int((m.weight == 0).sum())
    return zeros / max(total, 1)
'''

REPLY = f"""Looking at the failure, the previous node crashed because `kthvalue` was called with `k = 0` for the
first layer when the schedule assigned it zero sparsity, and the per-layer ratios were not capped, so the last
layer could be asked to drop more than all of its weights. I have rewritten `method.py` with three changes:

1. `layer_ratios` now normalises the schedule so that its mean is exactly the requested `ratio` (the harness
   compares methods at equal average sparsity, so this matters for a fair comparison against the uniform
   magnitude baseline), and caps every layer at 95 % so no layer is removed entirely.
2. `prune` skips layers whose budget rounds to zero weights instead of calling `kthvalue(0)`.
3. A small `sparsity` helper lets the harness (or you) check the achieved sparsity; it is not called by
   `prune` itself, so it cannot change the measured numbers.

Here is the complete file:

{FENCE}python method.py
{METHOD}{FENCE}

The `power` parameter controls how strongly the schedule favours later layers: `power = 0` gives uniform
sparsity (which should reproduce the magnitude baseline exactly and is a useful sanity check), while larger
values push more of the budget into the last layers, which prior work suggests are more redundant. I would
sweep it over `{{0, 0.5, 1, 2}}` at the plan's default ratio.

If you want to check it locally before the harness runs it:

{FENCE}bash
python -c "import method; print(method.layer_ratios(4, 0.5))"
{FENCE}

which should print ratios whose mean is 0.5, e.g. `[0.0, 0.333, 0.667, 0.95]` before capping redistributes.
The expected results entry looks like:

{FENCE}json
{{"method": "layerwise", "ratio": 0.5, "metrics": {{"ppl": 12.3}}}}
{FENCE}

Nothing else in the node needs to change; `spec.json` stays as it is.
"""


def test_realistic_coder_reply():
    assert 3000 < len(REPLY) < 4200  # about 865 tokens
    result = parse_reply(REPLY, {"method.py": "def prune(model):\n    return model\n"}, default_name="method.py")
    assert result.files == {"method.py": METHOD}
    assert result.changed == ["method.py"] and result.mode == "files"
