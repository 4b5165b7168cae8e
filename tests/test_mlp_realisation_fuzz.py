"""A seeded fuzz slice over the MLP realisation (compiler.ir.forms, passes.weights.ridges and
passes.weights.branches): programs of conditionals, min/max/abs, comparisons and differences of
shifted digits (tests/fuzz/mlpgen.py) on one-digit layouts, so every input is checked. Each must
compile to a model equal to the interpreter on every input, or fail with a located error; every
PROVE_EVERY-th model must also prove in both dtypes: no counterexample ever (the model is right on
every input), and "could not prove" (an honest verdict: some combination of stored values no input
produces defeats the check) for at most UNPROVED_AT_MOST of them."""
from __future__ import annotations

import pytest

from compiler.api import compile_file
from compiler.check.prove import prove
from compiler.check.verify import program_from_payload
from compiler.model.file import load_model, save_model
from tests.fuzz import oracle
from tests.fuzz.mlpgen import mlp_program

# Two of this slice are not proved, on combinations no input produces (b07dccc, before the MLP
# realisation changed, did not prove the one it compiles either). Two more are not proved in
# float32 since the proof bounds float rounding: MLPs with pre-activations in the thousands (one
# of 2,576 units), whose rounding may erase the logit margin. More would be news.
SEED, PROGRAMS, PROVE_EVERY, UNPROVED_AT_MOST = 20261202, 100, 5, 4
NOTHING_WRONG = "no input replayed through the model was answered wrong"


def _proof_failures(name, text, path) -> list[str]:
    save_model(path, *compile_file(name, text=text))
    _, payload = load_model(path)
    failures = []
    for dtype in ("float64", "float32"):
        proof = prove(payload, program_from_payload(payload, None), dtype)
        if proof.status != "proved":
            failures.append(f"{dtype}: {proof.status}: {proof.reason}")
    return failures


@pytest.fixture(scope="module")
def slice_outcomes(tmp_path_factory):
    outcomes, proved, unproved = [], 0, []
    folder = tmp_path_factory.mktemp("mlpfuzz")
    for seed in range(SEED, SEED + PROGRAMS):
        text = mlp_program(seed, max_digits=1, depth=1, shifts=1)
        outcome = oracle.check(text, f"mlp_{seed}.rasp", exhaustive_limit=100)
        if outcome.kind == "compiled" and len([o for o in outcomes if o[1].kind == "compiled"]) % PROVE_EVERY == 0:
            try:
                problems = _proof_failures(f"mlp_{seed}.rasp", text, folder / f"{seed}.pt")
            except Exception as err:  # noqa: BLE001 - reported as this program's failure
                problems = [f"{type(err).__name__}: {err}"]
            if problems and all(NOTHING_WRONG in p or p.startswith("float32: could not prove") for p in problems):
                unproved.append(f"{'; '.join(problems)}\n{text}")
            elif problems:
                outcome = oracle.Outcome("unproved", "; ".join(problems))
            proved += 1
        outcomes.append((text, outcome))
    return outcomes, proved, unproved


def test_every_program_compiles_right_or_fails_with_a_located_error(slice_outcomes):
    outcomes, _, _ = slice_outcomes
    bad = [f"{o.kind}: {o.message}\n{o.detail}\n{text}" for text, o in outcomes
           if o.kind not in ("compiled", "located")]
    assert not bad, f"{len(bad)} of {len(outcomes)}:\n\n" + "\n\n".join(bad)


def test_the_slice_is_not_vacuous(slice_outcomes):
    outcomes, proved, _ = slice_outcomes
    compiled = [o for _, o in outcomes if o.kind == "compiled"]
    assert len(compiled) >= PROGRAMS // 2, len(compiled)
    assert proved >= len(compiled) // PROVE_EVERY
    # every one-digit input of the layout was compared
    assert all(o.inputs in (10, 100) for o in compiled)
    # the slice reaches the constructs it is for: models with an MLP in them
    texts = [text for text, o in outcomes if o.kind == "compiled"]
    assert sum(" if " in t.split("output")[-1] for t in texts) >= len(texts) // 3


def test_could_not_prove_is_rare(slice_outcomes):
    _, _, unproved = slice_outcomes
    assert len(unproved) <= UNPROVED_AT_MOST, "\n\n".join(unproved)


# Found by this generator: the branch that reads `value` is taken at no position the model has
# (start(s) + 1 is the end token's position), so the MLP reads only shift(value, 2); the prover then
# computed the exact value through `-value` down to `tokens`, which no combination held, and crashed.
UNREAD_INPUT = """
const N = 1
layout base 10, msb_first: "<bos>" a[1] "+" b[1] "=" => s[N] "<eos>"
let value = digit(tokens)
output "<eos>" if indices == end(s) else nearest_digit(-value if indices >= start(s) + 1 else shift(value, 2))
"""

# The same, with `value` not stored at all: only the dead branch used it.
UNSTORED_INPUT = """
const N = 1
layout base 10, msb_first: "<bos>" a[1] "=" => s[N] "<eos>"
let value = digit(tokens)
output "<eos>" if indices == end(s) else digit_token(((-6 - value) if indices == start(s) + 1 else -4) // 1 % 10)
"""


@pytest.mark.parametrize("text", [UNREAD_INPUT, UNSTORED_INPUT], ids=["unread", "unstored"])
def test_an_mlp_that_skips_an_input_of_a_dead_branch_is_proved(text, tmp_path):
    outcome = oracle.check(text, "dead.rasp", dtypes=("float64", "float32"))
    assert outcome.kind == "compiled", outcome
    assert _proof_failures("dead.rasp", text, tmp_path / "m.pt") == []


# An MLP whose function equals its input where it is read (max(x, 0) of a digit) has no units; the
# prover looked for the layer's MLP weights, which the model does not have (also at b07dccc); it now
# takes a missing MLP as a block writing nothing.
NO_UNITS = """
const N = 1
layout base 10, msb_first: "<bos>" a[1] "=" => s[N] "<eos>"
let value = digit(tokens)
output "<eos>" if indices == end(s) else nearest_digit(max(shift(value, 2), 0))
"""

# A conditional whose condition always holds (x - 1/2 <= x) is realised with no units since 65cfad5;
# the weight map named the empty unit range [0, 0], and loading the saved model rejected it: a block
# of output biases alone now has no entry.
ALWAYS_TRUE = """
const N = 1
layout base 10, msb_first: "<bos>" a[1] "+" b[1] "=" => s[N] "<eos>"
let value = digit(tokens)
let x = shift(value, 4)
output "<eos>" if indices == end(s) else nearest_digit(1 if x - 1/2 <= x else value)
"""


@pytest.mark.parametrize("text", [NO_UNITS, ALWAYS_TRUE], ids=["no_units", "always_true"])
def test_an_mlp_of_no_units_is_proved(text, tmp_path):
    assert oracle.check(text, "empty.rasp", dtypes=("float64", "float32")).kind == "compiled"
    assert _proof_failures("empty.rasp", text, tmp_path / "m.pt") == []
