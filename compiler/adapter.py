"""Checking adders we did not compile: a tiny-adder leaderboard file, or any add(a, b) callable.

    load_callable("submission.py")        # a file defining build_model() and add(model, a, b)
    load_callable("package.module:add")   # a plain add(a, b) -> int (also "file.py:add")

gives a function add(a, b) -> int; `stress` then runs edge cases, carry-stratified inputs and
uniform random inputs through it and reports what disagrees with the program's meaning.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import operator
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from compiler.verify_inputs import carry_pattern, edge_cases, random_batches, stratified
from dsl.errors import AdderError
from dsl.layout import Layout

SPEC_HINT = ("give a Python file defining build_model() and add(model, a, b), e.g. submission.py, "
             "or module:function naming a plain add(a, b), e.g. mypackage.adders:add")
MAX_COUNTEREXAMPLES = 20
SOURCES = ("edge", "stratified", "random")


# ----- loading -------------------------------------------------------------------------------------

def load_callable(spec: str) -> Callable[[int, int], int]:
    """Turn SPEC into add(a, b) -> int; every failure is an AdderError naming SPEC."""
    spec = (spec or "").strip()
    if not spec:
        raise AdderError("no adder given", hint=SPEC_HINT)
    if spec.endswith(".py") or Path(spec).is_file():
        return _from_leaderboard_file(spec)
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr:
        raise AdderError(f"{spec}: not a Python file or module:function", hint=SPEC_HINT)
    if module_part.endswith(".py"):
        module = _import_file(module_part, spec)
    else:
        module = _import_module(module_part, spec)
    function = module
    for name in attr.split("."):
        if not hasattr(function, name):
            raise AdderError(f"{spec}: {module_part} defines no '{attr}'", hint=SPEC_HINT)
        function = getattr(function, name)
    if not callable(function):
        raise AdderError(f"{spec}: '{attr}' is a {type(function).__name__}, not a function")
    _check_arity(function, 2, f"{spec}: {attr}(a, b)")
    return lambda a, b: as_int(function(a, b))


def _from_leaderboard_file(spec: str) -> Callable[[int, int], int]:
    path = Path(spec)
    module = _import_file(spec, spec, keep_path=True)
    try:
        missing = [name for name in ("build_model", "add") if not callable(getattr(module, name, None))]
        if missing:
            raise AdderError(f"{spec}: the file defines no {' and no '.join(n + '()' for n in missing)}",
                             hint="a leaderboard file defines build_model() and add(model, a, b) -> int")
        _check_arity(module.add, 3, f"{spec}: add(model, a, b)")
        try:
            model = module.build_model()
        except Exception as exc:
            raise AdderError(f"{spec}: build_model() failed: {_describe(exc, path)}") from None
    finally:
        _drop_path(path)
    add = module.add
    return lambda a, b: as_int(add(model, a, b))


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    return f"_adderc_outside_{digest}"


def _import_file(file_spec: str, spec: str, keep_path: bool = False):
    path = Path(file_spec)
    if not path.is_file():
        raise AdderError(f"{spec}: no such file" if path == Path(spec) else f"{spec}: no file {file_spec}",
                         hint=SPEC_HINT)
    name = _module_name(path)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise AdderError(f"{spec}: cannot load {file_spec} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    directory = str(path.resolve().parent)
    sys.path.insert(0, directory)  # so the file can import its neighbours
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        _drop_path(path)
        what = "import failed" if file_spec == spec else f"importing {file_spec} failed"
        raise AdderError(f"{spec}: {what}: {_describe(exc, path)}") from None
    except SystemExit as exc:
        sys.modules.pop(name, None)
        _drop_path(path)
        raise AdderError(f"{spec}: importing {file_spec} called exit({exc.code})") from None
    if not keep_path:
        _drop_path(path)
    return module


def _drop_path(path: Path) -> None:
    directory = str(path.resolve().parent)
    if directory in sys.path:
        sys.path.remove(directory)


def _import_module(module_name: str, spec: str):
    added = os.getcwd() not in sys.path and "" not in sys.path
    if added:  # `module:function` is looked up from the current directory, as `python -m` would
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AdderError(f"{spec}: no module named '{module_name}'", hint=SPEC_HINT) from None
        raise AdderError(f"{spec}: importing {module_name} failed: {_describe(exc)}") from None
    except Exception as exc:
        raise AdderError(f"{spec}: importing {module_name} failed: {_describe(exc)}") from None
    except SystemExit as exc:
        raise AdderError(f"{spec}: importing {module_name} called exit({exc.code})") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())


def _check_arity(function: Any, count: int, what: str) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # builtins and the like: find out when it is called
    try:
        signature.bind(*range(count))
    except TypeError:
        raise AdderError(f"{what} cannot be called with {count} arguments; its signature is "
                         f"{signature}") from None


def _describe(exc: BaseException, path: Path | None = None) -> str:
    """`Type: message (at file:line)`, the line in the user's file when the traceback passes it."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"SyntaxError: {exc.msg} (at {exc.filename}:{exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    if path is not None:
        mine = [f for f in frames if Path(f.filename).resolve() == path.resolve()]
        frames = mine or frames
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


