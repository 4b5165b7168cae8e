"""The lark parse tree to the typed syntax tree (dsl.ast): one method per grammar rule, in two parts,
statements and expressions, put together in ToAst."""
from __future__ import annotations

from lark import Token, Transformer, v_args

from dsl import ast
from dsl.errors import AdderError, Span
from dsl.limits import MAX_NUMBER_DIGITS

# Functions over a range of whole numbers, in a meaning: sum(p in 0..N-1: ...), product(...).
RANGE_FUNCTIONS = ("sum", "product")
# Words the grammar uses; the lexer would accept them as names where no keyword fits.
KEYWORDS = {"const", "let", "def", "import", "output", "meaning", "require", "layout", "in", "if", "else", "or", "and", "not",
            "true", "false"}


class _Positions:
    """Spans in the file being read, and names checked as they are defined."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _span(self, meta) -> Span:
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok_span(self, tok: Token) -> Span:
        return Span(self.path, tok.line, tok.column, tok.end_line, tok.end_column)

    def _new_name(self, tok: Token) -> str:
        """A name being defined; the lexer lets a keyword through where only a name fits."""
        if str(tok) in KEYWORDS:
            raise AdderError(f"'{tok}' is a keyword and cannot name anything", self._tok_span(tok),
                             hint=f"choose another name, e.g. '{tok}_'")
        return str(tok)


class _Statements:
    """The rules for statements: declarations, imports, the layout, the meaning and the output."""

    @v_args(meta=True)
    def start(self, meta, items):
        return tuple(items)

    @v_args(meta=True)
    def const_decl(self, meta, items):
        return ast.ConstDecl(self._span(meta), self._new_name(items[0]), items[1])

    @v_args(meta=True)
    def let_decl(self, meta, items):
        name, encoding, value = items
        return ast.LetDecl(self._span(meta), self._new_name(name), str(encoding) if encoding else None, value)

    @v_args(meta=True)
    def def_expr(self, meta, items):
        name, params, body = items
        return ast.DefDecl(self._span(meta), self._new_name(name), params or (), (), body)

    @v_args(meta=True)
    def def_block(self, meta, items):
        name, params, *rest = items
        return ast.DefDecl(self._span(meta), self._new_name(name), params or (), tuple(rest[:-1]), rest[-1])

    def params(self, items):
        return tuple(self._new_name(t) for t in items)

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
    def require_decl(self, meta, items):
        return ast.RequireDecl(self._span(meta), items[0])

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
        options = tuple((str(token), self._tok_span(token)) for token in items[2:] if token is not None)
        return ast.LayoutField(self._span(meta), str(items[0]), items[1], options)


class _Expressions:
    """The rules for expressions: literals, names, calls, maps and operators."""

    @v_args(meta=True)
    def number(self, meta, items):
        if len(items[0]) > MAX_NUMBER_DIGITS:
            raise AdderError(f"this number has {len(items[0]):,} digits; at most {MAX_NUMBER_DIGITS:,} are supported",
                             self._span(meta), hint="a program's numbers are sizes, offsets and small factors: "
                                                    "write a smaller one")
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
        if str(items[0]) in KEYWORDS:
            raise AdderError(f"'{items[0]}' is a keyword, but an expression was expected here",
                             self._tok_span(items[0]), hint="expected an expression")
        return ast.Name(self._span(meta), str(items[0]))

    @v_args(meta=True)
    def range_call(self, meta, items):
        function, variable, _in, low, high, body = items
        if str(function) not in RANGE_FUNCTIONS:
            raise AdderError(f"'{function}(... in ...: ...)' is not a function over a range; write "
                             f"sum(p in LOW..HIGH: ...) or product(p in LOW..HIGH: ...)", self._tok_span(function),
                             hint="for example sum(p in 0..N-1: a // 10 ** p % 10), the digit sum of a")
        return ast.RangeCall(self._span(meta), str(function), self._new_name(variable), low, high, body)

    @v_args(meta=True)
    def call(self, meta, items):
        name, args = items
        positional, keywords = [], []
        for arg in (args or ()):
            if isinstance(arg, tuple):
                if arg[0] in dict(keywords):
                    raise AdderError(f"argument '{arg[0]}' given twice", arg[1].span,
                                     hint=f"keep one {arg[0]}=...")
                keywords.append(arg)
            elif keywords:
                raise AdderError("a positional argument cannot follow a keyword argument", arg.span,
                                 hint="put the positional arguments first, then the keyword ones")
            else:
                positional.append(arg)
        return ast.Call(self._span(meta), str(name), tuple(positional), tuple(keywords))

    @v_args(meta=True)
    def mapping(self, meta, items):
        pairs = tuple(p for p in items if p is not None)
        seen = set()
        for key, value in pairs:
            if key in seen:
                raise AdderError(f"token {key!r} appears twice in this map", value.span,
                                 hint="give each token one value")
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


class ToAst(_Statements, _Expressions, _Positions, Transformer):
    """Builds a module's statements from its parse tree; errors are AdderErrors with spans."""
