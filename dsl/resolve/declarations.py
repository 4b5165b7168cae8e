"""Top-level statements: consts (with -D overrides), lets with their encodings, defs, the output."""
from __future__ import annotations

from pathlib import Path

import sympy

from dsl import ast
from dsl.core import Const
from dsl.resolve.names import describe, show_value, type_of_value


class Declarations:
    """The resolver's statements, and the constants they and the layout need."""

    def statement(self, st: ast.Statement, path: Path):
        if isinstance(st, ast.ImportDecl):
            self.load(self.import_path(st, path), span=st.span)
        elif isinstance(st, ast.ConstDecl):
            self.define_name(st.name, st)
            self.current = st
            if st.name in self.overrides:
                value = sympy.Integer(self.overrides[st.name])
                self.used_overrides.add(st.name)
                self.check_constant(value, self.name_span(st, st.name))
            else:
                value = self.constant(st.value, {}, "a const")
            self.current = None
            self.constants[st.name] = value
            self.globals[st.name] = (self.builder.const(value, st.span), st.span)
        elif isinstance(st, ast.LetDecl):
            self.define_name(st.name, st)
            self.current = st
            node = self.let(st, {})
            self.current = None
            self.globals[st.name] = (node, st.span)
        elif isinstance(st, ast.DefDecl):
            self.define_name(st.name, st)
            repeated = next((p for i, p in enumerate(st.params) if p in st.params[:i]), None)
            if repeated is not None:
                raise self.error(f"def '{st.name}' repeats the parameter name '{repeated}'",
                                 self.name_span(st, repeated, after="(", nth=2), "give each parameter its own name")
            self.defs[st.name] = st
        elif isinstance(st, ast.LayoutDecl):
            self.layout_decl(st)
        elif isinstance(st, ast.MeaningDecl):
            self.meaning_decl(st)
        elif isinstance(st, ast.RequireDecl):
            self.require_decl(st)
        elif isinstance(st, ast.OutputDecl):
            if self.output is not None:
                raise self.error("the program already has an output", st.span,
                                 f"a program has one output; the first one is at {self.output[1]}")
            node = self.expr(st.value, {})
            if node.type != "token":
                raise self.error(f"the output must be a token, but this is {describe(node.type)}", st.value.span,
                                 "turn a digit value into its token with digit_token(...)")
            self.output = (node, st.span)

    def let(self, st: ast.LetDecl, scope):
        node = self.expr(st.value, scope)
        if node.type == "selector" and st.encoding:
            raise self.error("a selector has no encoding to choose", self.name_span(st, st.encoding),
                             f"remove ': {st.encoding}'; only values are stored, and selectors are not values")
        if st.name not in node.names:
            node.names.append(st.name)
        if st.encoding:
            previous = self.encodings.get(node.id)
            where = self.name_span(st, st.encoding)
            if previous and previous != st.encoding:
                raise self.error(f"'{st.name}' is declared {st.encoding}, but it is the same value as one "
                                 f"already declared {previous}", where,
                                 f"a value has one encoding: remove one of the two annotations "
                                 f"(the other is at {self.encoding_spans[node.id]})")
            self.encodings[node.id] = st.encoding
            self.encoding_spans.setdefault(node.id, where)
        return node

    def constant(self, e, scope, what):
        node = self.expr(e, scope)
        if not isinstance(node, Const):
            raise self.error(f"{what} must be a compile-time constant", e.span,
                             "it may use numbers, consts and layout facts like start(a), not sequences")
        return node.value

    def int_constant(self, e, what) -> int:
        value = self.constant(e, {}, what)
        if type_of_value(value) != "num" or not value.is_integer:
            raise self.error(f"{what} must be a whole number, got {show_value(value)}", e.span,
                             "use // to divide whole numbers, e.g. N // 2" if type_of_value(value) == "num"
                             else "write a number, or a const that holds one")
        return int(value)

    def check_token_literals(self):
        for token, span in self.token_literals:
            if token not in self.layout.vocab:
                raise self.error(f"token {token!r} is not in the vocabulary", span,
                                 f"the vocabulary is {self.layout.vocab}")
