"""Outside adders (`adderc verify PROGRAM --callable FILE`): AdderBoard-style files in tests/adders/,
each right or wrong in one known way, and what the report must say about each."""
import json
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import compiler.check.adapter as adapter
from compiler.check.adapter import (CallTimeout, as_int, load_callable, stress, time_limit, unpack_built)
from compiler.cli import main
from compiler.check.inputs import carry_pattern
from dsl.errors import AdderError
from dsl.resolve import load_program
from tests.conftest import ADD10, ROOT

SEED = 20261122
ADDERS = Path(__file__).resolve().parent / "adders"

CORRECT_BARE = textwrap.dedent('''
    def build_model():
        return None

    def add(model, a, b):
        return a + b
''')


@pytest.fixture(scope="module")
def add10():
    return load_program(ADD10)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run_stress(add, program, random_count=0, per_stratum=0, **kw):
    return stress(add, program.layout, program.meaning.expected, seed=SEED, random_count=random_count,
                  per_stratum=per_stratum, **kw)


# ----- the board's format --------------------------------------------------------------------------

def test_build_model_tuple_is_unpacked_and_its_metadata_kept(add10):
    add = load_callable(str(ADDERS / "digit_module.py"))  # add would fail on the tuple itself
    assert add(1234567890, 9876543210) == 11111111100
    assert add.metadata == {"name": "digit module", "author": "adderc tests", "params": 2,
                            "architecture": "one Linear(2, 1) over digit pairs", "tricks": ["carries in Python"]}
    report = run_stress(add, add10, random_count=300, per_stratum=1)
    assert report["wrong"] == 0 and report["metadata"]["name"] == "digit module"


def test_what_build_model_returns():
    model = object()
    assert unpack_built((model, {"name": "x"})) == (model, {"name": "x"})
    assert unpack_built((model, None)) == (model, {})
    assert unpack_built(model) == (model, {})              # a bare model
    assert unpack_built((1, 2)) == ((1, 2), {})            # a bare model that is a pair
    assert unpack_built([model, {}]) == ([model, {}], {})  # the board unpacks tuples only
    odd = unpack_built((model, {"params": 10 ** 40, "tricks": ["a" * 1000], 3: float("nan")}))[1]
    json.dumps(odd)  # printable and JSON-safe whatever the file put there
    assert len(odd["tricks"][0]) <= 300 and isinstance(odd["params"], str) and odd["3"] == "nan"


def test_correct_adders_pass(tmp_path, add10):
    bare = load_callable(write(tmp_path, "right.py", CORRECT_BARE))
    assert bare.metadata == {}
    for add in (bare, load_callable("operator:add")):
        report = run_stress(add, add10, random_count=500, per_stratum=1)
        assert report["wrong"] == 0 and report["counterexamples"] == [] and report["stopped"] is None
        assert report["by_source"]["edge"]["checked"] > 0
        assert report["by_source"]["stratified"]["checked"] > 0
        assert report["by_source"]["random"]["checked"] == 500


# ----- wrong adders --------------------------------------------------------------------------------

def test_short_lookahead_adder_is_caught_by_strata_but_not_by_random(add10):
    add = load_callable(str(ADDERS / "short_lookahead.py"))
    assert add(1234567890, 9876543210) == 11111111100
    assert add(10 ** 10 - 1, 1) != 10 ** 10  # a carry through nine 9s goes missing

    random_only = run_stress(add, add10, random_count=2000)
    assert random_only["by_source"]["random"] == {"checked": 2000, "wrong": 0}
    assert random_only["by_source"]["stratified"]["checked"] == 0

    report = run_stress(add, add10, random_count=2000, per_stratum=2)
    assert report["by_source"]["random"]["wrong"] == 0  # same seed, same random inputs
    assert report["by_source"]["stratified"]["wrong"] > 0
    assert report["wrong"] == sum(s["wrong"] for s in report["by_source"].values()) > 0
    assert report["checked"] == sum(s["checked"] for s in report["by_source"].values())
    assert report["seed"] == SEED
    examples = report["counterexamples"]
    assert 0 < len(examples) <= 20
    assert any(e["source"] == "stratified" for e in examples) or report["by_source"]["edge"]["wrong"] >= 20
    for e in examples:
        assert e["expected"] == e["a"] + e["b"] != e["got"]
        assert "pppppp" in e["carry_pattern"]
        assert e["carry_pattern"] == carry_pattern(add10.layout, {"a": e["a"], "b": e["b"]})


