"""The package's layering, read from the source with ``ast`` (nothing is imported).

Layers (each module imports only from its own layer or the layers above it, also inside
functions): 1 utils, geometry; 2 fpnp, features; 3 datasets; 4 mapping, evaluation;
5 localization; 6 training, viz; 7 cli. Imports between modules form no cycle (module- or
function-level), and only ``s2dloc.cli`` imports ``s2dloc`` inside functions (lazily, for a
fast start-up).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
LAYERS = {
    "utils": 1,
    "geometry": 1,
    "fpnp": 2,
    "features": 2,
    "datasets": 3,
    "mapping": 4,
    "evaluation": 4,
    "localization": 5,
    "training": 6,
    "viz": 6,
    "cli": 7,
    "__main__": 7,
    "": 0,
}
LAZY_IMPORTS_ALLOWED = ("s2dloc.cli",)

# Known violations (none today; keep it so): a violation not listed here fails its test, and a
# listed one that no longer occurs fails test_allow_lists_are_current. Entries are
# "importer -> imported" (module names) for the layer and function-level checks, sorted module
# tuples for cycles.
KNOWN_LAYER_VIOLATIONS: set[str] = set()
KNOWN_CYCLES: set[tuple[str, ...]] = set()
KNOWN_LAZY_IMPORTS: set[str] = set()


@dataclass(frozen=True)
class Import:
    """One ``s2dloc`` import: the importing module, the imported module, where, how."""

    importer: str
    imported: str
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((SRC / "s2dloc").rglob("*.py"))}


def _targets(node: ast.Import | ast.ImportFrom, importer: str) -> list[str]:
    """Modules of the package named by an import statement (a submodule when it is one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:  # relative: resolve against the importer's package
        is_package = MODULES[importer].name == "__init__.py"
        package = importer if is_package else importer.rsplit(".", 1)[0]
        for _ in range(node.level - 1):
            package = package.rsplit(".", 1)[0]
        base = f"{package}.{base}" if base else package
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return subs + ([base] if len(subs) < len(node.names) else [])


def _walk(node: ast.AST, importer: str, in_function: bool, out: list[Import]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            for target in _targets(child, importer):
                if target == "s2dloc" or target.startswith("s2dloc."):
                    out.append(Import(importer, target, child.lineno, in_function))
        nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        _walk(child, importer, in_function or nested, out)


def imports_of(module: str) -> list[Import]:
    out: list[Import] = []
    _walk(ast.parse(MODULES[module].read_text()), module, False, out)
    return out


ALL_IMPORTS = [imp for m in MODULES for imp in imports_of(m)]


def layer(module: str) -> int:
    package = module.split(".")[1] if "." in module else ""
    assert package in LAYERS, f"{module}: package {package!r} has no layer; add it to LAYERS"
    return LAYERS[package]


def layer_violations(imports: list[Import]) -> set[str]:
    return {
        f"{i.importer} -> {i.imported}" for i in imports if layer(i.imported) > layer(i.importer)
    }


def lazy_imports(imports: list[Import]) -> set[str]:
    return {
        f"{i.importer} -> {i.imported}"
        for i in imports
        if i.in_function and not i.importer.startswith(LAZY_IMPORTS_ALLOWED)
    }


def cycles(imports: list[Import]) -> set[tuple[str, ...]]:
    """Strongly connected components (of more than one module) of the import graph.

    Function-level imports count too: moving an import into a function does not remove a cycle.
    """
    graph: dict[str, set[str]] = {}
    for i in imports:
        if i.imported != i.importer:
            graph.setdefault(i.importer, set()).add(i.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[tuple[str, ...]] = set()

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _where(found: set[str], imports: list[Import]) -> list[str]:
    lines = {f"{i.importer} -> {i.imported}": i for i in imports}
    return [f"{MODULES[lines[f].importer].relative_to(SRC)}:{lines[f].line}: {f}" for f in found]


def test_modules_found():
    assert len(MODULES) > 50 and "s2dloc.features.gnnet" in MODULES
    assert any(i.imported == "s2dloc.features.common" for i in imports_of("s2dloc.features.gnnet"))


def test_layers():
    new = layer_violations(ALL_IMPORTS) - KNOWN_LAYER_VIOLATIONS
    assert not new, "imports from a lower layer:\n" + "\n".join(_where(new, ALL_IMPORTS))


def test_no_import_cycles():
    new = cycles(ALL_IMPORTS) - KNOWN_CYCLES
    assert not new, f"import cycles: {sorted(new)}"


def test_no_function_level_imports_outside_cli():
    new = lazy_imports(ALL_IMPORTS) - KNOWN_LAZY_IMPORTS
    assert not new, "function-level s2dloc imports:\n" + "\n".join(_where(new, ALL_IMPORTS))


def test_allow_lists_are_current():
    """Entries of the allow-lists that no longer occur must be removed (they were fixed)."""
    fixed = sorted(KNOWN_LAYER_VIOLATIONS - layer_violations(ALL_IMPORTS))
    fixed += sorted(KNOWN_LAZY_IMPORTS - lazy_imports(ALL_IMPORTS))
    fixed += [" <-> ".join(c) for c in sorted(KNOWN_CYCLES - cycles(ALL_IMPORTS))]
    message = "fixed, remove from the allow-lists in tests/test_layers.py:\n"
    assert not fixed, message + "\n".join(fixed)


def _synthetic(sources: dict[str, str]) -> list[Import]:
    out: list[Import] = []
    for name, code in sources.items():
        _walk(ast.parse(code), name, False, out)
    return out


def test_checks_catch_violations(monkeypatch):
    """The checks flag a lower-layer import, a two-module cycle and a hidden lazy import."""
    monkeypatch.setitem(MODULES, "s2dloc.geometry.fake", Path("fake.py"))
    imports = _synthetic(
        {
            "s2dloc.geometry.fake": "from s2dloc.features.gnnet import GNNet\n"
            "def f():\n    import s2dloc.localization.map\n",
            "s2dloc.features.gnnet": "import s2dloc.geometry.fake\n",
            "s2dloc.cli.main": "def main():\n    from s2dloc.localization import Map\n",
        }
    )
    assert layer_violations(imports) == {
        "s2dloc.geometry.fake -> s2dloc.features.gnnet",
        "s2dloc.geometry.fake -> s2dloc.localization.map",
    }
    assert cycles(imports) == {("s2dloc.features.gnnet", "s2dloc.geometry.fake")}
    assert lazy_imports(imports) == {"s2dloc.geometry.fake -> s2dloc.localization.map"}


@pytest.mark.parametrize("package", sorted({m.split(".")[1] for m in MODULES if "." in m}))
def test_every_package_has_a_layer(package):
    assert package in LAYERS