def as_int(value: Any) -> int:
    """An adder's answer as an int; anything that is not a whole number raises TypeError."""
    if isinstance(value, bool):
        raise TypeError(f"answer is a bool ({value!r}), not an integer")
    if isinstance(value, int):
        return value
    try:
        return operator.index(value)  # numpy integers, one-element integer tensors
    except TypeError:
        pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"answer {value!r} ({type(value).__name__}) is not an integer")


# ----- stress --------------------------------------------------------------------------------------

def stress(add: Callable[[int, int], Any], layout: Layout, expected: Callable[[dict[str, int]], int], *,
           seed: int, random_count: int, per_stratum: int,
           max_counterexamples: int = MAX_COUNTEREXAMPLES) -> dict:
    """Run edge cases, carry-stratified inputs and `random_count` random inputs through add(a, b).

    `a` and `b` are the layout's two operands in layout order; `expected(operands)` gives the
    right answer. An exception from `add`, or an answer that is not an integer, counts as wrong.
    Returns {"checked", "wrong", "counterexamples" (the first `max_counterexamples`, in the order
    found: edge, then stratified, then random), "seed", "by_source": {source: {"checked", "wrong"}}}.
    """
    operands = layout.operands
    if len(operands) != 2:
        raise AdderError(f"an outside adder is called as add(a, b), but this layout has "
                         f"{len(operands)} operand(s): {', '.join(f.name for f in operands)}")
    first, second = operands[0].name, operands[1].name
    report: dict = {"checked": 0, "wrong": 0, "counterexamples": [], "seed": seed,
                    "by_source": {source: {"checked": 0, "wrong": 0} for source in SOURCES}}

    def check(source: str, inputs) -> None:
        tally = report["by_source"][source]
        for assignment in inputs:
            a, b = assignment[first], assignment[second]
            try:
                want = int(expected(assignment))
            except ValueError as exc:  # the meaning gives no answer here: nothing can match it
                want = f"no answer ({exc})"
            try:
                got: Any = as_int(add(a, b))
                right = got == want
            except (Exception, SystemExit) as exc:
                got, right = f"{type(exc).__name__}: {exc}", False
            tally["checked"] += 1
            if not right:
                tally["wrong"] += 1
                if len(report["counterexamples"]) < max_counterexamples:
                    report["counterexamples"].append(
                        {"a": a, "b": b, "expected": want, "got": got, "source": source,
                         "carry_pattern": carry_pattern(layout, assignment)})

    check("edge", edge_cases(layout))
    check("stratified", stratified(layout, per_stratum, seed))
    for batch in random_batches(layout, random_count, seed):
        check("random", batch)
    report["checked"] = sum(t["checked"] for t in report["by_source"].values())
    report["wrong"] = sum(t["wrong"] for t in report["by_source"].values())
    return report
