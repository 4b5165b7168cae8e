"""Name resolution, type checking, defs, imports, layouts and -D overrides."""
from pathlib import Path

import pytest

from dsl.core import Const
from dsl.errors import AdderError
from dsl.resolve import load_program
from dsl.semantics import evaluate

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "add10.rasp"
LAYOUT = 'layout base 10, msb_first: "<bos>" a[2] "+" b[2] "=" => sum[3] "<eos>"\n'
TOKENS = ["<bos>", "1", "2", "+", "3", "4", "="]


def load(body, layout=LAYOUT, **kwargs):
    """Load a program whose first line is the layout; the body starts on line 2."""
    return load_program("<test>", text=layout + body, **kwargs)


def fails(body, line, *fragments, layout=LAYOUT, **kwargs):
    with pytest.raises(AdderError) as info:
        load(body, layout=layout, **kwargs)
    err = info.value
    assert err.span is not None and err.span.line == line, err.render()
    for fragment in fragments:
        assert fragment in err.message, err.render()
    return err


# ----- names

def test_unknown_name_suggests_a_close_one():
    err = fails('let value = digit(tokens)\nlet x = valeu + 1\noutput "0"\n', 3, "unknown name 'valeu'")
    assert err.span.column == 9
    assert err.hint == "did you mean 'value'?"
    assert "hint: did you mean 'value'?" in err.render()


def test_unknown_function_suggests_a_builtin():
    err = fails('let x = selct(indices, indices, true)\noutput "0"\n', 2, "unknown function 'selct'")
    assert err.hint == "did you mean 'select'?"


def test_redefined_name_points_at_both_definitions():
    err = fails('let x = 1\noutput "0"\nconst x = 2\n', 4, "'x' is already defined")
    assert "<test>:2:1" in err.hint


@pytest.mark.parametrize("name", ["digit", "select", "tokens", "indices", "k", "shift"])
def test_builtin_names_cannot_be_redefined(name):
    fails(f'output "0"\nlet {name} = 1\n', 3, f"'{name}' is a built-in name")


def test_builtin_arity():
    err = fails('let x = digit(tokens, tokens)\noutput "0"\n', 2, "digit(...) takes 1 positional argument(s), got 2")
    fails('output "0"\n\nlet s = select(indices, indices)\n', 4, "select(...) takes 3")
    fails('let s = mean(select(indices, indices, true), indices, decay=2)\noutput "0"\n', 2,
          "mean(...) has no argument 'decay'")
    assert err.span.column == 9


def test_def_arity():
    err = fails('def f(x) = x + 1\nlet y = f(1, 2)\noutput "0"\n', 3, "f(...) takes 1 argument(s), got 2")
    assert "<test>:2:1" in err.hint  # where f is defined


# ----- types

def test_plus_on_a_token():
    err = fails('let x = tokens + 1\noutput "0"\n', 2, "needs numbers", "a token")
    assert "digit(...)" in err.hint


def test_and_on_numbers():
    fails('let x = indices and 2\noutput "0"\n', 2, "'and' needs booleans", "a number")


def test_if_else_branches_of_different_types():
    fails('output "0"\nlet x = "0" if indices == 1 else 1\n', 3, "branches of a conditional have different types",
          "a token and a number")


def test_output_must_be_a_token():
    err = fails('let x = 1\noutput indices + x\n', 3, "the output must be a token, but this is a number")
    assert "digit_token" in err.hint


def test_select_predicate_cannot_use_a_sequence():
    err = fails('let v = digit(tokens)\nlet s = select(indices, indices, k == v)\noutput "0"\n', 3,
                "may only use k, q and constants; 'v' is a sequence")
    assert err.span.column == 39


def test_k_outside_a_predicate():
    fails('output "0"\nlet x = k + 1\n', 3, "'k' only has a meaning inside a select predicate")