def test_an_exception_in_add_is_a_wrong_answer_naming_its_line(add10):
    report = run_stress(load_callable(str(ADDERS / "raises.py")), add10, random_count=200)
    assert report["wrong"] > 0 and report["stopped"] is None
    for e in report["counterexamples"]:
        assert e["got"] == f"add raised IndexError: list index out of range (at {ADDERS / 'raises.py'}:13)"
        assert e["expected"] >= 10 ** 10  # only sums with an eleventh digit
    right = report["checked"] - report["wrong"]
    assert right > 0


def test_exceptions_non_integers_and_absurd_answers_count_as_wrong(add10):
    def odd(a, b):
        if a == 0:
            raise ZeroDivisionError("no zeros here")
        if a == 1:
            return -(a + b)
        if b == 0:
            return 10 ** 5000
        if b == 1:
            return float(a + b) + 0.5
        if a == b:
            raise SystemExit(3)
        return a + b

    report = run_stress(odd, add10, max_counterexamples=200)
    gots = [e["got"] for e in report["counterexamples"]]
    assert any(isinstance(g, str) and g.startswith("add raised ZeroDivisionError: no zeros here (at ")
               and "test_adapter.py:" in g for g in gots)
    assert any(isinstance(g, int) and g < 0 for g in gots)
    assert "add returned an integer of about 5,001 digits (the answer field has 11)" in gots
    assert any(isinstance(g, str) and "(float), not an integer" in g for g in gots)
    assert "add called exit(3)" in gots
    json.dumps(report)
    assert adapter.counterexample_lines(report)  # a 5,001-digit answer is never turned into text


def test_as_int():
    assert as_int(5) == 5 and as_int(7.0) == 7
    for bad in (True, 7.5, "12", None):
        with pytest.raises(TypeError):
            as_int(bad)


# ----- time limits ---------------------------------------------------------------------------------

def test_a_hanging_adder_is_stopped_and_reported(add10):
    add = load_callable(str(ADDERS / "hangs.py"), call_timeout=0.2)
    assert add(1, 2) == 3
    started = time.monotonic()
    report = run_stress(add, add10, random_count=1000, per_stratum=2)
    assert time.monotonic() - started < 20
    assert report["timeouts"] == 3 and report["stopped"].startswith("stopped after 3 calls took longer than 0.2 s")
    timed_out = [e for e in report["counterexamples"] if "took longer" in str(e["got"])]
    assert len(timed_out) == 3
    for e in timed_out:
        assert (e["a"] + e["b"]) % 10 == 9 and e["carry_pattern"].endswith("p")
        assert e["got"].startswith(f"add({e['a']}, {e['b']}) took longer than 0.2 s (at {ADDERS / 'hangs.py'}:")
    assert report["by_source"]["random"]["checked"] == 0  # it stopped before them


@pytest.mark.parametrize("text,message", [
    ("while True:\n    pass\n", "importing .* took longer than 0.2 s \\(at .*slow.py:1\\)"),
    ("def build_model():\n    while True:\n        pass\ndef add(m, a, b):\n    return a + b\n",
     "build_model\\(\\) took longer than 0.2 s \\(at .*slow.py:2\\)"),
])
def test_a_hang_while_loading_is_an_error(tmp_path, text, message):
    with pytest.raises(AdderError, match=message):
        load_callable(write(tmp_path, "slow.py", text), build_timeout=0.2)
    assert str(tmp_path) not in sys.path


def test_time_limit_leaves_the_alarm_as_it_was():
    fired = []

    def mine(*_):
        fired.append(1)

    previous = signal.signal(signal.SIGALRM, mine)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(CallTimeout, match="spin took longer than 0.05 s"):
            with time_limit(0.05, "spin"):
                while True:
                    pass
        assert signal.getsignal(signal.SIGALRM) is mine  # the test's own handler is back
        time.sleep(0.6)
        assert fired == [1]  # and its pending alarm still went off
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_swallowed_alarm_fires_again(monkeypatch):
    monkeypatch.setattr(adapter, "ALARM_REPEAT_S", 0.1)

    def stubborn():
        try:
            while True:
                pass
        except BaseException:  # a bare `except:` in the outside code eats the first alarm
            pass
        while True:
            pass

    started = time.monotonic()
    with pytest.raises(CallTimeout):
        with time_limit(0.1, "stubborn"):
            stubborn()
    assert time.monotonic() - started < 5


