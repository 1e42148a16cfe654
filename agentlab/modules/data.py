"""Text for calibration and evaluation, shipped with the package and held apart.

``calib.txt`` and ``eval.txt`` in ``agentlab/modules/data/`` are original prose written for this project
(public domain; no third-party text), on disjoint topics, so a method calibrated on one is never
scored on the other. ``pdf_text`` extracts the text of a real paper PDF (e.g. the fixtures) at run time
for experiments that want one; such text is not shipped.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["load_text", "token_ids", "pdf_text", "DATA_DIR"]

DATA_DIR = Path(__file__).resolve().parent / "data"


def load_text(split: str = "eval") -> str:
    """Return the shipped calibration or evaluation text.

    Args:
        split: "calib" (for calibration: Wanda norms, PCA, head training, search) or "eval" (for scores).
    Returns:
        The text as one string (about 1,000 words each; the two share no passage).
    Example:
        >>> from agentlab.modules.data import load_text
        >>> len(load_text("eval").split()) > 500
        True
    """
    if split not in ("calib", "eval"):
        raise ValueError(f"split must be 'calib' or 'eval', not {split!r}")
    return (DATA_DIR / f"{split}.txt").read_text(encoding="utf-8")


def token_ids(tokenizer, text: str, max_tokens: int | None = None, device=None):
    """Tokenize ``text`` into a ``[1, T]`` LongTensor, cut to ``max_tokens``.

    Returns:
        ``torch.LongTensor`` of shape ``[1, min(T, max_tokens)]`` on ``device`` (CPU if None).
    Example:
        >>> from agentlab.modules.data import load_text, token_ids
        >>> ids = token_ids(tok, load_text("eval"), max_tokens=256)
        >>> ids.shape
        torch.Size([1, 256])
    """
    ids = tokenizer(text, return_tensors="pt").input_ids
    if max_tokens is not None:
        ids = ids[:, :max_tokens]
    return ids.to(device) if device is not None else ids


def pdf_text(path: str | Path, max_chars: int | None = None) -> str:
    """Extract plain text from a PDF with ``pdftotext`` (poppler) if installed, else ``pypdf``.

    Returns:
        The text with whitespace runs collapsed to single spaces, cut to ``max_chars``.
    Example:
        >>> from agentlab.modules.data import pdf_text
        >>> text = pdf_text("paper.pdf", max_chars=20000)
    """
    path = Path(path)
    text = ""
    if shutil.which("pdftotext"):
        done = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=False)
        text = done.stdout.decode("utf-8", "replace") if done.returncode == 0 else ""
    if not text:
        from pypdf import PdfReader

        text = "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
    text = " ".join(text.split())
    return text[:max_chars] if max_chars else text
