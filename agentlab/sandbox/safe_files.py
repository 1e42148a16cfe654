"""Reading (and writing) files in a directory a sandboxed job could write to, without trusting them.

Everything an experiment leaves in its attempt directory is hostile: `results.json` may be a symbolic
link to /etc/shadow, a FIFO, a link to /dev/zero, a 1 TiB sparse file, 100k-deep JSON, non-UTF-8, a
5000-digit number or a million keys. The host (often root) reads such files only through this module:

- `read_bytes` opens a path relative to a directory component by component with O_NOFOLLOW (links made
  by a job are never followed), accepts only regular, non-sparse files and reads at most `max_bytes`;
- `load_json` parses with bounded depth, item count, number and string length, finite numbers only;
- every refusal is an `UntrustedFileError` whose message names the path and the problem, never the
  file's content, so nothing a job wrote reaches a prompt or a screen through an error message;
- `validation_message` renders a pydantic error without the input it was given;
- `write_new` writes a file under a directory a job could have written to, replacing (never following)
  whatever entry is at the name.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from typing import Any, NoReturn

import pydantic

_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_SPARSE_MIN = 64 * 1024  # smaller files are never called sparse (inline data, tmpfs, delayed allocation)
_CHUNK = 1 << 16
_LINK = "is a symbolic link; links made by a job are never followed"
_NOT_REG = "is not a regular file (a directory, FIFO, socket or device)"
# JSON tokens the depth pre-scan cares about: a whole string, a lone (unterminated) quote, a bracket, a number
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|["\[\]{}]|-?[0-9][0-9.eE+-]*', re.DOTALL)
_BRACKETS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|["\[\]{}]', re.DOTALL)


class UntrustedFileError(Exception):
    """A job-written file was refused. `kind` says why (missing, symlink, not_regular, too_large, sparse,
    not_utf8, bad_json, too_deep, too_many_items, number_too_long, string_too_long, not_finite, invalid,
    unreadable); the message names the path and the problem, never the file's content."""

    def __init__(self, kind: str, problem: str, rel: str | None = None) -> None:
        self.kind, self.problem, self.rel = kind, problem, rel
        super().__init__(f"{rel} {problem}" if rel else problem)

    def __reduce__(self) -> tuple:  # picklable (e.g. across processes) despite the extra arguments
        return (UntrustedFileError, (self.kind, self.problem, self.rel))

    def at(self, rel: str) -> UntrustedFileError:
        """The same error, naming `rel` (for errors raised before the path was known)."""
        return UntrustedFileError(self.kind, self.problem, rel)


def _printable(text: str, n: int) -> str:
    """Printable ASCII only, at most n characters (for names a job chose)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text[:n])


def check_relpath(rel: str, max_depth: int = 6) -> str:
    """`rel` as a normalised relative posix path, or UntrustedFileError("invalid"): no absolute paths,
    no `..`, `.` or empty components, no dotfiles, no leading `-`, only [A-Za-z0-9._+-], depth <= max_depth."""
    def bad(problem: str) -> NoReturn:
        raise UntrustedFileError("invalid", problem, f"path {_printable(repr(rel), 80)}")

    if not isinstance(rel, str) or not rel:
        bad("is not a usable relative path (empty or not a string)")
    if "\0" in rel:
        bad("contains a NUL byte")
    if rel.startswith("/"):
        bad("is absolute; only paths inside the work directory are allowed")
    parts = rel.split("/")
    if len(parts) > max_depth:
        bad(f"is nested deeper than {max_depth} directories")
    if any(p in ("", ".", "..") for p in parts):
        bad("has an empty, '.' or '..' component")
    if not all(_COMPONENT.fullmatch(p) for p in parts):
        bad("has a component that is not [A-Za-z0-9][A-Za-z0-9._+-]{0,127} (no dotfiles, no leading '-')")
    return "/".join(parts)


def _open_root(root: str | os.PathLike | int, rel: str) -> tuple[int, bool]:
    """(fd of the root directory, whether we own it). The root is the host's choice: it may be a link."""
    if isinstance(root, int):
        return root, False
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), True
    except OSError as exc:
        raise UntrustedFileError("missing" if exc.errno == errno.ENOENT else "unreadable",
                                 f"cannot be read: its directory cannot be opened ({exc.strerror})", rel) from None


