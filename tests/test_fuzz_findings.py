"""Regression tests for bugs the fuzz campaign found (tests/fuzz, bench/fuzz.py).

Each program is the campaign's minimal reproducer; the fuzz oracle is the judge: a located error,
or a model equal to the interpreter on every input of the layout.
"""
from __future__ import annotations

import pytest

from compiler.api import compile_file
from compiler.model.file import load_model, save_model
from compiler.check.prove import prove
from compiler.check.verify import program_from_payload
from dsl.resolve import load_program
from dsl.semantics import EvaluationError, evaluate
from tests.fuzz.oracle import check

# F6: a let nothing reads, undefined on most inputs (digit_token of 15/4 at position 6).
UNREAD_UNDEFINED_LET = '''layout base 10: "<bos>" a[1] "-" b[1] "=" => s[2] "<eos>"
let unused = digit_token(mean(select(is_digit(tokens), indices, k), indices) % 10)
output "<eos>" if indices == end(s) else digit_token(digit(tokens))
'''


def test_a_let_the_output_does_not_read_cannot_make_the_program_undefined():
    program = load_program("<f6>", text=UNREAD_UNDEFINED_LET)
    tokens = program.layout.prompt_tokens({"a": 2, "b": 3}) + ["0", "0"]  # at 6: a mean of 15/4
    evaluation = evaluate(program, tokens)
    assert evaluation.output[-1] == "<eos>"
    with pytest.raises(EvaluationError, match="not a base-10 digit"):
        evaluation["unused"]  # inspecting the let itself still says why it has no value


def test_a_let_the_output_needs_is_still_an_error_where_undefined():
    text = UNREAD_UNDEFINED_LET.replace("digit_token(digit(tokens))", "unused")
    program = load_program("<f6>", text=text)
    with pytest.raises(EvaluationError, match="not a base-10 digit"):
        evaluate(program, program.layout.prompt_tokens({"a": 2, "b": 3}) + ["0", "0"])


def test_unread_undefined_let_compiles_to_a_model_equal_to_the_interpreter():
    outcome = check(UNREAD_UNDEFINED_LET, "<f6>", dtypes=("float64", "float32"))
    assert outcome.kind == "compiled", (outcome.message, outcome.detail)


# F4: an MLP value (v0) computed in place of a hosted sum, so stored as a multiple of its
# dimension, then chosen to host another sum whose term was scaled for a dimension holding v0.
HOST_STORED_SCALED = [
    '''layout base 3 : "<bos>"   b[2]  => s[2] "<eos>"
let v0 = abs(shift(digit(tokens)  ,   0) - indices % 2)
let v1 =   true
let v2 = select(tokens, indices, k != "<bos>")
output "<eos>" if indices == 0 else nearest_digit((first(select(v1, last(v2, v0), k), ((digit(tokens))          )) + v0)  )
''',
    '''layout  base 10:   "|" b[1] "=" => r[2] "<eos>"
let v0 = abs(digit(tokens) + digit(tokens) - shift(digit(tokens), 2))
output "<eos>" if indices == 0 else nearest_digit((shift(shift(indices, 2) + last(select(indices, indices, k == q) & select(indices, indices, k == q), v0), 3) + v0)  )
''',
]


@pytest.mark.parametrize("text", HOST_STORED_SCALED, ids=["constant_key", "no_constant_key"])
def test_a_value_stored_scaled_in_place_can_still_host_a_sum(text):
    outcome = check(text, "<f4>", dtypes=("float64", "float32"))
    assert outcome.kind == "compiled", (outcome.message, outcome.detail)


# F2: a selector_width read one-hot (annotated categorical, or the key of a select that needs a
# table): its MLP writes the width's one-hot, read as one.
WIDTH_ONE_HOT = {
    "annotated": "let w: categorical = selector_width(select(digit(tokens), indices, k == 0))\n"
                 "output nearest_digit(w)\n",
    "select_key": "let w = selector_width(select(digit(tokens), indices, k == 0))\n"
                  "output nearest_digit(last(select(w, indices, k <= q), 1))\n",
}
WIDTH_LAYOUT = 'layout base 3: "<bos>" a[3] => r[1]\n'


@pytest.mark.parametrize("name", sorted(WIDTH_ONE_HOT))
def test_a_selector_width_read_one_hot_compiles_and_is_proved(name, tmp_path):
    text = WIDTH_LAYOUT + WIDTH_ONE_HOT[name]
    outcome = check(text, "<f2>", dtypes=("float64", "float32"))
    assert outcome.kind == "compiled", (outcome.message, outcome.detail)
    path = tmp_path / "w.rasp"
    path.write_text(text)
    ir, stats, digest = compile_file(path)
    assert ir.graph.nodes[ir.program.named()["w"].id]["encoding"] == "categorical"
    save_model(tmp_path / "w.pt", ir, stats, digest)
    payload = load_model(tmp_path / "w.pt")[1]
    proof = prove(payload, program_from_payload(payload, None))
    assert proof.status == "proved", proof.reason