def test_recursive_def():
    fails('def f(x) = f(x) + 1\nlet y = f(indices)\noutput "0"\n', 2, "'f' calls itself")
    fails('def f(x) = g(x)\ndef g(x) = f(x)\noutput "0"\nlet y = f(indices)\n', 3, "'f' calls itself")


def test_token_string_must_be_in_the_vocabulary():
    err = fails('output "7x"\n', 2, "token '7x' is not in the vocabulary")
    assert "'<eos>'" in err.hint


def test_token_string_before_the_layout_is_also_checked():
    with pytest.raises(AdderError):
        load_program("<test>", text='output "7x"\n' + LAYOUT)


@pytest.mark.parametrize("offending, message", [("tokens + 1", "needs numbers"),
                                                 ('(tokens == "+") and 1', "needs booleans")])
def test_type_error_points_at_the_use_not_an_earlier_use_of_the_same_node(offending, message):
    fails(f'let v = digit(tokens)\nconst ONE = 1\nlet w = {offending}\noutput "0"\n', 4, message)


def test_def_parameter_usable_in_a_select_predicate():
    program = load('def back(x, n) = first(select(indices, indices, k == q - n), x)\n'
                   'let y = back(indices, 1)\noutput "0"\n')
    assert evaluate(program, TOKENS)["y"] == [0, 0, 1, 2, 3, 4, 5]


# ----- program structure

def test_missing_layout():
    err = fails('output "0"\n', 1, "no layout declaration", layout="")
    assert "layout base 10" in err.hint


def test_missing_output():
    fails('let x = 1\n\n', 3, "no output statement")


def test_second_output():
    fails('output "0"\noutput "1"\n', 3, "already has an output")


def test_override_of_an_undeclared_const():
    with pytest.raises(AdderError, match="-D X: the program declares no const of that name"):
        load('const N = 2\noutput "0"\n', overrides={"X": 3})
    with pytest.raises(AdderError, match="-D X"):
        load_program(EXAMPLE, overrides={"X": 3})


@pytest.mark.parametrize("layout, message", [
    ('layout base 10: "<bos>" a[2] "+" b[2] "=" => sum[3] "<eos>" "."\n', "one end token, e.g."),
    ('layout base 10: "<bos>" a[2] "+" b[2] "=" => "<eos>"\n', "exactly one field, optionally followed by an end token"),
    ('layout base 10: "<bos>" a[2] "5" b[2] "=" => sum[3] "<eos>"\n', "'5' is also a base-10 digit"),
    ('layout base 16: "<bos>" a[2] "f" b[2] "=" => sum[3] "<eos>"\n', "'f' is also a base-16 digit"),
    ('layout base 1: "<bos>" a[2] "+" b[2] "=" => sum[3] "<eos>"\n', "base must be between 2 and 36, got 1"),
    ('layout base 37: "<bos>" a[2] "+" b[2] "=" => sum[3] "<eos>"\n', "base must be between 2 and 36, got 37"),
    ('layout base 10: "<bos>" a[2] "+" a[2] "=" => sum[3] "<eos>"\n', "field 'a' appears twice"),
    ('layout base 10: "<bos>" a[0] "+" b[2] "=" => sum[3] "<eos>"\n', "positive whole width"),
    ('layout base 10: a[2] "+" b[2] "=" => sum[3] "<eos>"\n', "begin token"),
])
def test_layout_errors(layout, message):
    fails('output "0"\n', 2, message, layout="const N = 2\n" + layout)


def test_a_layout_may_end_with_its_answer():
    # No end token: the answer's width ends it, so the model sees every token but the last digit.
    program = load('output "0"\n', layout='layout base 10: "<bos>" a[2] "+" b[2] "=" => sum[3]\n')
    layout = program.layout
    assert layout.end_token is None and layout.vocab[-1] == "="
    assert layout.sequence_length == 10 and layout.n_ctx == 9
    assert layout.answer_tokens(57) == ["0", "5", "7"] and layout.written_answer(["0", "5", "7"]) == "057"