def _open_at(name: str, flags: int, dir_fd: int, where: str) -> int:
    """os.open(name, flags, dir_fd=dir_fd); an OSError becomes the matching UntrustedFileError."""
    try:
        return os.open(name, flags, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise UntrustedFileError("missing", "does not exist", where) from None
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            raise UntrustedFileError("unreadable", f"cannot be opened ({exc.strerror})", where) from None
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = exc.errno == errno.ELOOP
    if is_link:
        raise UntrustedFileError("symlink", _LINK, where)
    raise UntrustedFileError("not_regular", "is not a directory", where)


def _walk_dirs(root_fd: int, parts: list[str], create: bool = False) -> int:
    """An fd of the directory holding the last of `parts`, reached without following any link."""
    fd = root_fd
    try:
        for i, part in enumerate(parts[:-1]):
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass  # whatever is there is checked by the O_DIRECTORY|O_NOFOLLOW open
            nfd = _open_at(part, _DIR_FLAGS, fd, "/".join(parts[: i + 1]))
            if fd != root_fd:
                os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        if fd != root_fd:
            os.close(fd)
        raise


def _looks_sparse(fd: int, st: os.stat_result) -> bool:
    """True for a file with holes: far fewer blocks than its size *and* a hole before its end (SEEK_HOLE,
    so a compressed or not-yet-allocated file is not mistaken for a sparse one)."""
    if st.st_size <= _SPARSE_MIN or st.st_blocks * 512 >= st.st_size // 4:
        return False
    try:
        return os.lseek(fd, 0, os.SEEK_HOLE) < st.st_size
    except OSError:
        return True
    finally:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError:
            pass


def read_bytes(root: str | os.PathLike | int, rel: str, max_bytes: int) -> bytes:
    """The content of the regular file `rel` under `root` (a path or a directory fd), at most max_bytes.

    No link is followed on any component; FIFOs, devices, sockets, directories, sparse files and files
    larger than max_bytes are refused with an UntrustedFileError without being read."""
    rel = check_relpath(rel)
    parts = rel.split("/")
    root_fd, own_root = _open_root(root, rel)
    try:
        dir_fd = _walk_dirs(root_fd, parts)
        try:
            try:  # look before opening, so that no device or FIFO is ever opened
                pre = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise UntrustedFileError("missing", "does not exist", rel) from None
            except OSError as exc:
                raise UntrustedFileError("unreadable", f"cannot be examined ({exc.strerror})", rel) from None
            if stat.S_ISLNK(pre.st_mode):
                raise UntrustedFileError("symlink", _LINK, rel)
            if not stat.S_ISREG(pre.st_mode):
                raise UntrustedFileError("not_regular", _NOT_REG, rel)
            fd = _open_at(parts[-1], _FILE_FLAGS, dir_fd, rel)
        finally:
            if dir_fd != root_fd:
                os.close(dir_fd)
        try:
            return _read_open(fd, rel, max_bytes)
        finally:
            os.close(fd)
    finally:
        if own_root:
            os.close(root_fd)


def _read_open(fd: int, rel: str, max_bytes: int) -> bytes:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UntrustedFileError("not_regular", _NOT_REG, rel)
    if _looks_sparse(fd, st):
        raise UntrustedFileError("sparse", f"is a sparse file ({st.st_size} bytes, {st.st_blocks * 512} allocated); "
                                 "refused unread", rel)
    if st.st_size > max_bytes:
        raise UntrustedFileError("too_large", f"is {st.st_size} bytes, over the cap of {max_bytes} bytes", rel)
    chunks, total = [], 0
    while total <= max_bytes:  # bounded even if the file grows after fstat
        try:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
        except OSError as exc:
            raise UntrustedFileError("unreadable", f"cannot be read ({exc.strerror})", rel) from None
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise UntrustedFileError("too_large", f"grew past the cap of {max_bytes} bytes while being read", rel)
    return b"".join(chunks)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UntrustedFileError("not_utf8", f"is not UTF-8 (invalid byte at offset {exc.start})") from None


def read_text(root: str | os.PathLike | int, rel: str, max_bytes: int) -> str:
    """read_bytes, decoded as strict UTF-8 ("not_utf8" names the byte offset only)."""
    try:
        return _decode(read_bytes(root, rel, max_bytes))
    except UntrustedFileError as exc:
        raise exc.at(check_relpath(rel)) from None


def _where(text: str, pos: int) -> str:
    line, col = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
    return f"line {line}, column {col}"


def _prescan(text: str, max_depth: int, max_number_chars: int | None = None) -> None:
    """One linear pass that skips strings: nesting depth (before json.loads recurses) and, when
    max_number_chars is given, where the first over-long number is (only run to place an error)."""
    depth = 0
    for m in (_TOKENS if max_number_chars is not None else _BRACKETS).finditer(text):
        c = m.group(0)[0]
        if c in "[{":
            depth += 1
            if depth > max_depth:
                raise UntrustedFileError("too_deep", f"is JSON nested deeper than {max_depth} levels "
                                         f"(at {_where(text, m.start())})")
        elif c in "]}":
            depth -= 1
        elif c == '"':
            if m.end() - m.start() == 1:
                return  # an unterminated string: json.loads reports it
        elif max_number_chars is not None and m.end() - m.start() > max_number_chars:
            raise UntrustedFileError("number_too_long", f"has a number longer than {max_number_chars} characters "
                                     f"(at {_where(text, m.start())})")


def _count(value: Any, max_items: int, max_string_chars: int) -> None:
    """Refuse more than max_items values in all, or a string (key or value) over max_string_chars."""
    stack, n = [value], 0
    while stack:
        v = stack.pop()
        n += 1
        if n > max_items:
            raise UntrustedFileError("too_many_items", f"has more than {max_items} JSON values")
        if isinstance(v, str):
            if len(v) > max_string_chars:
                raise UntrustedFileError("string_too_long", f"has a string longer than {max_string_chars} characters")
        elif isinstance(v, dict):
            for k, x in v.items():
                if len(k) > max_string_chars:
                    raise UntrustedFileError("string_too_long", f"has a key longer than {max_string_chars} characters")
                stack.append(x)
        elif isinstance(v, list):
            stack.extend(v)


def load_json(data: bytes | str, *, max_depth: int = 32, max_items: int = 100_000, max_number_chars: int = 40,
              max_string_chars: int = 100_000) -> object:
    """Parse untrusted JSON within limits; any failure is an UntrustedFileError with a position, never content."""
    text = _decode(data) if isinstance(data, (bytes, bytearray)) else data

    def number(s: str, kind: type) -> Any:
        if len(s) > max_number_chars:
            raise UntrustedFileError("number_too_long", f"has a number longer than {max_number_chars} characters")
        v = kind(s)
        if isinstance(v, float) and not math.isfinite(v):
            raise UntrustedFileError("not_finite", "has a number too large for a float")
        return v

    def constant(s: str) -> NoReturn:
        raise UntrustedFileError("not_finite", "has NaN or Infinity, which JSON does not allow")

    try:
        _prescan(text, max_depth)
        value = json.loads(text, parse_int=lambda s: number(s, int), parse_float=lambda s: number(s, float),
                           parse_constant=constant)
        _count(value, max_items, max_string_chars)
        return value
    except UntrustedFileError as exc:
        if exc.kind == "number_too_long":
            _prescan(text, max_depth, max_number_chars)  # raises the same error, with its position
        raise
    except json.JSONDecodeError as exc:
        raise UntrustedFileError("bad_json", f"is not valid JSON ({exc.msg} at line {exc.lineno}, "
                                 f"column {exc.colno})") from None
    except RecursionError:
        raise UntrustedFileError("too_deep", "is JSON nested too deeply to parse") from None
    except MemoryError:
        raise UntrustedFileError("too_large", "is JSON too large to parse in memory") from None
    except Exception as exc:  # noqa: BLE001 - OverflowError, ValueError...: nothing escapes unlabelled
        raise UntrustedFileError("bad_json", f"could not be parsed as JSON ({type(exc).__name__})") from None


def read_json(root: str | os.PathLike | int, rel: str, *, max_bytes: int = 1_000_000, **limits: int) -> object:
    """read_bytes + load_json; errors name `rel`."""
    data = read_bytes(root, rel, max_bytes)
    try:
        return load_json(data, **limits)  # type: ignore[arg-type]
    except UntrustedFileError as exc:
        raise exc.at(check_relpath(rel)) from None


def validation_message(exc: pydantic.ValidationError, limit: int = 600) -> str:
    """"loc: msg; ..." for a pydantic error, without the input (so no file content reaches a prompt)."""
    from agentlab.phases.common import clip

    parts = []
    for e in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = ".".join(_printable(str(x), 40) for x in e.get("loc", ())) or "(top level)"
        parts.append(f"{loc}: {_printable(str(e.get('msg', '')), 200)}")
        if sum(len(p) + 2 for p in parts) > limit:
            break
    return clip("; ".join(parts), limit)


def write_new(root: str | os.PathLike, rel: str, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `rel` under `root` as a new regular file: missing directories are created, no link is
    followed, whatever entry is at the name is unlinked first (a directory is refused); the mode never
    carries setuid, setgid, sticky or group/other write bits."""
    rel = check_relpath(rel)
    parts = rel.split("/")
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        dir_fd = _walk_dirs(root_fd, parts, create=True)
        try:
            name = parts[-1]
            for _ in range(3):  # a job still running could recreate the name between unlink and create
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
                except IsADirectoryError:
                    raise UntrustedFileError("not_regular", "is a directory; refusing to replace it", rel) from None
                except OSError as exc:
                    raise UntrustedFileError("unreadable", f"cannot be replaced ({exc.strerror})", rel) from None
                try:
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                                 dir_fd=dir_fd)
                    break
                except FileExistsError:
                    continue
            else:
                raise UntrustedFileError("invalid", "kept being recreated while it was written", rel)
        finally:
            if dir_fd != root_fd:
                os.close(dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode & 0o755)
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)
