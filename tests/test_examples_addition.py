"""The addition examples beyond add10: answer written lowest digit first, three operands, base 2
and base 16. Each is compiled at a few widths (-D N=...) and its greedy answers are checked against
Python's integers: every input where the input space is small, seeded random inputs (and the
all-top-digit edge cases) otherwise. One width of each also goes through the verifier."""
import functools
import itertools
import random

import pytest

from compiler.api import compile_file, load_compiled, run_prompts
from compiler.model.file import save_model
from compiler.check.testing import assert_model_matches_program
from tests.conftest import ROOT, SEED

EXAMPLES = ROOT / "examples"

# program -> (operand names, its default N, the other widths compiled through -D)
PROGRAMS = {
    "add_lsb.rasp": (("a", "b"), 10, (1, 2, 4)),
    "add3.rasp": (("a", "b", "c"), 10, (1, 2)),
    "add_binary.rasp": (("a", "b"), 16, (4, 6)),
    "add_hex.rasp": (("a", "b"), 8, (1, 2)),
}
EXHAUSTIVE_UP_TO = 20_000  # enumerate every input when there are at most this many
RANDOM_SAMPLES = 600


CASES = [pytest.param(name, n, id=f"{name}-N{n or default}")
         for name, (_, default, widths) in PROGRAMS.items() for n in widths + (None,)]


@functools.lru_cache(maxsize=None)
def _compiled(name, n_digits=None):
    """(ir, stats, digest), compiled once per width; None means the program's own N."""
    return compile_file(EXAMPLES / name, {"N": n_digits} if n_digits else None)


def _inputs(layout, names, n_digits, seed):
    """Every operand tuple if there are few, else edge cases and seeded random ones."""
    top = layout.base ** n_digits
    if top ** len(names) <= EXHAUSTIVE_UP_TO:
        return [dict(zip(names, values)) for values in itertools.product(range(top), repeat=len(names))]
    rng = random.Random(seed)
    edges = [dict.fromkeys(names, 0), dict.fromkeys(names, top - 1)]
    edges += [{**dict.fromkeys(names, top - 1), name: 1} for name in names]          # long carry runs
    edges += [{**dict.fromkeys(names, 0), names[0]: top - 1, names[-1]: 1}]
    return edges + [{name: rng.randrange(top) for name in names} for _ in range(RANDOM_SAMPLES)]


@pytest.mark.parametrize("name, n_digits", CASES)
def test_greedy_answers_are_the_integer_sums(name, n_digits):
    names, default, _ = PROGRAMS[name]
    ir, _, _ = _compiled(name, n_digits)
    n_digits = n_digits or default
    layout = ir.program.layout
    assert [f.name for f in layout.operands] == list(names)
    assert layout.answer.width == n_digits + 1
    inputs = _inputs(layout, names, n_digits, seed=SEED + n_digits)
    answers = run_prompts(load_compiled(ir), layout, [layout.prompt_tokens(o) for o in inputs])
    wrong = [(o, got) for o, got in zip(inputs, answers)
             if got != "".join(layout.digits_of(sum(o.values()), n_digits + 1))]
    assert not wrong, f"{len(wrong)} wrong of {len(inputs)}, e.g. {wrong[:3]}"


def test_lowest_digit_first_is_small_and_does_not_grow():
    """The carry is read back from the digit just written, so no carry search: one attention
    layer (two heads) and one MLP step, and a size that does not depend on N."""
    sizes = set()
    for n_digits in (2, None, 100):
        _, stats, _ = _compiled("add_lsb.rasp", n_digits)
        assert stats["layers"] <= 2
        sizes.add((stats["nonzero_params"], stats["nonzero_params_leaderboard"]))
    assert len(sizes) == 1
    (all_stored, leaderboard), = sizes
    assert all_stored <= 40 and leaderboard <= 28


def test_the_worked_examples():
    """The examples quoted at the top of each program."""
    examples = {"add_lsb.rasp": ("0987654321+0123456789=", "00111111111"),
                "add3.rasp": ("1234567890+9876543210+5555555555=", "16666666655"),
                "add_binary.rasp": ("1011011100101001+0110100111011010=", "10010000100000011"),
                "add_hex.rasp": ("deadbeef+12345678=", "0f0e21567")}
    for name, (prompt, answer) in examples.items():
        ir, _, _ = _compiled(name)
        layout = ir.program.layout
        assert run_prompts(load_compiled(ir), layout, [layout.tokenize(prompt)]) == [answer], name


# Small widths: the verifier's fixed cost (its interpreter run over every stored value) dominates.
@pytest.mark.parametrize("name, n_digits", [("add_lsb.rasp", 4), ("add3.rasp", 2),
                                            ("add_binary.rasp", 4), ("add_hex.rasp", 1)])
def test_verifier_passes(name, n_digits, tmp_path):
    ir, stats, digest = _compiled(name, n_digits)
    path = tmp_path / "model.pt"
    save_model(path, ir, stats, digest)
    assert_model_matches_program(path, EXAMPLES / name, samples=2000, per_stratum=1)
