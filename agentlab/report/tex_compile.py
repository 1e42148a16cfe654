"""Compiling the report without reach into the host (see docs/report.md, "LaTeX and the host").

latexmk runs in a fresh build directory that holds only the report's own sources and figures, with
kpathsea in paranoid mode (openin_any=p, openout_any=p: no absolute paths, no `..`), shell escape
off, no latexmkrc, a wall-clock timeout and file-size/CPU limits; inside bubblewrap when it is usable
(only the TeX installation is visible, read-only; the build directory is the one writable place; no
network), and, when the host process is root, as an unprivileged uid. The PDF and the log are read
back with size caps, regular files only; so are the .bbl and the build's references.bib (for the
bibliography check, agentlab/report/pdf_check.py). A citation the log reports undefined fails the compile.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SOURCE_SUFFIXES = (".tex", ".bib", ".bst", ".cls", ".sty")
FIGURE_SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg")
MAX_SOURCE_BYTES = 20 << 20
MAX_PDF_BYTES = 100 << 20
MAX_LOG_BYTES = 1 << 20
MAX_BBL_BYTES = 4 << 20  # the .bbl and references.bib read back after the build
MAX_WRITE_BYTES = 256 << 20  # per file the compile may write (ulimit -f)
DEFAULT_SANDBOX_UID = 65533
BUILD_IN_SANDBOX = "/build"
#: what TeX needs of the host outside /usr (read-only); the kpathsea trees are added when elsewhere
_RO_PATHS = ("/etc/texmf", "/etc/alternatives", "/etc/ld.so.cache", "/etc/fonts", "/var/lib/texmf")
_TEXMF_VARS = ("TEXMFROOT", "TEXMFDIST", "TEXMFMAIN", "TEXMFSYSVAR", "TEXMFSYSCONFIG", "TEXMFLOCAL")
_NEVER_BIND = ("/", "/etc", "/var", "/home", "/root", "/tmp", "/proc", "/sys", "/dev", "/run")
_FILE_LINE = re.compile(r"^\./?([^:\n]+\.tex):(\d+): (.*)$", re.MULTILINE)
_UNDEFINED_CITE = re.compile(r"Citation [`']([^'\s]+)' on page \S+ undefined(?: on input line (\d+))?")


@dataclass
class CompileResult:
    ok: bool
    log_excerpt: str
    error_line: int | None
    pdf: Path | None
    isolation: str = ""  # how the compile was isolated, e.g. "bwrap, uid 65533"
    bbl: str = ""  # the build's <stem>.bbl ("" if none)
    bib_after: str = ""  # the build directory's references.bib after the build ("" if none)
    undefined_citations: list[str] = field(default_factory=list)  # keys the log says are undefined


def report_files(src_dir: Path) -> list[str]:
    """The files of a report directory a compile may see: top-level .tex/.bib/.bst/.cls/.sty,
    tables/*.tex and figures/*.pdf|png|jpg; regular files only (no links, no other directory)."""
    out = []
    for sub, suffixes in (("", SOURCE_SUFFIXES), ("tables", (".tex",)), ("figures", FIGURE_SUFFIXES)):
        d = src_dir / sub if sub else src_dir
        try:
            if not stat.S_ISDIR(os.lstat(d).st_mode):
                continue
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.endswith(suffixes) and not e.name.startswith(".") and e.is_file(follow_symlinks=False):
                out.append(f"{sub}/{e.name}" if sub else e.name)
    return out


def read_capped(path: Path, cap: int, tail: bool = False) -> bytes | None:
    """A regular file's bytes (never through a symlink); None if missing, not regular or over `cap`
    (with tail=True: its last `cap` bytes)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > cap:
            if not tail:
                return None
            f.seek(st.st_size - cap)
        return f.read(cap)


def sandbox_uid() -> int | None:
    """The uid the compile runs as when the host is root (AGENTLAB_SANDBOX_UID, default 65533)."""
    if os.geteuid() != 0:
        return None
    raw = os.environ.get("AGENTLAB_SANDBOX_UID", "").strip()
    uid = int(raw) if raw.isdigit() else DEFAULT_SANDBOX_UID
    return uid if uid != 0 else DEFAULT_SANDBOX_UID


def _as_user(uid: int | None) -> dict:
    return {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}


def _root_links() -> list[str]:
    args = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = Path("/") / name
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            args += ["--ro-bind", str(p), str(p)]
    return args


def bwrap_args(uid: int | None) -> tuple[str, ...] | None:
    """The bubblewrap options that start a sandbox here (as `uid` when given), or None when bwrap is
    missing, unusable (no user namespaces) or turned off (AGENTLAB_TEX_SANDBOX=off)."""
    if os.environ.get("AGENTLAB_TEX_SANDBOX", "").strip().lower() == "off" or not shutil.which("bwrap"):
        return None
    return _probe_bwrap(uid)


@functools.lru_cache(maxsize=8)
def _probe_bwrap(uid: int | None) -> tuple[str, ...] | None:
    base = ("bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv", "--ro-bind", "/usr",
            "/usr", *_root_links(), "--dev", "/dev", "--tmpfs", "/tmp")
    for extra in (("--proc", "/proc"), ()):  # some containers refuse a new /proc; TeX does not need it
        try:
            rc = subprocess.run([*base, *extra, "/bin/true"], check=False, stdin=subprocess.DEVNULL,
                                capture_output=True, timeout=30, cwd="/", **_as_user(uid)).returncode
        except (OSError, subprocess.SubprocessError):
            return None
        if rc == 0:
            return base + extra
    return None


@functools.lru_cache(maxsize=1)
def _tex_binds() -> tuple[tuple[str, ...], str]:
    """(read-only paths to bind besides /usr, PATH) for the TeX installation found on the host."""
    dirs = []
    for tool in ("latexmk", "pdflatex", "bibtex"):
        found = shutil.which(tool)
        if found:
            dirs.append(str(Path(found).parent))
    path = ":".join(dict.fromkeys([*dirs, "/usr/bin", "/bin"]))
    binds = [p for p in _RO_PATHS if os.path.exists(p)]
    extra = [*dirs]
    if shutil.which("kpsewhich"):
        for var in _TEXMF_VARS:
            try:
                val = subprocess.run(["kpsewhich", f"-var-value={var}"], check=False, capture_output=True,
                                     text=True, timeout=30, stdin=subprocess.DEVNULL).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                continue
            extra += [v.strip("!{}") for v in re.split(r"[:;,]", val) if v.strip("!{}")]
    for p in extra:
        real = os.path.realpath(p)
        covered = any(real == b or real.startswith(b.rstrip("/") + "/") for b in ("/usr", *binds))
        unsafe = real in _NEVER_BIND or real.startswith(("/home/", "/root/", "/tmp/", "/proc/", "/sys/"))
        if os.path.isdir(real) and not covered and not unsafe:
            binds.append(real)
    return tuple(dict.fromkeys(binds)), path


def _env(home: str, path: str) -> dict[str, str]:
    return {"PATH": path, "HOME": home, "TEXMFVAR": f"{home}/texmf-var", "TEXMFCONFIG": f"{home}/texmf-config",
            "TEXMFHOME": f"{home}/texmf", "LC_ALL": "C", "openin_any": "p", "openout_any": "p",
            "shell_escape": "f", "max_print_line": "10000"}  # log lines unwrapped (warnings parsed whole)


def _latexmk(main: str, timeout: float) -> list[str]:
    tex = "pdflatex -no-shell-escape -interaction=nonstopmode -halt-on-error -file-line-error %O %S"
    limits = f"ulimit -f {MAX_WRITE_BYTES // 512} 2>/dev/null; ulimit -t {int(timeout) + 10} 2>/dev/null; "
    return ["/bin/sh", "-c", limits + 'exec "$@"', "sh", "latexmk", "-norc", "-pdf", "-bibtex",
            "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", "-no-shell-escape",
            f"-pdflatex={tex}", main]


def _chown_tree(root: Path, owner: int, uid: int, gid: int) -> None:
    """lchown to uid:gid everything under root that `owner` owns (links are never followed; a file
    with another link somewhere else is left alone)."""
    paths = [str(root)]
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        paths += [os.path.join(dirpath, n) for n in dirnames + filenames]
    for path in paths:
        try:
            st = os.lstat(path)
            if st.st_uid == owner and (stat.S_ISDIR(st.st_mode) or st.st_nlink == 1):
                os.lchown(path, uid, gid)
        except OSError:
            pass


def _copy_in(src_dir: Path, build: Path) -> None:
    for rel in report_files(src_dir):
        data = read_capped(src_dir / rel, MAX_SOURCE_BYTES)
        if data is None:
            continue
        dest = build / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def _run(cmd: list[str], timeout: float, out_path: Path, **kw) -> int | None:
    """Run with stdout+stderr to a file; None = timed out. On a timeout everything it started is killed
    before this returns: the process group, and for bwrap the sandbox's pid 1 (which takes the whole
    pid namespace with it; bwrap reports its pid on --info-fd)."""
    info_r = info_w = None
    if cmd[0] == "bwrap":
        info_r, info_w = os.pipe()
        cmd = [cmd[0], "--info-fd", str(info_w), *cmd[1:]]
        kw["pass_fds"] = (info_w,)
    try:
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, **kw)
            if info_w is not None:
                os.close(info_w)
                info_w = None
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                if info_r is not None and _kill_sandbox(info_r):
                    try:  # bwrap exits once it has reaped its pid 1, i.e. once the namespace is empty
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                proc.wait()
                _wait_group_gone(proc.pid)
                return None
    finally:
        for fd in (info_r, info_w):
            if fd is not None:
                os.close(fd)


def _kill_sandbox(info_fd: int) -> bool:
    """SIGKILL the sandbox's pid 1 (bwrap's unreaped child, so its pid cannot have been reused)."""
    os.set_blocking(info_fd, False)
    try:
        m = re.search(rb'"child-pid"\s*:\s*(\d+)', os.read(info_fd, 65536))
        if m:
            os.kill(int(m.group(1)), signal.SIGKILL)
            return True
    except OSError:
        pass
    return False


def _wait_group_gone(pgid: int) -> None:
    """Wait (at most 5 s) until no live process of the (killed) group is left; zombies do no harm."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    if not os.path.isdir("/proc/self"):
        return True
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_bytes().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def sandboxed(inner: list[str], build: Path, home: Path, uid: int | None) -> tuple[list[str], dict, str]:
    """(argv, Popen keyword arguments, isolation in words) that run `inner` in `build` the way the
    compile does: bwrap when usable, as `uid` when given, with the minimal TeX environment. `build`
    and `home` must already belong to `uid`."""
    bwrap = bwrap_args(uid)
    binds, path = _tex_binds()
    isolation = ", ".join(filter(None, ["bwrap" if bwrap is not None else "no bwrap",
                                        f"uid {uid}" if uid is not None else "",
                                        "kpathsea paranoid (openin_any=p, openout_any=p), no shell escape"]))
    if bwrap is None:
        return inner, {"cwd": str(build), "env": _env(str(home), path), **_as_user(uid)}, isolation
    cmd = list(bwrap)
    for p in binds:
        cmd += ["--ro-bind", p, p]
    cmd += ["--bind", str(build), BUILD_IN_SANDBOX, "--chdir", BUILD_IN_SANDBOX]
    for k, v in _env("/tmp", path).items():
        cmd += ["--setenv", k, v]
    return cmd + inner, {"cwd": "/", "env": {"PATH": path}, **_as_user(uid)}, isolation


def compile_pdf(src_dir: Path, timeout: float, main: str = "main.tex") -> CompileResult:
    """latexmk (pdflatex + bibtex) on a copy of the report's own files; the PDF lands in src_dir."""
    if not shutil.which("latexmk"):
        return CompileResult(False, "latexmk is not installed (apt-get install latexmk texlive-latex-recommended)",
                             None, None)
    uid = sandbox_uid()
    root = Path(tempfile.mkdtemp(prefix="agentlab-tex-"))
    try:
        build, home = root / "build", root / "home"
        build.mkdir()
        home.mkdir()
        _copy_in(src_dir, build)
        if uid is not None:
            _chown_tree(root, os.getuid(), uid, uid)
        cmd, kw, isolation = sandboxed(_latexmk(main, timeout), build, home, uid)
        rc = _run(cmd, timeout, root / "latexmk.out", **kw)
        if uid is not None:  # hand everything back before reading it
            _chown_tree(root, uid, os.getuid(), os.getgid())
        if rc is None:
            return CompileResult(False, f"latexmk took longer than {timeout:.0f} s (a loop in the LaTeX?)",
                                 None, None, isolation)
        return _result(src_dir, root, build, main, rc, isolation)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _text(path: Path, cap: int, tail: bool = False) -> str:
    data = read_capped(path, cap, tail=tail)
    return data.decode(errors="replace") if data is not None else ""


def _result(src_dir: Path, root: Path, build: Path, main: str, rc: int, isolation: str) -> CompileResult:
    """What a finished latexmk left: the PDF (copied to src_dir), or the first error of the log; an
    undefined citation is an error too."""
    stem = main.removesuffix(".tex")
    log = read_capped(build / f"{stem}.log", MAX_LOG_BYTES, tail=True)
    log_text = log.decode(errors="replace") if log is not None else ""
    undefined, line = undefined_citations(log_text)
    extra = {"bbl": _text(build / f"{stem}.bbl", MAX_BBL_BYTES),
             "bib_after": _text(build / "references.bib", MAX_BBL_BYTES), "undefined_citations": undefined}
    pdf = read_capped(build / f"{stem}.pdf", MAX_PDF_BYTES) if rc == 0 else None
    if pdf is not None and not undefined:
        out = src_dir / f"{stem}.pdf"
        if out.is_symlink():
            out.unlink()
        out.write_bytes(pdf)
        return CompileResult(True, "", None, out, isolation, **extra)
    if pdf is not None:
        excerpt = (f"undefined citation(s): {', '.join(undefined)} (no entry in references.bib; cite only the "
                   "keys listed)" + (f"; first use on line {line} of {main}" if line else ""))
        return CompileResult(False, excerpt, line, None, isolation, **extra)
    text = _text(root / "latexmk.out", MAX_LOG_BYTES, tail=True)
    excerpt, line = log_error(log_text if log is not None else text, main)
    if not excerpt:
        blg = _text(build / f"{stem}.blg", MAX_LOG_BYTES, tail=True)
        excerpt = blg[-1500:] or text[-1500:] or f"latexmk failed (exit {rc}) and wrote no log"
    return CompileResult(False, excerpt, line, None, isolation, **extra)


def undefined_citations(log: str) -> tuple[list[str], int | None]:
    """The keys a pdflatex log reports as undefined citations (LaTeX's or natbib's warning), first seen
    first, and the input line of the first one when the log gives it."""
    keys: list[str] = []
    line = None
    for m in _UNDEFINED_CITE.finditer(log):
        if m.group(1) not in keys:
            keys.append(m.group(1))
        if line is None and m.group(2):
            line = int(m.group(2))
    return keys, line


def log_error(log: str, main: str = "main.tex") -> tuple[str, int | None]:
    """The first error of a pdflatex log (with its context lines) and its line in `main`."""
    m = _FILE_LINE.search(log)
    if m:
        start = m.start()
        line = int(m.group(2)) if m.group(1).removeprefix("/") == main else None
    else:
        idx = log.find("\n! ")
        if idx < 0:
            return "", None
        start = idx + 1
        lm = re.search(r"^l\.(\d+)", log[start:], re.MULTILINE)
        line = int(lm.group(1)) if lm else None
    return log[start:start + 1200].strip(), line
