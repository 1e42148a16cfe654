import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentlab.modules import benchmark  # noqa: E402


def test_results_are_written_as_json_and_a_markdown_table(tmp_path):
    meta = {"model": "m", "device": "cpu", "device_name": "x", "dtype": "float32", "threads": 1, "torch": "t",
            "transformers": "5", "torch_pruning": None, "kvpress": "not installed", "kvpress_note": "pins",
            "eval_tokens": 8, "context_tokens": 6, "continuation_tokens": 2, "calib_tokens": 8, "prompts": 1,
            "gen_tokens": 4, "seconds": 1.0, "loadavg_start": [0, 0, 0], "loadavg_end": [0, 0, 0], "cpu_count": 2,
            "dense_acc": 0.5}
    rows = [benchmark._row(group="kv", method="snapkv", impl="ours", ppl=12.345, ref_ppl=12.345, kv_bytes=4096,
                           kv_ratio=4.0, lossless=True)]
    j, md = benchmark.write({"meta": meta, "rows": rows}, tmp_path, "t")
    assert json.loads(j.read_text())["rows"][0]["kv_bytes"] == 4096
    text = md.read_text()
    assert "| kv | snapkv | ours | 12.35 | 12.35 | — | 4 KiB | 4.00 |" in text
    assert "kvpress: not installed" in text and text.count("\n|") == 3
