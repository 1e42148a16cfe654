"""A built wheel is a working tool: prompts/ and templates/ ship inside it and are found from any cwd.

The wheel is built from a clean copy of the source tree (a stale build/ folder cannot leak into it), installed
with `pip install --no-deps` into a FRESH virtualenv (the heavy dependencies come from this interpreter's
site-packages through a path file: no network), and then, from a directory outside the checkout, that venv
renders every prompt and every LaTeX template through agentlab's own loaders and runs its `agentlab doctor`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(900)

#: renders every prompt (prompts/*.j2) and every LaTeX template (templates/**/*.j2) with a stand-in for each of
#: its free variables (those of the templates it includes too), through agentlab.prompts and agentlab.report.latex
PROBE = r'''
import jinja2, jinja2.meta
import agentlab, agentlab.paths as p
from agentlab import prompts
from agentlab.report import latex

class Stand(str):
    """A stand-in for any template variable: usable as a string, mapping, list, object or number."""
    def __new__(cls, name="x"):
        return str.__new__(cls, name)
    def __getattr__(self, k):
        if k.startswith("__"):
            raise AttributeError(k)
        return Stand(k)
    def __getitem__(self, k):
        return Stand(str(k))
    def __iter__(self):
        return iter([Stand("item")])
    def __call__(self, *a, **k):
        return Stand("call")
    def items(self):
        return [(Stand("key"), Stand("value"))]
    def keys(self):
        return [Stand("key")]
    def values(self):
        return [Stand("value")]
    def get(self, k, d=None):
        return Stand(str(k))
    def __int__(self):
        return 1
    def __float__(self):
        return 1.0
    def __format__(self, spec):
        try:
            return format(1.0, spec)
        except ValueError:
            return str.__format__(self, spec)
    def __lt__(self, o):
        return False
    def __gt__(self, o):
        return True
    __le__, __ge__ = __lt__, __gt__
    __hash__ = str.__hash__
    __eq__ = str.__eq__

REAL = {"section": "results"}  # indexes a table inside its template

def free_vars(env, name, seen):
    if name in seen:
        return set()
    seen.add(name)
    ast = env.parse(env.loader.get_source(env, name)[0])
    out = set(jinja2.meta.find_undeclared_variables(ast))
    for sub in jinja2.meta.find_referenced_templates(ast):
        if sub:
            out |= free_vars(env, sub, seen)
    return out

def stand_ins(env, name):
    return {v: REAL.get(v, Stand(v)) for v in free_vars(env, name, set())}

pdir, tdir = p.prompts_dir(), p.templates_dir()
assert pdir.is_relative_to(p.PACKAGE_DIR) and tdir.is_relative_to(p.PACKAGE_DIR), (pdir, tdir)
penv, lenv = prompts._env(str(pdir)), latex.env()
done = []
for f in sorted(pdir.glob("*.j2")):
    kw = stand_ins(penv, f.name)
    if "<<system>>" in f.read_text():
        msgs = prompts.render_messages(f.name, **kw)
        assert msgs and all(m["content"] for m in msgs), f.name
    else:
        assert prompts.render_text(f.name, **kw) is not None, f.name
    done.append("prompt:" + f.name)
for f in sorted(tdir.rglob("*.j2")):
    name = f.relative_to(tdir).as_posix()
    assert latex.render(name, **stand_ins(lenv, name)).strip(), name
    done.append("latex:" + name)
print(agentlab.__file__)
print(",".join(latex.template_names()))
print(" ".join(done))
'''


def _copy_source(dst: Path) -> Path:
    skip = shutil.ignore_patterns(".venv", "build", "dist", "*.egg-info", ".git", "runs", "__pycache__", "*.pyc",
                                  ".pytest_cache", ".ruff_cache")
    shutil.copytree(ROOT, dst, ignore=skip)
    return dst


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """(venv python, venv dir): a fresh virtualenv with only the built wheel installed in it."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_source(tmp / "src")
    wheels = tmp / "wheels"
    b = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                        str(wheels), str(src)], capture_output=True, text=True, cwd=tmp, timeout=600)  # fmt: skip
    assert b.returncode == 0, b.stderr[-2000:]
    (whl,) = glob.glob(str(wheels / "agentlab-*.whl"))
    venv = tmp / "venv"
    v = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert v.returncode == 0, v.stderr[-2000:]
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the heavy dependencies, offline: this interpreter's site-packages, after the venv's own (a plain path line:
    # the .pth files there, such as an editable install of the checkout, are not run)
    deps = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (site / "zz_agentlab_test_deps.pth").write_text("".join(d + "\n" for d in deps))
    i = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", whl], capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert i.returncode == 0, i.stderr[-2000:]
    return py, venv


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTLAB_", "OPENAI_")) and k != "PYTHONPATH"}
    return {**env, "COLUMNS": "200", **extra}


def test_a_wheel_in_a_fresh_venv_renders_every_prompt_and_template(wheel_venv, tmp_path):
    py, venv = wheel_venv
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([str(py), "-c", PROBE], capture_output=True, text=True, cwd=elsewhere, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    where, templates, done = r.stdout.strip().splitlines()
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout
    assert "conference" in templates.split(",") and "article" in templates.split(","), r.stdout
    expected = {f"prompt:{f.name}" for f in (ROOT / "prompts").glob("*.j2")}
    expected |= {f"latex:{f.relative_to(ROOT / 'templates').as_posix()}" for f in (ROOT / "templates").rglob("*.j2")}
    assert set(done.split()) == expected, sorted(expected ^ set(done.split()))


def test_the_wheel_s_doctor_finds_its_data_and_its_exit_code_reflects_the_endpoint(wheel_venv, tmp_path,
                                                                                   llm_server):
    py, venv = wheel_venv
    agentlab = venv / "bin" / "agentlab"
    assert agentlab.exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    common = {"AGENTLAB_SANDBOX": "unsafe-local", "OPENAI_API_KEY": "none"}  # only the endpoint may fail here
    r = subprocess.run([str(agentlab), "doctor"], capture_output=True, text=True, cwd=elsewhere, timeout=300,
                       env=_env(**common, OPENAI_BASE_URL=url), stdin=subprocess.DEVNULL)  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr  # an endpoint that is configured and does not answer
    assert "not ready: LLM endpoint" in r.stdout and "Traceback" not in r.stderr, r.stdout + r.stderr
    row = next(line for line in r.stdout.splitlines() if "prompts and" in line)
    assert " ok " in row and str(venv) in " ".join(r.stdout.split()), r.stdout  # its own prompts/templates
    r = subprocess.run([str(agentlab), "doctor"], capture_output=True, text=True, cwd=elsewhere, timeout=300,
                       env=_env(**common, OPENAI_BASE_URL=llm_server.base_url, AGENTLAB_MODEL="scripted-model"),
                       stdin=subprocess.DEVNULL)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ready: runs can start here" in r.stdout
