"""The package's layout, read from its source with `ast` (nothing is imported): no import cycle between modules or
between subpackages, counting the imports inside function bodies; an import inside a function only for an optional
dependency or with its reason (`# lazy: ...` on the line, or above its block of imports); no module over 350 lines
and no function over 60 lines outside `bench/` (ruff's C901, max 10, runs in `.ci/run` from pyproject.toml)."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tinyimagenet_resnet"

# Extras (setup.cfg [options.extras_require]) and platform-only modules: importing them at module level would break
# an install or an OS without them, so they are imported where they are used.
OPTIONAL = {"mlflow", "psycopg", "ray", "submitit", "joblib", "hydra_plugins", "resource", "winreg", "msvcrt"}
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
LAZY_MARK = "# lazy:"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Every dotted name an import statement may load: `from a.b import c` is `a.b` or the submodule `a.b.c`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported package module: line}, counting imports at any depth (functions, TYPE_CHECKING blocks)."""
    found = modules()
    graph: dict[str, dict[str, int]] = defaultdict(dict)
    for name, path in found.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in imported_names(node, name, path.name == "__init__.py"):
                    if target in found and target != name:
                        graph[name].setdefault(target, node.lineno)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan; the package is small, recursion is fine)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(component) > 1:
                found.append(sorted(component))

    for root in sorted(graph):
        if root not in index:
            visit(root)
    return found


def describe(component: list[str], graph: dict[str, dict[str, int]], unit) -> str:
    members = set(component)
    arrows = [
        f"{a}:{line} -> {b}"
        for a, targets in sorted(graph.items())
        for b, line in sorted(targets.items())
        if unit(a) in members and unit(b) in members and unit(a) != unit(b)
    ]
    return " | ".join(arrows)


def unit_of(module: str) -> str:
    """The subpackage of a module (`training`), or the top-level module itself (`main`, `compat`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_chain():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_between_modules_counting_imports_inside_functions():
    graph = import_graph()
    found = cycles({name: set(targets) for name, targets in graph.items()})
    assert not found, "import cycles: " + "; ".join(describe(c, graph, lambda m: m) for c in found)


def test_no_import_cycle_between_subpackages():
    graph = import_graph()
    units: dict[str, set[str]] = defaultdict(set)
    for a, targets in graph.items():
        for b in targets:
            if unit_of(a) != unit_of(b) and b != "tinyimagenet_resnet":
                units[unit_of(a)].add(unit_of(b))
    found = cycles(units)
    assert not found, "subpackage cycles: " + "; ".join(describe(c, graph, unit_of) for c in found)


def function_level_imports():
    for name, path in modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for func in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(func):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        yield name, path, node, lines


def block_comment(lines: list[str], index: int) -> str:
    """The comment line above the block of import lines that holds line `index` (a reason given once for a block)."""
    while index > 0 and lines[index - 1].strip().startswith(("import ", "from ")):
        index -= 1
    return lines[index - 1].strip() if index > 0 else ""


def test_imports_inside_functions_are_optional_dependencies_or_say_why():
    undocumented = []
    for name, path, node, lines in function_level_imports():
        targets = imported_names(node, name, path.name == "__init__.py")
        if targets[0].split(".")[0] in OPTIONAL:
            continue
        here = lines[node.lineno - 1]
        if LAZY_MARK in here or block_comment(lines, node.lineno - 1).startswith(LAZY_MARK):
            continue
        undocumented.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {here.strip()}")
    assert not undocumented, (
        f"{len(undocumented)} imports inside functions without a reason ({LAZY_MARK} on the line or above the block):\n"
        + "\n".join(undocumented)
    )


@pytest.mark.parametrize("limit_kind", ["module", "function"])
def test_no_module_over_350_lines_and_no_function_over_60_outside_bench(limit_kind):
    too_long = []
    for _, path in modules().items():
        if "bench" in path.relative_to(PACKAGE).parts:
            continue
        source = path.read_text(encoding="utf-8")
        if limit_kind == "module" and len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(PACKAGE.parent)}: {len(source.splitlines())} lines")
        if limit_kind == "function":
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        too_long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, "\n".join(too_long)


def test_the_complexity_rule_is_on_in_ruffs_configuration():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is in the standard library from Python 3.11")
    import tomllib

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"]["lint"]
    assert "C901" in config["select"]
    assert config["mccabe"]["max-complexity"] == 10
