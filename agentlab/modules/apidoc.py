"""The API reference of ``agentlab.modules`` for the experiment prompt, generated from the docstrings.

Parses the modules' source with ``ast`` (nothing is imported, so neither torch nor transformers is
needed): for every name in each module's ``__all__`` it renders the signature, the summary, what it
returns and one example. Dataclasses are rendered with their fields and the comments beside them.
Every module of the package is documented unless it sets ``__api__ = False``; the registered KV methods
(built-in files and installed plugins, read from their source the same way) are listed under ``kv`` as
``kv.<name>(model, input_ids, ...)``.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from pathlib import Path

from agentlab.modules import SUBMODULES
from agentlab.registry import Registry, decorated_name, module_file

__all__ = ["render_api_doc", "public_functions", "DOCUMENTED_MODULES"]
__api__ = False

PACKAGE_DIR = Path(__file__).resolve().parent
BASICS = ("models", "data", "metrics")  # shown first; the rest in name order
SECTIONS = ("Args:", "Returns:", "Example:")


def _documented(module: str) -> bool:
    path = PACKAGE_DIR / f"{module}.py"
    if not path.is_file():
        return False
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__api__" for t in node.targets)
                and isinstance(node.value, ast.Constant) and node.value.value is False):
            return False
    return True


DOCUMENTED_MODULES: tuple[str, ...] = tuple(sorted((m for m in SUBMODULES if _documented(m)),
                                                   key=lambda m: (BASICS.index(m) if m in BASICS else len(BASICS), m)))


def _method_registries() -> dict[str, tuple[Registry, str]]:
    """Documented module -> (its method registry, the decorator its methods use)."""
    from agentlab.modules.methods import KV_METHODS

    return {"kv": (KV_METHODS, "kv_method")}


@dataclass
class PublicFunction:
    module: str
    name: str
    signature: str
    doc: str


def _all_names(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]


def _signature(node: ast.FunctionDef) -> str:
    ret = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"{node.name}({ast.unparse(node.args)}){ret}"


def _parse(module: str):
    source = (PACKAGE_DIR / f"{module}.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    nodes = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    return source.splitlines(), tree, nodes


def public_functions() -> list[PublicFunction]:
    """Every public function (in a documented module's ``__all__``) with its signature and docstring.

    Returns:
        A list of ``PublicFunction(module, name, signature, doc)``.
    Example:
        >>> from agentlab.modules.apidoc import public_functions
        >>> any(f.name == "snapkv" for f in public_functions())
        True
    """
    out = []
    for module in DOCUMENTED_MODULES:
        _, tree, nodes = _parse(module)
        for name in _all_names(tree):
            node = nodes.get(name)
            if isinstance(node, ast.FunctionDef):
                out.append(PublicFunction(module, name, _signature(node), ast.get_docstring(node) or ""))
        out += [fn for fn, _ in registered_methods(module)]
    return out


def registered_methods(module: str) -> list[tuple[PublicFunction, str]]:
    """The methods registered for `module` (e.g. ``kv``), built-ins then plugins, read from their source:
    ``(PublicFunction(module, name, "name(model, input_ids, budget=0.25, ...)", doc), note)``."""
    regs = _method_registries()
    if module not in regs:
        return []
    reg, decorator = regs[module]
    out = []
    for name in reg.names():
        note = f"plugin from {reg.distribution(name) or 'an installed distribution'}" if reg.is_plugin(name) else ""
        node = _method_node(reg.target(name), name, decorator)
        if node is None:
            out.append((PublicFunction(module, name, f"{name}(model, input_ids, **params)",
                                       "(source not readable)"), note))
            continue
        out.append((PublicFunction(module, name, _method_signature(name, node), ast.get_docstring(node) or ""), note))
    return out


def _method_node(target: str | None, name: str, decorator: str) -> ast.FunctionDef | None:
    if not target:
        return None
    mod, _, attr = target.partition(":")
    path = module_file(mod)
    if path is None:
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    return next((n for n in defs if n.name == attr), None) or next(
        (n for n in defs if decorated_name(n, decorator) == name), None)


def _method_signature(name: str, node: ast.FunctionDef) -> str:
    """``name(model, input_ids, budget=0.25, <the hook's own parameters>)`` (no budget for transforms)."""
    transform = any(isinstance(d, ast.Call) and any(k.arg == "kind" and getattr(k.value, "value", None) == "transform"
                                                     for k in d.keywords) for d in node.decorator_list)
    args = copy.deepcopy(node.args)
    if args.args:
        if len(args.defaults) == len(args.args):
            args.defaults = args.defaults[1:]
        args.args = args.args[1:]
    own = ast.unparse(args)
    head = "model, input_ids" + ("" if transform else ", budget=0.25")
    return f"{name}({head}{', ' + own if own else ''})"


def _split(doc: str) -> dict[str, str]:
    parts = {"summary": []}
    key = "summary"
    for line in doc.splitlines():
        if line.strip() in SECTIONS:
            key = line.strip()[:-1].lower()
            parts[key] = []
            continue
        parts[key].append(line)
    return {k: _dedent("\n".join(v).strip("\n")).strip() if k != "summary" else "\n".join(v).strip()
            for k, v in parts.items()}


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text)


def _render_function(fn: PublicFunction) -> str:
    p = _split(fn.doc)
    lines = [f"#### `{fn.module}.{fn.signature}`", "", p.get("summary", "")]
    if p.get("args"):
        lines += ["", "Args:", "", "```text", *p["args"].splitlines(), "```"]
    if p.get("returns"):
        lines += ["", "**Returns:** " + " ".join(_dedent(p["returns"]).split())]
    if p.get("example"):
        code = [ln[4:] if ln.startswith((">>> ", "... ")) else "# -> " + ln.strip()
                for ln in p["example"].splitlines() if ln.strip()]
        lines += ["", "```python", *code, "```"]
    return "\n".join(lines)


def _render_class(module: str, node: ast.ClassDef, src: list[str]) -> str:
    doc = ast.get_docstring(node) or ""
    fields = []
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            line = src[stmt.lineno - 1]
            comment = line.split("#", 1)[1].strip() if "#" in line else ""
            fields.append(f"- `{stmt.target.id}: {ast.unparse(stmt.annotation)}`" + (f" — {comment}" if comment else ""))
    head = f"#### `{module}.{node.name}`" + (" (dataclass)" if fields else "")
    return "\n".join([head, "", doc, *([""] + fields if fields else [])])


def render_api_doc(modules=None) -> str:
    """Markdown reference of ``agentlab.modules`` (signature, summary, returns, one example per function).

    Args:
        modules: names of the submodules to include (default: all of ``DOCUMENTED_MODULES``), e.g.
            ``("models", "data", "metrics", "kv")`` for a KV-cache experiment.
    Returns:
        A Markdown string; the experiment prompt includes it verbatim.
    Example:
        >>> from agentlab.modules.apidoc import render_api_doc
        >>> "kv.snapkv(" in render_api_doc()
        True
    """
    out = [
        "# agentlab.modules — API for experiments",
        "",
        f"Import submodules by name: `from agentlab.modules import {', '.join(DOCUMENTED_MODULES)}`. "
        "Every method is a plain function over a Hugging Face "
        "causal LM that returns the new model/cache/generator plus a dataclass of numbers. Calibrate on "
        "`data.load_text('calib')`, score on `data.load_text('eval')`.",
    ]
    chosen = DOCUMENTED_MODULES if modules is None else tuple(modules)
    unknown = set(chosen) - set(DOCUMENTED_MODULES)
    if unknown:
        raise ValueError(f"unknown modules {sorted(unknown)}; choose from {DOCUMENTED_MODULES}")
    for module in chosen:
        src, tree, nodes = _parse(module)
        out += ["", f"## `agentlab.modules.{module}`", "", (ast.get_docstring(tree) or "").split("\n\n")[0]]
        for name in _all_names(tree):
            node = nodes.get(name)
            if isinstance(node, ast.FunctionDef):
                out += ["", _render_function(PublicFunction(module, name, _signature(node), ast.get_docstring(node) or ""))]
            elif isinstance(node, ast.ClassDef):
                out += ["", _render_class(module, node, src)]
        methods = registered_methods(module)
        if methods:
            out += ["", f"### Registered `{module}` methods (also `{module}.compress(model, input_ids, \"<name>\", ...)`)",
                    "", f"Names: {', '.join(f'`{fn.name}`' for fn, _ in methods)}. A new one is one decorated hook: "
                    f"`@{module}.kv_method(\"mine\") def mine(ctx: {module}.ScoreContext, my_param=1) -> Tensor` "
                    "(scores `[B, H_kv, T]`, highest kept)."]
            for fn, note in methods:
                out += ["", _render_function(fn) + (f"\n\n_{note}_" if note else "")]
    return "\n".join(out) + "\n"
