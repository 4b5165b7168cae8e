"""The project's import graph: no cycles, no private names across modules, no imports hidden in
functions. Every module of compiler/ and dsl/ is parsed, not imported, so a module that would
fail to import (or import slowly) is still checked."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("compiler", "dsl")



def module_files(root: Path) -> dict[str, Path]:
    """Module name -> file, for every module of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The module an ImportFrom names, with relative imports resolved against `module`."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _in_project(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def _function_level(tree: ast.Module) -> set[int]:
    """ids of the import statements that sit inside a function body."""
    inside = set()
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inside |= {id(n) for n in ast.walk(function) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return inside


def _enclosing_functions(tree: ast.Module) -> dict[int, str]:
    names = {}
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for n in ast.walk(function):
                if isinstance(n, (ast.Import, ast.ImportFrom)):
                    names.setdefault(id(n), function.name)
    return names


def analyse(root: Path = ROOT) -> tuple[nx.DiGraph, set[str]]:
    """The import graph of the project, and every offence found while building it."""
    modules = module_files(root)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    offences = set()
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        hidden = _function_level(tree)
        functions = _enclosing_functions(tree)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Import):
                targets = [(alias.name, None) for alias in node.names]
            else:
                source = _absolute(module, path, node)
                # `from package import module` imports that module; `from module import name` the module.
                targets = [(f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source, a.name)
                           for a in node.names]
            for target, name in targets:
                if not _in_project(target):
                    continue
                if id(node) in hidden:
                    offences.add(f"hidden import: {module}.{functions.get(id(node), '<lambda>')} imports {target}")
                # A function's import is a dependency all the same: it counts towards cycles.
                if target in modules and target != module:
                    graph.add_edge(module, target)
                if name and name.startswith("_") and not name.startswith("__") and target != module:
                    offences.add(f"private import: {module} imports {name} from {target}")
    for cycle in nx.simple_cycles(graph):
        start = cycle.index(min(cycle))  # one spelling per cycle, whatever node it was found from
        offences.add("cycle: " + " -> ".join(cycle[start:] + cycle[:start]))
    return graph, offences


def test_the_checker_sees_the_project():
    graph, _ = analyse()
    assert {"compiler.check.verify", "compiler.pipeline", "dsl.semantics"} <= set(graph)
    assert graph.has_edge("compiler.check.verify", "compiler.check.inputs")


def test_the_checker_finds_each_kind_of_offence(tmp_path):
    (tmp_path / "dsl").mkdir()
    (tmp_path / "dsl" / "__init__.py").write_text("")
    (tmp_path / "dsl" / "a.py").write_text("from dsl.b import _hidden\n")
    (tmp_path / "dsl" / "b.py").write_text("def f():\n    from dsl import a\n")
    _, offences = analyse(tmp_path)
    assert offences == {"cycle: dsl.a -> dsl.b", "private import: dsl.a imports _hidden from dsl.b",
                        "hidden import: dsl.b.f imports dsl.a"}


def test_no_cycles_private_imports_or_hidden_imports():
    _, offences = analyse()
    assert not offences, "\n".join(sorted(offences))


def test_tests_and_benchmarks_use_public_names_only():
    # A test that reaches for a private name pins an implementation detail, and breaks the
    # moment a module is split.
    offences = []
    for folder in ("tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module and _in_project(node.module):
                    offences += [f"{path.relative_to(ROOT)} imports {a.name} from {node.module}"
                                 for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not offences, "\n".join(offences)
