"""Checking adders we did not compile: an AdderBoard submission file, or any add(a, b) callable.

    load_callable("submission.py")        # a file defining build_model() and add(model, a, b)
    load_callable("package.module:add")   # a plain add(a, b) -> int (also "file.py:add")

gives an `OutsideAdder`: call it as add(a, b) -> int. `stress` then runs edge cases,
carry-stratified inputs and uniform random inputs through it and reports what disagrees with the
program's meaning, each counterexample with its carry pattern.

A submission file follows the AdderBoard rules (its verify.py): `build_model()` returns
`(model, metadata)`, metadata a dict with "name", "author", "params", "architecture" and
"tricks"; `add(model, a, b)` returns the sum as an int. A `build_model()` that returns a bare
model (anything but a 2-tuple whose second item is a dict or None) is accepted too, with no
metadata.

Loading runs the file's code, with your permissions: only check files you would run yourself.

Time limits. The outside code runs in this process under an alarm (SIGALRM from
signal.setitimer), so a hang becomes a reported failure instead of a hung adderc:
CALL_TIMEOUT_S for each add(a, b) (a wrong answer: "add(a, b) took longer than 5 s"; after
MAX_TIMEOUTS of them `stress` stops calling the adder), BUILD_TIMEOUT_S for importing the file and
again for build_model() (both exit 2). Pass call_timeout / build_timeout to `load_callable` to
change them; None switches a limit off. Limits of the mechanism:
- the alarm interrupts Python code only between bytecodes: one long call into C (a single huge
  matmul, a C extension that blocks) is stopped only when it returns to Python;
- it needs the main thread on a POSIX system; elsewhere the code runs without a limit;
- code that catches BaseException (a bare `except:`) can swallow the alarm; it fires again every
  ALARM_REPEAT_S, so only code that swallows it in a loop forever can still hang;
- an alarm the outside code sets itself is replaced while it runs and restored afterwards.
What the outside code prints goes to stderr, so that adderc's report on stdout stays readable.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import math
import operator
import os
import reprlib
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from compiler.check.inputs import carry_pattern, edge_cases, random_batches, stratified
from dsl.errors import AdderError
from dsl.layout import Layout

SPEC_HINT = ("give a Python file defining build_model() and add(model, a, b), e.g. submission.py, "
             "or module:function naming a plain add(a, b), e.g. mypackage.adders:add")
MAX_COUNTEREXAMPLES = 20
SOURCES = ("edge", "stratified", "random")

CALL_TIMEOUT_S = 5.0      # one add(a, b); the board's files take milliseconds
BUILD_TIMEOUT_S = 120.0   # importing the file (torch alone takes seconds), and again build_model()
MAX_TIMEOUTS = 3          # an adder that hangs this often is not worth 5 s per remaining input
ALARM_REPEAT_S = 1.0      # the alarm fires again this often while swallowed
METADATA_KEYS = ("name", "author", "params", "architecture", "tricks")
_UNSET: Any = object()    # "use the module constant as it is at call time" (tests lower it)


class NotAnInteger(TypeError):
    """An adder's answer that is not a whole number."""


class CallTimeout(BaseException):
    """Raised by the alarm inside the outside code.

    A BaseException, so that the `except Exception:` many files wrap around their model does not
    swallow it."""


# ----- time limits ---------------------------------------------------------------------------------

def _alarm_available() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str):
    """Raise CallTimeout("<what> took longer than <seconds>") in the code run inside once it has
    run that long, and again every ALARM_REPEAT_S while it keeps running (limits: module docstring)."""
    if not seconds or seconds <= 0 or not _alarm_available():
        yield
        return

    def expire(signum, frame):
        raise CallTimeout(f"{what} took longer than {_seconds(seconds)}")

    previous_handler = signal.signal(signal.SIGALRM, expire)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds, ALARM_REPEAT_S)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:  # someone else's alarm was pending: let it still go off
            left = max(previous_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, previous_interval)


