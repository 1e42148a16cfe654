"""The audit trail report/integrity.jsonl: append-only across revisions, bounded, and what blocks acceptance."""

import json

from agentlab.report import integrity


def test_the_trail_appends_across_revisions_and_keeps_every_record(tmp_path):
    path = tmp_path / "report" / "integrity.jsonl"
    one = integrity.Trail(path, 1)
    one.flagged("results", 1, "digit", "Ours is 41.3% faster.", "number 41.3 is typed")
    one.rewritten("results", 1, "Ours is faster.")
    one.decided("results", "digit", "Ours is faster.", "dropped", "no latency was measured")
    one.decided("caption", "pdf", "Table 8", "open", "the number 8 in the PDF")
    before = path.read_text()
    two = integrity.Trail(path, 2)
    two.flagged("abstract", 1, "seeds", "five seeds", "a seed count that is not \\val{count:seeds}")
    two.decided("abstract", "seeds", "", "fixed", "ok")
    assert path.read_text().startswith(before)  # nothing earlier is rewritten
    records = integrity.read(path)
    assert [r["event"] for r in records] == ["flagged", "rewritten", "decided", "decided", "flagged", "decided"]
    assert records[1]["replacement"] == "Ours is faster."
    assert integrity.summary(records, 1)["open"] == ["caption: the number 8 in the PDF (Table 8)"]
    assert integrity.summary(records) == {"revision": 2, "flagged": 1, "fixed": 1, "dropped": 0, "open": []}
    assert integrity.open_problems(records) == []  # the latest revision has none open


def test_a_damaged_or_linked_trail_is_read_safely(tmp_path):
    path = tmp_path / "integrity.jsonl"
    path.write_text('{"event": "flagged", "revision": 1}\nnot json\n' + json.dumps({"event": "other"}) + "\n")
    assert [r["event"] for r in integrity.read(path)] == ["flagged"]
    link = tmp_path / "link.jsonl"
    link.symlink_to(path)
    assert integrity.read(link) == []
    integrity.Trail(link, 1).decided("x", "k", "c", "open", "m")  # a link is replaced, never written through
    assert not link.is_symlink() and len(path.read_text().splitlines()) == 3
