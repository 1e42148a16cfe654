"""Where the real third-party fixtures are: tests/fixtures/{pdfs,qa} when present, else the shared
read-only copy (/work/shared/fixtures, or $AGENTLAB_SHARED_FIXTURES). Tests skip when neither exists,
so the PDFs and QA files need not be committed (their README asks not to republish them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_LOCAL = Path(__file__).resolve().parent.parent / "fixtures"
_SHARED = Path(os.environ.get("AGENTLAB_SHARED_FIXTURES", "/work/shared/fixtures"))


def fixture_dir(name: str) -> Path:
    for root in (_LOCAL, _SHARED):
        if (root / name).is_dir() and any((root / name).iterdir()):
            return root / name
    return _LOCAL / name


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"fixture {path.name} not available")
    return path


PDFS = fixture_dir("pdfs")
QA = fixture_dir("qa")
QASPER_DEV = next((p for p in (QA / "qasper-dev-v0.1.json", QA / "qasper_hf_dummy" / "qasper-dev-v0.1.json")
                   if p.exists()), QA / "qasper-dev-v0.1.json")
HAVE_PDFS = (PDFS / "2304.02623v1.pdf").exists()
