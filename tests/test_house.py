"""The house stays easy to read: no class over 250 lines, no function over 100 (issue #11)."""
import ast

from tests.conftest import ROOT

CLASS_LIMIT, FUNCTION_LIMIT = 250, 100


def _units():
    for path in sorted([*(ROOT / "compiler").rglob("*.py"), *(ROOT / "dsl").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node, node.end_lineno - node.lineno + 1


def test_no_class_or_function_grows_past_what_one_reader_holds():
    too_long = [f"{where} ({lines} lines)" for where, node, lines in _units()
                if lines > (CLASS_LIMIT if isinstance(node, ast.ClassDef) else FUNCTION_LIMIT)]
    assert not too_long, "split by responsibility: " + ", ".join(too_long)


def test_the_check_sees_every_unit():
    names = {where.split(" ")[1] for where, _, _ in _units()}
    assert {"compile_program", "CompiledTransformer", "main"} <= names
