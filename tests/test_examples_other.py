"""The other examples (sub, compare, mul_digit) against plain Python integer arithmetic.

Each program is compiled at a few widths through -D N=...: its greedy answers are checked on every
input for N = 2 and on seeded random inputs (plus hand-picked borrow and carry chains) otherwise,
and the model file is checked against its program by the verifier.
"""
import random
from pathlib import Path

import pytest

from compiler.api import compile_file, load_compiled, run_prompts
from compiler.model.file import save_model
from compiler.check.testing import assert_model_matches_program

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SEED = 20261122
DEFAULT_N = 10  # the const N each example declares


def _sub(a, b, n):
    return a - b + 10 ** n  # ten's complement: a leading 1 means a >= b, a leading 0 a negative result


def _compare(a, b, n):
    return 0 if a < b else (1 if a == b else 2)


def _mul(a, d, n):
    return a * d


# program -> (its two operand fields, their widths for N = n, the answer width, Python's answer)
PROGRAMS = {
    "sub": (("a", "b"), lambda n: (n, n), lambda n: n + 1, _sub),
    "compare": (("a", "b"), lambda n: (n, n), lambda n: 1, _compare),
    "mul_digit": (("a", "d"), lambda n: (n, 1), lambda n: n + 1, _mul),
}


def _digits_to_int(digits):
    return int("".join(map(str, digits)))


def _chains(name, n):
    """Inputs whose borrows, deciding places or carries sit behind long chains, every length."""
    rng = random.Random(SEED + n)
    top = 10 ** n - 1
    if name == "mul_digit":
        cases = [(0, 0), (top, 9), (top, 1), (top, 0)]
        for d in range(2, 10):  # a * d just below and just reaching a power of ten
            for power in range(1, n + 1):
                x = -(-10 ** power // d)  # the smallest x with x * d >= 10**power
                cases += [(x % (top + 1), d), ((x - 1) % (top + 1), d)]
        for _ in range(40):  # runs of 3s times 3, of 142857 times 7, ... then any digits
            d = rng.randrange(2, 10)
            repeat = rng.choice(["3", "6", "9", "142857", "285714", "1", "5", "25", "125"])
            cut = rng.randrange(n + 1)
            tail = "".join(rng.choice("0123456789") for _ in range(n - cut))
            cases.append((int((repeat * n)[:cut] + tail), d))
        return cases
    cases = [(0, 0), (top, 0), (0, top), (top, top), (1, 0), (0, 1), (10 ** (n - 1), 1)]
    for run in range(0, n):  # `run` equal places above a place where a's digit is smaller
        for _ in range(3):
            place = rng.randrange(n - run)  # counted from the most significant digit
            a = [rng.randrange(10) for _ in range(n)]
            b = [rng.randrange(10) for _ in range(n)]
            b[place:place + run] = a[place:place + run]
            a[place + run], b[place + run] = sorted(rng.sample(range(10), 2))
            same_above = a[:place] + b[place:]  # every place above the run equal too
            for x, y in ((a, b), (a, same_above)):
                cases += [(_digits_to_int(x), _digits_to_int(y)), (_digits_to_int(y), _digits_to_int(x))]
            cases.append((_digits_to_int(a), _digits_to_int(a)))
    return cases


def _random_inputs(name, n, count):
    rng = random.Random(SEED * 7 + n)
    _, widths, _, _ = PROGRAMS[name]
    wa, wb = widths(n)
    return [(rng.randrange(10 ** wa), rng.randrange(10 ** wb)) for _ in range(count)]


def _all_inputs(name, n):
    _, widths, _, _ = PROGRAMS[name]
    wa, wb = widths(n)
    return [(a, b) for a in range(10 ** wa) for b in range(10 ** wb)]


def _compile(name, n, dtype="float64"):
    overrides = {} if n == DEFAULT_N else {"N": n}  # N = 10 is the program as it stands
    ir, stats, digest = compile_file(EXAMPLES / f"{name}.rasp", overrides, dtype)
    assert ir.program.constants["N"] == n
    return ir, stats, digest


def _check_answers(name, n, ir, pairs):
    fields, _, answer_width, expected = PROGRAMS[name]
    layout = ir.program.layout
    model = load_compiled(ir)
    prompts = [layout.prompt_tokens({fields[0]: a, fields[1]: b}) for a, b in pairs]
    answers = run_prompts(model, layout, prompts)
    want = ["".join(layout.digits_of(expected(a, b, n), answer_width(n))) for a, b in pairs]
    wrong = [(a, b, got, w) for (a, b), got, w in zip(pairs, answers, want) if got != w]
    assert not wrong, f"{name} N={n}: {len(wrong)} wrong, e.g. (a, b, got, want) {wrong[:5]}"


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_input_for_two_digits(name):
    ir, stats, _ = _compile(name, 2)
    _check_answers(name, 2, ir, _all_inputs(name, 2))


@pytest.mark.parametrize("n", [3, DEFAULT_N])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_chains_and_random_inputs(name, n):
    ir, stats, _ = _compile(name, n)
    _check_answers(name, n, ir, _chains(name, n) + _random_inputs(name, n, 1000))


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_float32_model_writes_the_same_answers(name):
    ir, stats, _ = _compile(name, DEFAULT_N, "float32")
    _check_answers(name, DEFAULT_N, ir, _chains(name, DEFAULT_N) + _random_inputs(name, DEFAULT_N, 300))


@pytest.mark.parametrize("n", [2, DEFAULT_N])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_model_file_matches_its_program(name, n, tmp_path):
    ir, stats, digest = _compile(name, n)
    path = tmp_path / f"{name}.pt"
    save_model(path, ir, stats, digest)
    assert_model_matches_program(path, EXAMPLES / f"{name}.rasp", samples=2000, per_stratum=1)


def test_the_examples_in_the_comments():
    cases = {"sub": [((5000, 1234), "13766"), ((1234, 5000), "06234"), ((1234, 1234), "10000")],
             "compare": [((1234, 1243), "0"), ((5000, 5000), "1"), ((9000, 999), "2")],
             "mul_digit": [((1234, 9), "11106"), ((3334, 3), "10002"), ((9999, 0), "00000")]}
    for name, examples in cases.items():
        fields, _, _, _ = PROGRAMS[name]
        ir, stats, _ = _compile(name, 4)
        layout = ir.program.layout
        prompts = [layout.prompt_tokens({fields[0]: a, fields[1]: b}) for (a, b), _ in examples]
        assert run_prompts(load_compiled(ir), layout, prompts) == [want for _, want in examples], name