def test_layout_fact_before_the_layout():
    fails('let x = start(a)\n', 1, "needs the layout, which is not declared yet", layout="")


def test_meaning_must_name_the_answer_field():
    fails('meaning total = a + b\noutput "0"\n', 2, "answer field 'sum', not 'total'")
    fails('meaning sum = a + c\noutput "0"\n', 2, "'c' is neither")


def test_import_cycle(tmp_path):
    (tmp_path / "a.rasp").write_text('import "b.rasp"\n' + LAYOUT + 'output "0"\n')
    (tmp_path / "b.rasp").write_text('# helper\nimport "a.rasp"\n')
    with pytest.raises(AdderError) as info:
        load_program(tmp_path / "a.rasp")
    err = info.value
    assert "import cycle" in err.message and "a.rasp -> " in err.message
    assert Path(err.span.file).name == "b.rasp" and err.span.line == 2
    assert 'import "a.rasp"' in err.render()


def test_import_of_a_missing_file(tmp_path):
    (tmp_path / "main.rasp").write_text(LAYOUT + 'import "nope.rasp"\noutput "0"\n')
    with pytest.raises(AdderError, match="cannot import") as info:
        load_program(tmp_path / "main.rasp")
    assert info.value.span.line == 2


# ----- positive cases

def test_override_changes_the_layout():
    default = load_program(EXAMPLE)
    assert default.constants["N"] == 10 and default.layout.fields["a"].width == 10
    program = load_program(EXAMPLE, overrides={"N": 3})
    fields = program.layout.fields
    assert program.constants["N"] == 3
    assert (fields["a"].width, fields["b"].width, fields["sum"].width) == (3, 3, 4)
    assert (fields["a"].start, fields["b"].start, fields["sum"].start) == (1, 5, 9)
    assert program.layout.prompt_length == 9 and program.layout.sequence_length == 14
    assert program.constants["ALIGN"] == 4  # derived consts follow the override


def test_constants_fold_exactly():
    program = load('const A = -2 ** 2\nconst B = 7 // 2 + 7 % -3\nconst C = 1 / 3\nconst W = width(sum) * start(b)\n'
                   'output "0"\n')
    assert program.constants["A"] == -4
    assert program.constants["B"] == 3 + (7 % -3)  # Python floor semantics
    assert program.constants["C"] * 3 == 1
    assert program.constants["W"] == 3 * 4


def test_def_expansion_with_lets_inside():
    program = load('def f(x, y) {\n  let t = x + x\n  t + y\n}\n'
                   'let r = f(indices, 1)\nlet r2 = f(indices, 1)\nlet c = f(2, 3)\noutput "0"\n')
    named = program.named()
    assert named["r"] is named["r2"]  # expanding a def twice shares the nodes
    assert isinstance(named["c"], Const) and named["c"].value == 7  # constant arguments fold
    assert evaluate(program, TOKENS)["r"] == [2 * i + 1 for i in range(len(TOKENS))]


def test_let_encoding_annotation_is_recorded():
    program = load('let v: categorical = digit(tokens)\nlet w: numerical = indices * 2\noutput "0"\n')
    named = program.named()
    assert program.encodings[named["v"].id] == "categorical"
    assert program.encodings[named["w"].id] == "numerical"


def test_import_a_helper_def(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helpers.rasp").write_text("def twice(x) = x + x\nconst TEN = 10\n")
    main = tmp_path / "main.rasp"
    main.write_text('import "lib/helpers.rasp"\nimport "lib/helpers.rasp"\n' + LAYOUT
                    + "let d = twice(digit(tokens)) + TEN\noutput digit_token(d % 10)\n")
    program = load_program(main)
    assert sorted(Path(p).name for p in program.sources) == ["helpers.rasp", "main.rasp"]
    ev = evaluate(program, TOKENS)
    assert ev["d"] == [10, 12, 14, 10, 16, 18, 10]
    assert ev.output == ["0", "2", "4", "0", "6", "8", "0"]
