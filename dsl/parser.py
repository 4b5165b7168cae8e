"""Text to syntax tree: lark parses with `grammar.lark`, a Transformer builds typed nodes."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from dsl import ast
from dsl.errors import AdderError, Span

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")

# lark names terminals; users should read what they would type.
_TERMINAL_WORDS = {
    "NAME": "a name", "INT": "a number", "STRING": "a string", "COMPARE": "a comparison",
    "PLUS": "'+'", "STAR": "'*'", "SLASH": "'/'", "PERCENT": "'%'", "POW": "'**'", "ENCODING": "'categorical' or 'numerical'",
    "DIGIT_ORDER": "'msb_first' or 'lsb_first'", "LPAR": "'('", "RPAR": "')'", "COMMA": "','",
    "EQUAL": "'='", "COLON": "':'", "LBRACE": "'{'", "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'",
    "MINUS": "'-'", "AMPERSAND": "'&'", "ARROW": "'=>'", "$END": "the end of the file",
}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR_PATH.read_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _expected_words(expected: set[str]) -> str:
    words = []
    for name in sorted(expected):
        if name in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[name])
        elif name.isupper() and not name.startswith("__"):
            words.append(f"'{name.lower()}'")
    words = sorted(set(words))
    if not words:
        return ""
    if len(words) > 6:
        words = words[:6] + ["..."]
    return "expected " + ", ".join(words)


class _ToAst(Transformer):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _span(self, meta) -> Span:
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok_span(self, tok: Token) -> Span:
        return Span(self.path, tok.line, tok.column, tok.end_line, tok.end_column)

    # statements
    @v_args(meta=True)
    def start(self, meta, items):
        return tuple(items)

    @v_args(meta=True)
    def const_decl(self, meta, items):
        return ast.ConstDecl(self._span(meta), str(items[0]), items[1])

    @v_args(meta=True)
    def let_decl(self, meta, items):
        name, encoding, value = items
        return ast.LetDecl(self._span(meta), str(name), str(encoding) if encoding else None, value)

    @v_args(meta=True)
    def def_expr(self, meta, items):
        name, params, body = items
        return ast.DefDecl(self._span(meta), str(name), params or (), (), body)

    @v_args(meta=True)
    def def_block(self, meta, items):
        name, params, *rest = items
        return ast.DefDecl(self._span(meta), str(name), params or (), tuple(rest[:-1]), rest[-1])

    def params(self, items):
        return tuple(str(t) for t in items)

    @v_args(meta=True)
    def import_decl(self, meta, items):
        return ast.ImportDecl(self._span(meta), str(items[0])[1:-1])

    @v_args(meta=True)
    def output_decl(self, meta, items):
        return ast.OutputDecl(self._span(meta), items[0])

    @v_args(meta=True)
    def meaning_decl(self, meta, items):
        return ast.MeaningDecl(self._span(meta), str(items[0]), items[1])

    @v_args(meta=True)
    def layout_decl(self, meta, items):
        base = order = None
        prompt, answer, seen_arrow = [], [], False
        for item in items:
            if isinstance(item, tuple) and item[0] == "base":
                base = item[1]
            elif isinstance(item, tuple) and item[0] == "order":
                order = item[1]
            elif isinstance(item, Token) and item.value == "=>":
                seen_arrow = True
            else:
                (answer if seen_arrow else prompt).append(item)
        return ast.LayoutDecl(self._span(meta), base, order, tuple(prompt), tuple(answer))

    def layout_base(self, items):
        return ("base", items[0])

    def layout_order(self, items):
        return ("order", str(items[0]))

    @v_args(meta=True)
    def layout_literal(self, meta, items):
        return ast.LayoutLiteral(self._span(meta), str(items[0])[1:-1])

    @v_args(meta=True)
    def layout_field(self, meta, items):
        return ast.LayoutField(self._span(meta), str(items[0]), items[1])

    # expressions
    @v_args(meta=True)
    def number(self, meta, items):
        return ast.Number(self._span(meta), int(items[0]))

    @v_args(meta=True)
    def string(self, meta, items):
        return ast.String(self._span(meta), str(items[0])[1:-1])

    @v_args(meta=True)
    def true(self, meta, items):
        return ast.Boolean(self._span(meta), True)

    @v_args(meta=True)
    def false(self, meta, items):
        return ast.Boolean(self._span(meta), False)

    @v_args(meta=True)
    def name(self, meta, items):
        return ast.Name(self._span(meta), str(items[0]))

    @v_args(meta=True)
    def call(self, meta, items):
        name, args = items
        positional, keywords = [], []
        for arg in (args or ()):
            if isinstance(arg, tuple):
                if arg[0] in dict(keywords):
                    raise AdderError(f"argument '{arg[0]}' given twice", arg[1].span)
                keywords.append(arg)
            elif keywords:
                raise AdderError("a positional argument cannot follow a keyword argument", arg.span)
            else:
                positional.append(arg)
        return ast.Call(self._span(meta), str(name), tuple(positional), tuple(keywords))

    @v_args(meta=True)
    def mapping(self, meta, items):
        pairs = tuple(p for p in items if p is not None)
        seen = set()
        for key, value in pairs:
            if key in seen:
                raise AdderError(f"token {key!r} appears twice in this map", value.span)
            seen.add(key)
        return ast.Mapping(self._span(meta), pairs)

    def map_item(self, items):
        return (str(items[0])[1:-1], items[1])

    def args(self, items):
        return tuple(items)

    def kwarg(self, items):
        return (str(items[0]), items[1])

    def _binop(op):
        @v_args(meta=True)
        def build(self, meta, items):
            return ast.BinOp(self._span(meta), op, items[0], items[1])
        return build

    add, sub, mul, div = _binop("+"), _binop("-"), _binop("*"), _binop("/")
    floordiv, mod = _binop("//"), _binop("%")

    @v_args(meta=True)
    def pow(self, meta, items):
        return ast.BinOp(self._span(meta), "**", items[0], items[2])

    @v_args(meta=True)
    def conj(self, meta, items):
        return ast.BinOp(self._span(meta), "&", items[0], items[1])

    @v_args(meta=True)
    def and_(self, meta, items):
        return ast.BinOp(self._span(meta), "and", items[0], items[1])

    @v_args(meta=True)
    def or_(self, meta, items):
        return ast.BinOp(self._span(meta), "or", items[0], items[1])

    @v_args(meta=True)
    def not_(self, meta, items):
        return ast.UnaryOp(self._span(meta), "not", items[0])

    @v_args(meta=True)
    def neg(self, meta, items):
        return ast.UnaryOp(self._span(meta), "neg", items[0])

    @v_args(meta=True)
    def compare(self, meta, items):
        return ast.Compare(self._span(meta), tuple(items[0::2]), tuple(str(t) for t in items[1::2]))

    @v_args(meta=True)
    def if_else(self, meta, items):
        then, condition, otherwise = items
        return ast.IfElse(self._span(meta), condition, then, otherwise)


def _after_last_token(source: str, path: str) -> Span:
    """Where an unfinished program stops: just after its last non-blank character."""
    text = source.rstrip()
    lines = text.splitlines() or [""]
    return Span(path, len(lines), len(lines[-1]) + 1)


def parse(source: str, path: str = "<string>") -> ast.Module:
    """Parse program text; every syntax error becomes an AdderError with line and column."""
    try:
        tree = _parser().parse(source)
    except UnexpectedCharacters as err:
        char = source[err.pos_in_stream] if err.pos_in_stream < len(source) else ""
        raise AdderError(f"unexpected character {char!r}", Span(path, err.line, err.column), source,
                         hint=_expected_words(err.allowed or set()) or None) from None
    except UnexpectedEOF as err:
        raise AdderError("the program ends in the middle of a statement", _after_last_token(source, path), source,
                         hint=_expected_words(set(err.expected)) or None) from None
    except UnexpectedToken as err:
        tok = err.token
        if tok.type == "$END":
            raise AdderError("the program ends in the middle of a statement", _after_last_token(source, path),
                             source,
                             hint=_expected_words(set(err.expected)) or None) from None
        raise AdderError(f"unexpected {tok.value!r}",
                         Span(path, tok.line, tok.column, tok.end_line, tok.end_column), source,
                         hint=_expected_words(set(err.expected)) or None) from None
    except UnexpectedInput as err:  # pragma: no cover - lark's other input errors
        raise AdderError(f"cannot parse: {err}", Span(path, err.line, err.column), source) from None
    try:
        statements = _ToAst(path).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, AdderError):
            err.orig_exc.source = source
            raise err.orig_exc from None
        raise
    return ast.Module(path, source, statements)
