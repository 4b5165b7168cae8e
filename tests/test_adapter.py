import sys
import textwrap

import pytest

from compiler.adapter import as_int, load_callable, stress
from dsl.errors import AdderError
from dsl.resolve import load_program
from tests.conftest import ADD10

SEED = 20261122

# A leaderboard-style adder that is right except when a carry has to cross a run of 6 or more
# propagating places (digit pairs summing to 9): its carry lookahead sees only 6 places below.
SHORT_LOOKAHEAD = textwrap.dedent('''
    LOOKAHEAD = 6

    def build_model():
        return {"base": 10, "lookahead": LOOKAHEAD}

    def add(model, a, b):
        base, window = model["base"], model["lookahead"]
        da, db = [], []
        while a or b:
            da.append(a % base)
            db.append(b % base)
            a, b = a // base, b // base
        pairs = [x + y for x, y in zip(da, db)]
        total = 0
        for place in range(len(pairs) + 1):
            carry = 0
            for below in range(place - 1, max(place - 1 - window, -1), -1):
                if pairs[below] != base - 1:       # the nearest place that does not pass a carry on
                    carry = int(pairs[below] >= base)
                    break
            digit = ((pairs[place] if place < len(pairs) else 0) + carry) % base
            total += digit * base ** place
        return total
''')

CORRECT = textwrap.dedent('''
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


def test_short_lookahead_adder_is_caught_by_strata_but_not_by_random(tmp_path, add10):
    add = load_callable(write(tmp_path, "short_lookahead.py", SHORT_LOOKAHEAD))
    assert add(1234567890, 9876543210) == 11111111100
    assert add(10 ** 10 - 1, 1) != 10 ** 10  # a carry through nine 9s goes missing
    layout, expected = add10.layout, add10.meaning.expected

    random_only = stress(add, layout, expected, seed=SEED, random_count=2000, per_stratum=0)
    assert random_only["by_source"]["random"] == {"checked": 2000, "wrong": 0}
    assert random_only["by_source"]["stratified"]["checked"] == 0

    report = stress(add, layout, expected, seed=SEED, random_count=2000, per_stratum=2)
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


def test_correct_adders_pass(tmp_path, add10):
    layout, expected = add10.layout, add10.meaning.expected
    for add in (load_callable(write(tmp_path, "right.py", CORRECT)), load_callable("operator:add")):
        report = stress(add, layout, expected, seed=SEED, random_count=500, per_stratum=1)
        assert report["wrong"] == 0 and report["counterexamples"] == []
        assert report["by_source"]["edge"]["checked"] > 0
        assert report["by_source"]["stratified"]["checked"] > 0
        assert report["by_source"]["random"]["checked"] == 500


def test_exceptions_and_non_integers_count_as_wrong(add10):
    def flaky(a, b):
        if a == 0:
            raise ZeroDivisionError("no zeros here")
        return float(a + b) + (0.5 if b == 1 else 0.0)

    report = stress(flaky, add10.layout, add10.meaning.expected, seed=SEED, random_count=10, per_stratum=0)
    gots = [e["got"] for e in report["counterexamples"]]
    assert "ZeroDivisionError: no zeros here" in gots
    assert any(isinstance(g, str) and "not an integer" in g for g in gots)
    assert report["wrong"] > 0


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
    ("import no_such_module_for_adderc\n", "ModuleNotFoundError"),
    ("def build_model(:\n", "SyntaxError"),
    ("def build_model():\n    raise RuntimeError('weights missing')\ndef add(m, a, b):\n    return 0\n",
     "build_model\\(\\) failed: RuntimeError: weights missing"),
    ("def build_model():\n    return 1\ndef add(a, b):\n    return a + b\n", "cannot be called with 3"),
])
def test_bad_files_raise_adder_error(tmp_path, text, message):
    path = write(tmp_path, "bad.py", text)
    with pytest.raises(AdderError, match=message) as info:
        load_callable(path)
    assert "Traceback" not in info.value.render()
    assert str(tmp_path) not in sys.path


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


def test_as_int():
    assert as_int(5) == 5 and as_int(7.0) == 7
    for bad in (True, 7.5, "12", None):
        with pytest.raises(TypeError):
            as_int(bad)
