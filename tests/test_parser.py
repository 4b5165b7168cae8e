"""The parser: text to typed syntax tree, precedence, spans and syntax-error reporting."""
import pytest

from dsl import ast
from dsl.errors import AdderError
from dsl.parser import parse


def sx(e):
    """A compact s-expression of an expression tree, so shapes can be compared in one line."""
    if isinstance(e, ast.Number):
        return e.value
    if isinstance(e, ast.Name):
        return e.name
    if isinstance(e, ast.String):
        return ("str", e.value)
    if isinstance(e, ast.Boolean):
        return e.value
    if isinstance(e, ast.BinOp):
        return (e.op, sx(e.left), sx(e.right))
    if isinstance(e, ast.UnaryOp):
        return (e.op, sx(e.operand))
    if isinstance(e, ast.Compare):
        return ("cmp", e.ops, tuple(sx(x) for x in e.operands))
    if isinstance(e, ast.IfElse):
        return ("if", sx(e.condition), sx(e.then), sx(e.otherwise))
    if isinstance(e, ast.Call):
        return ("call", e.function, tuple(sx(a) for a in e.args), tuple((k, sx(v)) for k, v in e.kwargs))
    raise TypeError(e)


def expr(text):
    """Parse `let x = <text>` and return the expression's s-expression."""
    (statement,) = parse(f"let x = {text}\n").statements
    assert isinstance(statement, ast.LetDecl)
    return sx(statement.value)


def syntax_error(source, path="prog.rasp"):
    with pytest.raises(AdderError) as info:
        parse(source, path)
    return info.value


@pytest.mark.parametrize("text, shape", [
    ("-2 ** 2", ("neg", ("**", 2, 2))),
    ("(-2) ** 2", ("**", ("neg", 2), 2)),
    ("2 ** -1", ("**", 2, ("neg", 1))),
    ("2 ** 3 ** 2", ("**", 2, ("**", 3, 2))),
    ("a + b * c", ("+", "a", ("*", "b", "c"))),
    ("a * b + c", ("+", ("*", "a", "b"), "c")),
    ("(a + b) * c", ("*", ("+", "a", "b"), "c")),
    ("a - b - c", ("-", ("-", "a", "b"), "c")),
    ("a // b % c / d", ("/", ("%", ("//", "a", "b"), "c"), "d")),
    ("a & b + c", ("&", "a", ("+", "b", "c"))),
    ("a & b == c", ("cmp", ("==",), (("&", "a", "b"), "c"))),
    ("not a and b or c", ("or", ("and", ("not", "a"), "b"), "c")),
    ("not a == b", ("not", ("cmp", ("==",), ("a", "b")))),
    ("a or b and c", ("or", "a", ("and", "b", "c"))),
    ("true and false", ("and", True, False)),
])
def test_operator_precedence_and_associativity(text, shape):
    assert expr(text) == shape


def test_chained_comparison_is_one_compare_node():
    assert expr("q - 3 < k <= 5") == ("cmp", ("<", "<="), (("-", "q", 3), "k", 5))


def test_conjunction_of_two_selects():
    assert expr('select(a, b, k == q) & select(tokens, tokens, k != "+")') == (
        "&",
        ("call", "select", ("a", "b", ("cmp", ("==",), ("k", "q"))), ()),
        ("call", "select", ("tokens", "tokens", ("cmp", ("!=",), ("k", ("str", "+")))), ()),
    )


def test_if_else_is_right_associative_with_condition_in_the_middle():
    assert expr('"a" if c else "b" if d else "c"') == (
        "if", "c", ("str", "a"), ("if", "d", ("str", "b"), ("str", "c")))
    assert expr("x + 1 if c or d else y") == ("if", ("or", "c", "d"), ("+", "x", 1), "y")


def test_call_with_keyword_arguments():
    assert expr("sum(s, v, default=1, decay=10)") == (
        "call", "sum", ("s", "v"), (("default", 1), ("decay", 10)))
    assert expr("f()") == ("call", "f", (), ())


def test_def_with_expression_body_and_block_body():
    module = parse("def g() = 1\n"
                   "def f(x, y) {\n"
                   "    let t = x + y\n"
                   "    let u: numerical = t * 2\n"
                   "    u - 1\n"
                   "}\n")
    g, f = module.statements
    assert isinstance(g, ast.DefDecl) and g.name == "g" and g.params == () and g.lets == ()
    assert sx(g.body) == 1
    assert f.name == "f" and f.params == ("x", "y")
    assert [(let.name, let.encoding, sx(let.value)) for let in f.lets] == [
        ("t", None, ("+", "x", "y")), ("u", "numerical", ("*", "t", 2))]
    assert sx(f.body) == ("-", "u", 1)
    assert f.span.line == 2 and f.lets[1].span.line == 4


def test_layout_declaration():
    (layout,) = parse('layout base 10, msb_first: "<bos>" a[N] "+" b[N] "=" => sum[N + 1] "<eos>"').statements
    assert isinstance(layout, ast.LayoutDecl)
    assert sx(layout.base) == 10 and layout.order == "msb_first"
    prompt = [(i.token,) if isinstance(i, ast.LayoutLiteral) else (i.name, sx(i.width)) for i in layout.prompt]
    assert prompt == [("<bos>",), ("a", "N"), ("+",), ("b", "N"), ("=",)]
    assert isinstance(layout.answer[0], ast.LayoutField)
    assert layout.answer[0].name == "sum" and sx(layout.answer[0].width) == ("+", "N", 1)
    assert isinstance(layout.answer[1], ast.LayoutLiteral) and layout.answer[1].token == "<eos>"