def _seconds(seconds: float) -> str:
    return f"{seconds:g} s"


@contextlib.contextmanager
def _outside(seconds: float | None, what: str):
    """Run outside code: under the time limit, its prints sent to stderr."""
    with contextlib.redirect_stdout(sys.stderr), time_limit(seconds, what):
        yield


# ----- the adder -----------------------------------------------------------------------------------

@dataclass
class OutsideAdder:
    """add(a, b) -> int around outside code: the time limit on each call, the answer made an int.

    Raises CallTimeout when the call runs past `timeout` seconds, NotAnInteger (a TypeError) when
    the answer is not a whole number, and whatever the outside code raises."""
    spec: str
    function: Callable[[int, int], Any]
    metadata: dict = field(default_factory=dict)
    timeout: float | None = CALL_TIMEOUT_S
    path: Path | None = None  # the file it came from: failures name their line in it

    def __call__(self, a: int, b: int) -> int:
        with _outside(self.timeout, f"add({a}, {b})"):
            return as_int(self.function(a, b))


def as_int(value: Any) -> int:
    """An adder's answer as an int; anything that is not a whole number raises NotAnInteger."""
    if isinstance(value, bool):
        raise NotAnInteger(f"returned a bool ({value!r}), not an integer")
    if isinstance(value, int):
        return value
    try:
        return operator.index(value)  # numpy integers, one-element integer tensors
    except TypeError:
        pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise NotAnInteger(f"returned {_short(value)} ({type(value).__name__}), not an integer")


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


def _short(value: Any) -> str:
    """repr(value), cut short: the outside code's values and messages can be of any size."""
    try:
        return _REPR.repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ----- loading -------------------------------------------------------------------------------------

def load_callable(spec: str, *, call_timeout: float | None = _UNSET,
                  build_timeout: float | None = _UNSET) -> OutsideAdder:
    """Turn SPEC into an OutsideAdder; every failure is an AdderError naming SPEC (exit 2).

    The time limits default to CALL_TIMEOUT_S and BUILD_TIMEOUT_S (see the module's docstring)."""
    call_timeout = CALL_TIMEOUT_S if call_timeout is _UNSET else call_timeout
    build_timeout = BUILD_TIMEOUT_S if build_timeout is _UNSET else build_timeout
    spec = (spec or "").strip()
    if not spec:
        raise AdderError("no adder given", hint=SPEC_HINT)
    if spec.endswith(".py") or Path(spec).is_file():
        return _from_leaderboard_file(spec, call_timeout, build_timeout)
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr:
        raise AdderError(f"{spec}: not a Python file or module:function", hint=SPEC_HINT)
    if module_part.endswith(".py"):
        module = _import_file(module_part, spec, build_timeout)
    else:
        module = _import_module(module_part, spec, build_timeout)
    function = module
    for name in attr.split("."):
        if not hasattr(function, name):
            raise AdderError(f"{spec}: {module_part} defines no '{attr}'", hint=SPEC_HINT)
        function = getattr(function, name)
    if not callable(function):
        raise AdderError(f"{spec}: '{attr}' is a {type(function).__name__}, not a function")
    _check_arity(function, 2, f"{spec}: {attr}(a, b)")
    file_part = module_part if module_part.endswith(".py") else None
    return OutsideAdder(spec, function, {}, call_timeout, Path(file_part) if file_part else None)


