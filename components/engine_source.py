"""The engine's own code, for the figure bundles' snippets: top-level definitions read from an
engine module's source file, with the module's third-party imports, so that a snippet runs
the engine's function itself rather than a copy of it.

The file is parsed, not imported: the app does not load torch or TransformerLens to build a
snippet. A definition read here must use nothing of the engine (no ``engine.`` name), which
``engine_source`` checks.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@cache
def _parsed(module: str) -> tuple[str, ast.Module]:
    text = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    return text, ast.parse(text)


def _segment(text: str, node: ast.stmt) -> str:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(text.splitlines()[first - 1 : node.end_lineno])


def _names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    return set()


def _used(nodes: list[ast.stmt]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


def imports(module: str, used: set[str]) -> list[str]:
    """`module`'s import statements that bind a name in `used`, less the engine's own."""
    text, tree = _parsed(module)
    out = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
        elif isinstance(node, ast.Import):
            top = node.names[0].name.split(".")[0]
        else:
            continue
        bound = {(a.asname or a.name).split(".")[0] for a in node.names}
        if top not in ("__future__", "engine") and bound & used:
            out.append(_segment(text, node))
    return out


def _found(module: str, names: tuple[str, ...]) -> list[ast.stmt]:
    text, tree = _parsed(module)
    found = {n: node for node in tree.body for n in _names(node) if n in names}
    missing = set(names) - set(found)
    if missing:
        raise LookupError(f"{module} defines no {sorted(missing)}")
    return sorted({id(n): n for n in found.values()}.values(), key=lambda n: n.lineno)


def definitions(module: str, *names: str) -> str:
    """The source of `module`'s top-level definitions `names` (functions with their
    decorators, classes, assignments), in the file's order, as written there."""
    text, _ = _parsed(module)
    parts = [_segment(text, n) for n in _found(module, names)]
    for part in parts:
        if re.search(r"\bengine\.\w", part):
            raise ValueError(f"{module}: a snippet's definition uses the engine: {part[:80]!r}")
    return "\n\n\n".join(parts)


def engine_source(*sources: tuple[str, tuple[str, ...]]) -> str:
    """Snippet lines: the imports the definitions need, then each (module, names) pair's
    definitions."""
    lines = [
        line for module, names in sources for line in imports(module, _used(_found(module, names)))
    ]
    defs = [definitions(module, *names) for module, names in sources]
    return "\n".join(dict.fromkeys(lines)) + "\n\n\n" + "\n\n\n".join(defs) + "\n"