def test_layout_needs_only_one_of_its_options():
    (base_only,) = parse('layout base 2: "<s>" x[2] => y[3] "</s>"').statements
    assert sx(base_only.base) == 2 and base_only.order is None
    (lsb,) = parse('layout lsb_first: "<s>" x[2] => y[3] "</s>"').statements
    assert lsb.base is None and lsb.order == "lsb_first"
    assert [type(i).__name__ for i in lsb.prompt] == ["LayoutLiteral", "LayoutField"]
    err = syntax_error('layout: "<s>" x[2] => y[3] "</s>"')
    assert (err.span.line, err.span.column) == (1, 7) and "'base'" in err.hint


def test_other_statements():
    module = parse('import "lib/helpers.rasp"\nconst N = 4\nmeaning sum = a + b\noutput "0"\n')
    imp, const, meaning, output = module.statements
    assert isinstance(imp, ast.ImportDecl) and imp.path == "lib/helpers.rasp"
    assert isinstance(const, ast.ConstDecl) and const.name == "N" and sx(const.value) == 4
    assert isinstance(meaning, ast.MeaningDecl) and meaning.field == "sum"
    assert sx(meaning.value) == ("+", "a", "b")
    assert isinstance(output, ast.OutputDecl) and sx(output.value) == ("str", "0")


def test_comments_and_newlines_are_ignored_but_hash_in_string_is_kept():
    module = parse("# heading comment\n\nlet x = 1 # trailing\n  # indented\nlet y =\n  2\noutput \"#\"  # not a comment start\n")
    x, y, out = module.statements
    assert (x.name, sx(x.value)) == ("x", 1)
    assert (y.name, sx(y.value), y.span.line) == ("y", 2, 5)
    assert sx(out.value) == ("str", "#")
    assert parse("# nothing but a comment\n").statements == ()


def test_spans_are_one_based_line_and_column():
    module = parse("const N = 3\nlet long_name = N + 10\n", "f.rasp")
    let = module.statements[1]
    assert (let.span.file, let.span.line, let.span.column) == ("f.rasp", 2, 1)
    plus = let.value
    assert (plus.span.line, plus.span.column, plus.span.end_column) == (2, 17, 23)
    assert (plus.right.span.column, plus.right.span.end_column) == (21, 23)
    assert module.path == "f.rasp" and module.source.startswith("const N")


# ----- syntax errors

def caret_line(column, width=1):
    return "    " + " " * (column - 1) + "^" * width


def test_unexpected_character_points_at_it():
    err = syntax_error("const N = 2\nlet x = 1 $ 2\n")
    assert (err.span.file, err.span.line, err.span.column) == ("prog.rasp", 2, 11)
    assert "unexpected character '$'" in err.message
    rendered = err.render()
    assert rendered.startswith("prog.rasp:2:11: error:")
    lines = rendered.splitlines()
    assert lines[1] == "    let x = 1 $ 2"
    assert lines[2] == caret_line(11)


def test_unexpected_token_points_at_it_with_a_caret_as_wide_as_the_token():
    err = syntax_error("const N = 3\nlet y = a bcd\n")
    assert (err.span.line, err.span.column) == (2, 11)
    assert "unexpected 'bcd'" in err.message
    lines = err.render().splitlines()
    assert lines[1:3] == ["    let y = a bcd", caret_line(11, 3)]
    assert "'let'" in err.hint  # a new statement was expected


def test_missing_name_after_let():
    err = syntax_error("let = 3")
    assert (err.span.line, err.span.column) == (1, 5)
    assert "unexpected '='" in err.message
    assert err.hint == "expected a name"
    assert "hint: expected a name" in err.render()


def test_unclosed_parenthesis_is_reported_at_the_next_statement():
    err = syntax_error("let x = (1 + 2\nlet y = 3\n")
    assert (err.span.line, err.span.column) == (2, 1)
    assert "')'" in err.hint
    assert "    let y = 3\n" + caret_line(1, 3) in err.render()


def test_unterminated_string():
    err = syntax_error('output "abc\n')
    assert (err.span.line, err.span.column) == (1, 8)
    assert "'\"'" in err.message


def test_end_of_file_inside_a_statement():
    err = syntax_error("let x = 1 +\n")
    assert "ends in the middle of a statement" in err.message
    assert (err.span.line, err.span.column) == (1, 12)
    assert err.render().splitlines()[1:3] == ["    let x = 1 +", caret_line(12)]


def test_end_of_file_error_points_after_the_last_token_despite_trailing_blank_lines():
    err = syntax_error("let x = 1\nlet y = (\n\n\n")
    assert err.span.line == 2


def test_keyword_argument_errors_come_from_the_tree_builder_with_source():
    err = syntax_error("let s = 1\nlet x = mean(s, s, default=1, default=2)\n")
    assert err.span.line == 2 and "'default' given twice" in err.message
    assert "    let x = mean(s, s, default=1, default=2)" in err.render()
    err = syntax_error("let x = mean(default=1, s)\n")
    assert "positional argument cannot follow a keyword argument" in err.message
    assert err.span.column == 25