def _from_leaderboard_file(spec: str, call_timeout, build_timeout) -> OutsideAdder:
    path = Path(spec)
    module = _import_file(spec, spec, build_timeout, keep_path=True)
    try:
        missing = [name for name in ("build_model", "add") if not callable(getattr(module, name, None))]
        if missing:
            raise AdderError(f"{spec}: the file defines no {' and no '.join(n + '()' for n in missing)}",
                             hint="a leaderboard file defines build_model() and add(model, a, b) -> int")
        _check_arity(module.add, 3, f"{spec}: add(model, a, b)")
        try:
            with _outside(build_timeout, "build_model()"):
                built = module.build_model()
        except (Exception, CallTimeout) as exc:
            what = "" if isinstance(exc, CallTimeout) else "build_model() failed: "
            raise AdderError(f"{spec}: {what}{_describe(exc, path)}") from None
        except SystemExit as exc:
            raise AdderError(f"{spec}: build_model() called exit({_short(exc.code)})") from None
    finally:
        _drop_path(path)
    model, metadata = unpack_built(built)
    add = module.add
    return OutsideAdder(spec, lambda a, b: add(model, a, b), metadata, call_timeout, path)


def unpack_built(built: Any) -> tuple[Any, dict]:
    """(model, metadata) from what build_model() returned, as the board's verify.py unpacks it.

    A 2-tuple whose second item is a dict (or None) is (model, metadata); anything else is a bare
    model with no metadata."""
    if isinstance(built, tuple) and len(built) == 2 and (built[1] is None or isinstance(built[1], Mapping)):
        return built[0], clean_metadata(built[1] or {})
    return built, {}


def clean_metadata(raw: Mapping) -> dict:
    """The metadata with printable, JSON-safe values of bounded size (it is the outside file's)."""
    out = {}
    for key in list(raw)[:40]:
        out[_clip(str(key), 60)] = _clean_value(raw[key])
    return out


def _clean_value(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, float)):
        return value if not isinstance(value, float) or math.isfinite(value) else str(value)
    if isinstance(value, int):
        return value if abs(value) < 10 ** 18 else _short(value)
    if isinstance(value, str):
        return _clip(value)
    if isinstance(value, (list, tuple)) and depth < 2:
        return [_clean_value(v, depth + 1) for v in value[:40]]
    return _short(value)


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    return f"_adderc_outside_{digest}"


def _import_file(file_spec: str, spec: str, timeout: float | None, keep_path: bool = False):
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
    what = "import failed" if file_spec == spec else f"importing {file_spec} failed"
    failure = None
    try:
        with _outside(timeout, f"importing {file_spec}"):
            module_spec.loader.exec_module(module)
    except CallTimeout as exc:
        failure = AdderError(f"{spec}: {_describe(exc, path)}")
    except Exception as exc:
        failure = AdderError(f"{spec}: {what}: {_describe(exc, path)}", hint=_missing_package_hint(exc))
    except SystemExit as exc:
        failure = AdderError(f"{spec}: importing {file_spec} called exit({_short(exc.code)})")
    if failure is not None:
        sys.modules.pop(name, None)
        _drop_path(path)
        raise failure
    if not keep_path:
        _drop_path(path)
    return module


def _missing_package_hint(exc: BaseException) -> str | None:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"the file needs the package '{exc.name.partition('.')[0]}': install it in the Python that runs adderc"
    return None


def _drop_path(path: Path) -> None:
    directory = str(path.resolve().parent)
    if directory in sys.path:
        sys.path.remove(directory)


