"""One registry mechanism for every plug point: sandbox backends, LLM backends, paper sources, retrievers,
toolkit methods.

A registry maps a name to an object (a class, a function). Built-ins register themselves, eagerly, as a
lazy dotted path ("package.module:attr", imported on first use) or as a loader callable; a registry can
also *discover* the built-ins of a package by reading its modules' source for a decorator
(``@kv_method("snapkv")``), so adding a built-in is one new file. Third-party distributions add entries
through the entry-point group `agentlab.<kind>` in their own metadata, e.g. in their pyproject.toml:

    [project.entry-points."agentlab.kv_methods"]
    my_press = "my_pkg.press:score"

Every place that lists names (CLI choices and help, workflow schemas, `agentlab doctor`, the API doc the
experiment prompt sees) asks the registry, so a plugin shows up everywhere without editing AgentLab.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name no registry entry answers to; the message lists the names that exist.

    A ``KeyError`` (a lookup) and a ``ValueError`` (a bad argument), so callers that caught either keep working.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown name"


class Names(Sequence[str]):
    """A live, read-only list of a registry's names (plus fixed extras such as "auto"), re-read on every use.

    Behaves like a tuple of strings (``in``, ``len``, iteration, ``", ".join(...)``) but sees plugins installed
    after it was created.
    """

    def __init__(self, registry: Registry, *extra: str):
        self._registry, self._extra = registry, extra

    def _all(self) -> tuple[str, ...]:
        return (*self._extra, *(n for n in self._registry.names() if n not in self._extra))

    def __getitem__(self, i):  # type: ignore[override]
        return self._all()[i]

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return repr(self._all())


class Registry(Generic[T]):
    """Named entries of one kind: built-in (eager, lazy or discovered) plus entry points of group `agentlab.<kind>`."""

    def __init__(self, kind: str, what: str):
        self.kind, self.what = kind, what  # what: a phrase for messages, e.g. "sandbox backend"
        self.group = f"agentlab.{kind}"
        self._objs: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._loaders: dict[str, Callable[[], T]] = {}
        self._eps: dict[str, Any] | None = None
        self._builtin: list[str] = []
        self._pending: list[tuple[str, str]] = []  # (package, decorator) still to scan
        self._loading_plugin = 0  # > 0 while an entry point is being imported
        REGISTRIES[kind] = self

    # ---- registering -----------------------------------------------------------------------------
    def register(self, name: str, obj: T | None = None, *, lazy: str | None = None,
                 loader: Callable[[], T] | None = None) -> Callable[[T], T] | T:
        """`reg.register("x", obj)`, `reg.register("x", lazy="pkg.mod:attr")`, `reg.register("x", loader=fn)`
        or `@reg.register("x")`. Registrations made while a plugin's entry point is imported stay plugins."""
        if name not in self._builtin and not self._loading_plugin:
            self._builtin.append(name)
        if lazy is not None:
            self._lazy[name] = lazy
            return lazy  # type: ignore[return-value]
        if loader is not None:
            self._loaders[name] = loader
            return loader  # type: ignore[return-value]
        if obj is not None:
            self._objs[name] = obj
            return obj

        def deco(o: T) -> T:
            self._objs[name] = o
            return o

        return deco

    def unregister(self, name: str) -> None:
        """Forget a built-in or in-process entry (tests; plugins stay while their distribution is installed)."""
        for d in (self._objs, self._lazy, self._loaders):
            d.pop(name, None)
        if name in self._builtin:
            self._builtin.remove(name)

    def discover(self, package: str, decorator: str) -> None:
        """Register lazily every top-level function or class of `package`'s modules decorated with
        ``@<decorator>("name", ...)``, found by reading their source (nothing is imported until `get`)."""
        self._pending.append((package, decorator))

    def _scan(self) -> None:
        while self._pending:
            package, decorator = self._pending.pop(0)
            folder = module_file(package)
            if folder is None:
                continue
            for path in sorted(folder.parent.glob("*.py")):
                if path.name.startswith("_"):
                    continue
                for node in ast.parse(path.read_text(encoding="utf-8")).body:
                    name = decorated_name(node, decorator)
                    if name is not None and name not in self._builtin:
                        self.register(name, lazy=f"{package}.{path.stem}:{node.name}")  # type: ignore[attr-defined]

    def _entry_points(self) -> dict[str, Any]:
        if self._eps is None:
            self._eps = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._eps

    def refresh(self) -> None:
        """Forget the cached entry points (after installing a plugin into the running interpreter)."""
        self._eps = None
        importlib.invalidate_caches()

    # ---- reading ---------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every name, without importing anything: built-ins in registration order, then plugins sorted."""
        self._scan()
        plugins = set(self._entry_points()) | set(self._objs)
        return self._builtin + sorted(n for n in plugins if n not in self._builtin)

    def choices(self, *extra: str) -> Names:
        """A live tuple-like view of `names()`, with `extra` names (e.g. "auto") first."""
        return Names(self, *extra)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The object registered as `name` (importing a lazy entry or a plugin on first use)."""
        self._scan()
        if name in self._objs:
            return self._objs[name]
        if name in self._lazy:
            mod, _, attr = self._lazy[name].partition(":")
            obj = getattr(importlib.import_module(mod), attr)
        elif name in self._loaders:
            obj = self._loaders[name]()
        elif name in self._entry_points():
            self._loading_plugin += 1
            try:
                obj = self._entry_points()[name].load()
            finally:
                self._loading_plugin -= 1
        else:
            raise UnknownName(f"unknown {self.what} {name!r}; choose one of: {', '.join(self.names())}")
        self._objs[name] = obj
        return obj

    def items(self) -> Iterator[tuple[str, T]]:
        for n in self.names():
            yield n, self.get(n)

    def is_plugin(self, name: str) -> bool:
        """True for a name an installed distribution provides through the entry-point group (even when its
        module was imported directly and registered itself), False for AgentLab's own and in-process entries."""
        self._scan()
        return name in self._entry_points() and name not in self._lazy and name not in self._loaders

    def target(self, name: str) -> str | None:
        """Where `name` lives as "package.module:attr", without importing it (None for eager objects)."""
        self._scan()
        if name in self._lazy:
            return self._lazy[name]
        ep = self._entry_points().get(name) if self.is_plugin(name) else None
        return ep.value if ep is not None else None

    def distribution(self, name: str) -> str | None:
        """The distribution (``name version``) that provides plugin `name`, or None for built-ins."""
        ep = self._entry_points().get(name) if self.is_plugin(name) else None
        dist = getattr(ep, "dist", None)
        return f"{dist.name} {dist.version}" if dist is not None else None


REGISTRIES: dict[str, Registry] = {}


# ---- reading source without importing it -----------------------------------------------------------
def module_file(module: str) -> Path | None:
    """The source file of `module` (a package's ``__init__.py``), found without importing anything:
    only the top-level package's spec is looked up, the rest is a walk of its directories."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    dirs = [Path(p) for p in (spec.submodule_search_locations or [])]
    for i, part in enumerate(rest):
        last = i == len(rest) - 1
        found = None
        for d in dirs:
            if last and (d / f"{part}.py").is_file():
                return d / f"{part}.py"
            if (d / part).is_dir():
                found = d / part
                break
        if found is None:
            return None
        if last:
            return found / "__init__.py" if (found / "__init__.py").is_file() else None
        dirs = [found]
    return None


def decorated_name(node: ast.AST, decorator: str) -> str | None:
    """The registry name in ``@<decorator>("name", ...)`` on a top-level def/class, else None."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return None
    for d in node.decorator_list:
        if isinstance(d, ast.Call) and d.args and isinstance(d.args[0], ast.Constant):
            f = d.func
            fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if fname == decorator and isinstance(d.args[0].value, str):
                return d.args[0].value
    return None
