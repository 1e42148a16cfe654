"""The API reference of ``agentlab.modules`` for the experiment prompt, generated from the docstrings.

Parses the modules' source with ``ast`` (nothing is imported, so neither torch nor transformers is
needed): for every name in each module's ``__all__`` it renders the signature, the summary, what it
returns and one example. Dataclasses are rendered with their fields and the comments beside them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

__all__ = ["render_api_doc", "public_functions", "DOCUMENTED_MODULES"]

PACKAGE_DIR = Path(__file__).resolve().parent
DOCUMENTED_MODULES = ("models", "data", "metrics", "kv", "kv_quant", "kv_latent", "prune", "prune_search",
                      "speculative", "draft_heads", "attention")
SECTIONS = ("Args:", "Returns:", "Example:")


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
    return out


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
        "Import submodules by name: `from agentlab.modules import models, data, metrics, kv, kv_quant, kv_latent, prune, "
        "prune_search, speculative, draft_heads, attention`. Every method is a plain function over a Hugging Face "
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
    return "\n".join(out) + "\n"