def _import_module(module_name: str, spec: str, timeout: float | None):
    added = os.getcwd() not in sys.path and "" not in sys.path
    if added:  # `module:function` is looked up from the current directory, as `python -m` would
        sys.path.insert(0, os.getcwd())
    try:
        with _outside(timeout, f"importing {module_name}"):
            return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AdderError(f"{spec}: no module named '{module_name}'", hint=SPEC_HINT) from None
        raise AdderError(f"{spec}: importing {module_name} failed: {_describe(exc)}",
                         hint=_missing_package_hint(exc)) from None
    except CallTimeout as exc:
        raise AdderError(f"{spec}: {_describe(exc)}") from None
    except Exception as exc:
        raise AdderError(f"{spec}: importing {module_name} failed: {_describe(exc)}") from None
    except SystemExit as exc:
        raise AdderError(f"{spec}: importing {module_name} called exit({_short(exc.code)})") from None
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
    """`Type: message (at file:line)`, the line in the outside file when the traceback passes it.

    A CallTimeout reads as its message alone ("add(1, 2) took longer than 5 s"), with the line it
    was running when the alarm went off."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"SyntaxError: {_clip(str(exc.msg))} (at {exc.filename}:{exc.lineno})"
    text = _clip(str(exc)) if isinstance(exc, CallTimeout) else f"{type(exc).__name__}: {_clip(str(exc))}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    if path is not None:
        resolved = path.resolve()
        frames = [f for f in frames if Path(f.filename).resolve() == resolved] or frames
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


# ----- stress --------------------------------------------------------------------------------------

def stress(add: Callable[[int, int], Any], layout: Layout, expected: Callable[[dict[str, int]], int], *,
           seed: int, random_count: int, per_stratum: int,
           max_counterexamples: int = MAX_COUNTEREXAMPLES, max_timeouts: int = MAX_TIMEOUTS,
           on_source: Callable[[str, dict], None] | None = None) -> dict:
    """Run edge cases, carry-stratified inputs and `random_count` random inputs through add(a, b).

    `a` and `b` are the layout's two operands in layout order; `expected(operands)` gives the
    right answer. An exception from `add`, a call past its time limit, or an answer that is not
    an integer counts as wrong, its `got` saying what happened; so does an answer far wider than
    the layout's answer field, shown by its size. After `max_timeouts` calls past the limit the
    adder is called no more and `stopped` says so. `on_source(source, {"checked", "wrong"})` is
    called as each source is done, so that a long run shows its progress.

    Returns {"checked", "wrong", "counterexamples" (the first `max_counterexamples`, in the order
    found: edge, then stratified, then random; each {"a", "b", "expected", "got", "source",
    "carry_pattern"}), "seed", "by_source": {source: {"checked", "wrong"}}, "timeouts",
    "stopped" (None, or why the run ended early), "metadata" (what the adder's build_model()
    said about it, or {})}.
    """
    operands = layout.operands
    if len(operands) != 2:
        raise AdderError(f"an outside adder is called as add(a, b), but this layout has "
                         f"{len(operands)} operand(s): {', '.join(f.name for f in operands)}")
    report: dict = {"checked": 0, "wrong": 0, "counterexamples": [], "seed": seed,
                    "by_source": {source: {"checked": 0, "wrong": 0} for source in SOURCES},
                    "timeouts": 0, "stopped": None, "metadata": dict(getattr(add, "metadata", None) or {})}
    run = _Run(add, layout, expected, report, max_counterexamples, max_timeouts)
    for source in SOURCES:
        if source == "random":
            for batch in random_batches(layout, random_count, seed):
                run.check(source, batch)
        else:
            run.check(source, edge_cases(layout) if source == "edge" else stratified(layout, per_stratum, seed))
        if on_source:
            on_source(source, report["by_source"][source])
    report["checked"] = sum(t["checked"] for t in report["by_source"].values())
    report["wrong"] = sum(t["wrong"] for t in report["by_source"].values())
    return report


class _Run:
    """One stress run: calls the adder on each input and tallies into the report."""

    def __init__(self, add, layout: Layout, expected, report: dict, max_counterexamples: int,
                 max_timeouts: int):
        self.add, self.layout, self.expected, self.report = add, layout, expected, report
        self.max_counterexamples, self.max_timeouts = max_counterexamples, max_timeouts
        self.first, self.second = (f.name for f in layout.operands)
        self.path = getattr(add, "path", None)
        # Answers up to twice the answer field's width are shown as they are; wider ones by size.
        self.shown_below = layout.base ** (2 * layout.answer.width + 2)

    def check(self, source: str, inputs) -> None:
        tally = self.report["by_source"][source]
        for assignment in inputs:
            if self.report["stopped"]:
                return
            a, b = assignment[self.first], assignment[self.second]
            try:
                want: Any = int(self.expected(assignment))
            except ValueError as exc:  # the meaning gives no answer here: nothing can match it
                want = f"no answer ({exc})"
            got, right = self.call(a, b, want)
            tally["checked"] += 1
            if not right:
                tally["wrong"] += 1
                if len(self.report["counterexamples"]) < self.max_counterexamples:
                    self.report["counterexamples"].append(
                        {"a": a, "b": b, "expected": want, "got": got, "source": source,
                         "carry_pattern": carry_pattern(self.layout, assignment)})

    def call(self, a: int, b: int, want: Any) -> tuple[int | str, bool]:
        """(what add(a, b) gave: its answer, or a sentence saying what happened; whether it is right)."""
        try:
            got = as_int(self.add(a, b))  # a plain function passed in is not an OutsideAdder
        except CallTimeout as exc:
            self.report["timeouts"] += 1
            if self.report["timeouts"] >= self.max_timeouts:
                limit = getattr(self.add, "timeout", None)
                self.report["stopped"] = (f"stopped after {self.report['timeouts']} calls took longer than "
                                          f"{_seconds(limit) if limit else 'their limit'}; the inputs "
                                          f"after {a}, {b} were not run")
            return _describe(exc, self.path), False
        except NotAnInteger as exc:
            return f"add {exc}", False
        except Exception as exc:
            return f"add raised {_describe(exc, self.path)}", False
        except SystemExit as exc:
            return f"add called exit({_short(exc.code)})", False
        if abs(got) >= self.shown_below:  # also keeps str() of a 10,000-digit int out of the report
            digits = int(got.bit_length() * math.log10(2)) + 1
            return (f"add returned {'a negative' if got < 0 else 'an'} integer of about {digits:,} "
                    f"digits (the answer field has {self.layout.answer.width})"), False
        return got, got == want


# ----- the report, as the CLI prints it ------------------------------------------------------------

CARRY_LEGEND = ("carries: a letter per place, most significant first: g generates a carry, "
                "p passes one on (digits sum to base - 1), k stops it")


def metadata_lines(metadata: Mapping) -> list[str]:
    """What the adder's build_model() says of itself, a line per field (unchecked by adderc)."""
    if not metadata:
        return []
    name, author, params = (metadata.get(k) for k in ("name", "author", "params"))
    head = str(name) if name is not None else "unnamed"
    if author is not None:
        head += f" by {author}"
    if params is not None:
        head += f", {params} parameters by its own count"
    lines = [f"  adder        {head}"]
    if metadata.get("architecture") is not None:
        lines.append(f"  architecture {metadata['architecture']}")
    tricks = metadata.get("tricks")
    if tricks:
        lines.append(f"  tricks       {'; '.join(map(str, tricks)) if isinstance(tricks, list) else tricks}")
    others = [k for k in metadata if k not in METADATA_KEYS]
    if others:
        lines.append(f"  metadata     also {', '.join(others)} (in --json)")
    return lines


def counterexample_lines(report: Mapping, shown: int = 5) -> list[str]:
    """The first `shown` counterexamples with their carry patterns, and why a run stopped early."""
    examples = report["counterexamples"]
    lines = []
    for c in examples[:shown]:
        got = f"got {c['got']}" if isinstance(c["got"], int) else f"but {c['got']}"
        lines.append(f"  counterexample ({c['source']}): a = {c['a']}, b = {c['b']}: expected {c['expected']}, "
                     f"{got}; carries {c['carry_pattern']}")
    if examples:
        lines.append(f"  {CARRY_LEGEND}")
    more = report["wrong"] - min(shown, len(examples))
    if more > 0:
        lines.append(f"  ... and {more:,} more wrong (the first {len(examples)} in --json)")
    if report.get("stopped"):
        lines.append(f"  {report['stopped']}")
    return lines