def test_time_limit_outside_the_main_thread_runs_without_one():
    done = []
    thread = threading.Thread(target=lambda: done.append(_limited_sleep()))
    thread.start()
    thread.join()
    assert done == ["slept"]


def _limited_sleep():
    with time_limit(0.01, "sleep"):
        time.sleep(0.05)
    return "slept"


# ----- loading errors ------------------------------------------------------------------------------

def test_module_function_spec(tmp_path, monkeypatch):
    (tmp_path / "my_adders.py").write_text("def plus(a, b):\n    return a + b\nNOT_CALLABLE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_callable("my_adders:plus")(2, 40) == 42
    assert load_callable(str(tmp_path / "my_adders.py") + ":plus")(1, 1) == 2
    with pytest.raises(AdderError, match="not a function"):
        load_callable("my_adders:NOT_CALLABLE")
    with pytest.raises(AdderError, match="defines no 'minus'"):
        load_callable("my_adders:minus")
    sys.modules.pop("my_adders", None)


@pytest.mark.parametrize("text,message", [
    ("def add(model, a, b):\n    return a + b\n", "defines no build_model()"),
    ("def build_model():\n    return 1\n", "defines no add()"),
    ("x = 1\nimport no_such_module_for_adderc\n", "ModuleNotFoundError: .*no_such_module_for_adderc.* \\(at .*bad.py:2\\)"),
    ("def build_model(:\n", "SyntaxError: .* \\(at .*bad.py:1\\)"),
    ("def build_model():\n    raise RuntimeError('weights missing')\ndef add(m, a, b):\n    return 0\n",
     "build_model\\(\\) failed: RuntimeError: weights missing \\(at .*bad.py:2\\)"),
    ("def build_model():\n    raise SystemExit(4)\ndef add(m, a, b):\n    return 0\n", "build_model\\(\\) called exit\\(4\\)"),
    ("import sys\nsys.exit(5)\n", "called exit\\(5\\)"),
    ("def build_model():\n    return 1\ndef add(a, b):\n    return a + b\n", "cannot be called with 3"),
])
def test_bad_files_raise_adder_error(tmp_path, text, message):
    path = write(tmp_path, "bad.py", text)
    with pytest.raises(AdderError, match=message) as info:
        load_callable(path)
    assert "Traceback" not in info.value.render()
    assert str(tmp_path) not in sys.path


def test_a_missing_package_says_which(tmp_path):
    with pytest.raises(AdderError) as info:
        load_callable(write(tmp_path, "needs.py", "import no_such_package_for_adderc.sub\n"))
    assert "the file needs the package 'no_such_package_for_adderc'" in info.value.render()


@pytest.mark.parametrize("spec,message", [
    ("missing_file.py", "no such file"),
    ("no_such_module_for_adderc:add", "no module named"),
    ("just_a_word", "not a Python file or module:function"),
    ("", "no adder given"),
])
def test_bad_specs_raise_adder_error(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AdderError, match=message):
        load_callable(spec)


def test_stress_needs_two_operands():
    from dsl.layout import Layout
    one = Layout(10, "msb_first", (("literal", "<bos>"), ("field", "a", 3), ("literal", "="),
                                   ("field", "out", 3), ("literal", "<eos>")), 3)
    with pytest.raises(AdderError, match="two operands|1 operand"):
        stress(lambda a, b: a, one, lambda ops: ops["a"], seed=1, random_count=1, per_stratum=1)


# ----- through the command line --------------------------------------------------------------------

def verify_cli(adder, *extra):
    return main(["verify", str(ADD10), "--callable", str(adder), "--samples", "300", "--per-stratum", "1",
                 *extra])


def test_cli_reports_counterexamples_with_their_carry_pattern(tmp_path, capsys):
    report_path = tmp_path / "report.json"
    assert verify_cli(ADDERS / "short_lookahead.py", "--json", str(report_path)) == 1
    out = capsys.readouterr().out
    head = out.splitlines()[:6]  # what is checked, then each source as it is done
    assert head[0].startswith("verify ") and head[1].startswith("  adder        short lookahead by adderc tests, "
                                                                 "0 parameters by its own count")
    assert [line.split()[0] for line in head[2:]] == ["architecture", "edge", "stratified", "random"]
    lines = [line for line in out.splitlines() if line.startswith("  counterexample (")]
    assert 0 < len(lines) <= 5
    for line in lines:
        assert ": expected " in line and ", got " in line and "pppppp" in line.split("carries ")[1]
    assert adapter.CARRY_LEGEND in out and "result: MISMATCH" in out
    saved = json.loads(report_path.read_text())
    assert saved["metadata"]["name"] == "short lookahead" and saved["wrong"] > len(lines)


def test_cli_a_hanging_adder_ends_with_exit_1(monkeypatch, capsys):
    monkeypatch.setattr(adapter, "CALL_TIMEOUT_S", 0.2)
    started = time.monotonic()
    assert verify_cli(ADDERS / "hangs.py") == 1
    assert time.monotonic() - started < 20
    out = capsys.readouterr().out
    assert "took longer than 0.2 s" in out and "stopped after 3 calls" in out and "MISMATCH" in out


def test_cli_an_adder_that_raises_ends_with_exit_1(capsys):
    assert verify_cli(ADDERS / "raises.py") == 1
    assert "but add raised IndexError: list index out of range" in capsys.readouterr().out


def test_cli_a_failing_build_model_is_exit_2_naming_the_line(capsys):
    assert verify_cli(ADDERS / "build_fails.py") == 2
    err = capsys.readouterr().err
    assert "build_model() failed: FileNotFoundError" in err and f"{ADDERS / 'build_fails.py'}:6" in err


def test_cli_an_import_error_is_exit_2_naming_the_line(tmp_path, capsys):
    adder = write(tmp_path, "typo.py", "import math\n\ndef build_model():\n    return None, {}\n\nundefined_name\n")
    assert verify_cli(adder) == 2
    err = capsys.readouterr().err
    assert "NameError" in err and "typo.py:6" in err and "Traceback" not in err


def test_cli_a_right_adder_is_exit_0(capsys):
    assert verify_cli(ADDERS / "digit_module.py") == 0
    out = capsys.readouterr().out
    assert "digit module by adderc tests" in out and "every check holds" in out


# ----- the project's seed ----------------------------------------------------------------------------

def _shared_folder() -> Path | None:
    """../shared beside this checkout, or beside the main checkout when this is a git worktree."""
    candidates = [ROOT.parent / "shared"]
    git = ROOT / ".git"
    if git.is_file() and git.read_text().startswith("gitdir:"):  # .../main/.git/worktrees/<name>
        candidates.append(Path(git.read_text().split(":", 1)[1].strip()).parents[2].parent / "shared")
    return next((c for c in candidates if (c / "seeds").is_dir()), None)


def test_the_seed_tinyadder95_is_caught_on_long_carry_chains(add10, monkeypatch):
    shared = _shared_folder()
    seed_file = shared / "seeds" / "tinyadder95_reference.py" if shared else None
    if seed_file is None or not seed_file.is_file():
        pytest.skip("../shared/seeds/tinyadder95_reference.py is not beside this checkout")
    monkeypatch.setenv("TINYADDER95_SEED", str(seed_file))
    add = load_callable(str(ADDERS / "tinyadder95_seed.py"))
    assert add.metadata["params"] == 95
    assert add(1234567890, 9876543210) == 11111111100
    # Known wrong (an outside formal check found it): a carry seen through a run of seven 9s.
    assert carry_pattern(add10.layout, {"a": 5193798811, "b": 1806201129}) == "kpppppppkg"
    assert add(5193798811, 1806201129) != 6999999940
    report = run_stress(add, add10)  # the edge cases alone find it
    assert report["wrong"] > 0 and report["timeouts"] == 0
    for e in report["counterexamples"]:
        assert isinstance(e["got"], int) and e["got"] != e["expected"] and "pppppp" in e["carry_pattern"]
