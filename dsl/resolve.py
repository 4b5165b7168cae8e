"""Syntax tree to core program: constants, lets, defs, imports and the layout, with type checks.

Defs are expanded at every call (there is no run-time function call in a transformer); constants
are folded; `-D NAME=VALUE` overrides a declared constant. Every error names file, line and column.
"""
from __future__ import annotations

import difflib
import hashlib
from pathlib import Path
from typing import Any

import sympy

from dsl import ast
from dsl.core import (Aggregate, Const, Indices, Map, Node, Program, Select, SelectorWidth, SelectTerm,
                      Tokens, Var)
from dsl.errors import AdderError, Span
from dsl import meaning as meaning_rules
from dsl.layout import Layout, Meaning, build_layout
from dsl.parser import parse
from dsl.semantics import EvaluationError, apply_op

BINARY_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "//": "floordiv", "%": "mod", "**": "pow",
              "and": "and", "or": "or"}
COMPARE_OPS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
AGGREGATES = {"mean": "mean", "aggregate": "mean", "sum": "sum", "first": "first", "last": "last"}
ELEMENTWISE_BUILTINS = {"digit": 1, "digit_token": 1, "is_digit": 1, "min": 2, "max": 2, "abs": 1}
LAYOUT_BUILTINS = {"start", "end", "width"}
BUILTIN_FUNCTIONS = (set(AGGREGATES) | set(ELEMENTWISE_BUILTINS) | LAYOUT_BUILTINS
                     | {"select", "selector_width", "shift", "nearest", "nearest_digit"})
MAX_DEF_DEPTH = 64


def type_of_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "candidates"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "token"
    return "num"


def describe(type_name: str) -> str:
    return {"num": "a number", "bool": "a boolean", "token": "a token", "selector": "a selector",
            "candidates": "a candidate map"}[type_name]


class _Builder:
    """Creates core nodes, sharing structurally equal ones."""

    def __init__(self):
        self.cache: dict[tuple, Node] = {}
        self.nodes: list[Node] = []
        self.predicate_ids: set[int] = set()

    def _make(self, key, factory) -> Node:
        if key in self.cache:
            return self.cache[key]
        node = factory(len(self.nodes))
        self.nodes.append(node)
        self.cache[key] = node
        return node

    def tokens(self, span):
        return self._make(("tokens",), lambda i: Tokens(i, "token", span))

    def indices(self, span):
        return self._make(("indices",), lambda i: Indices(i, "num", span))

    def const(self, value, span):
        return self._make(("const", type_of_value(value), value), lambda i: Const(i, type_of_value(value), span, value))

    def var(self, role, type_name, span):
        node = self._make(("var", role, type_name), lambda i: Var(i, type_name, span, role))
        self.predicate_ids.add(node.id)
        return node

    def map(self, op, args, type_name, span):
        node = self._make(("map", op, tuple(a.id for a in args)), lambda i: Map(i, type_name, span, op, tuple(args)))
        if any(a.id in self.predicate_ids for a in args):
            self.predicate_ids.add(node.id)
        return node

    def select(self, terms, span):
        key = ("select", tuple((t.keys.id, t.queries.id, t.predicate.id) for t in terms))
        return self._make(key, lambda i: Select(i, "selector", span, tuple(terms)))

    def aggregate(self, mode, selector, value, default, decay, type_name, span):
        key = ("aggregate", mode, selector.id, value.id, type_of_value(default), default, decay)
        return self._make(key, lambda i: Aggregate(i, type_name, span, mode, selector, value, default, decay))

    def selector_width(self, selector, span):
        return self._make(("width", selector.id), lambda i: SelectorWidth(i, "num", span, selector))


class _Resolver:
    def __init__(self, overrides: dict[str, int]):
        self.builder = _Builder()
        self.overrides = dict(overrides)
        self.used_overrides: set[str] = set()
        self.constants: dict[str, Any] = {}
        self.globals: dict[str, tuple[Node, Span]] = {}
        self.defs: dict[str, ast.DefDecl] = {}
        self.encodings: dict[int, str] = {}
        self.sources: dict[str, str] = {}
        self.layout: Layout | None = None
        self.meaning: Meaning | None = None
        self.output: tuple[Node, Span] | None = None
        self.import_stack: list[str] = []
        self.def_stack: list[str] = []
        self.token_literals: list[tuple[str, Span]] = []

    # ----- errors
    def error(self, message, span, hint=None):
        source = self.sources.get(span.file) if span else None
        return AdderError(message, span, source, hint)

    # ----- files
    def load(self, path: Path, text: str | None = None, span: Span | None = None):
        key = str(path)
        if key in self.import_stack:
            raise self.error(f"import cycle: {' -> '.join(self.import_stack + [key])}", span)
        if key in self.sources:
            return  # already imported: importing twice is harmless
        if text is None:
            try:
                text = path.read_text()
            except OSError as err:
                if span is None:
                    raise AdderError(f"cannot read program {key}: {err.strerror}") from None
                raise self.error(f"cannot import {key}: {err.strerror}", span) from None
        self.sources[key] = text
        module = parse(text, key)
        self.import_stack.append(key)
        for statement in module.statements:
            self.statement(statement, path)
        self.import_stack.pop()

    def statement(self, st: ast.Statement, path: Path):
        if isinstance(st, ast.ImportDecl):
            self.load((path.parent / st.path).resolve() if path.name else Path(st.path), span=st.span)
        elif isinstance(st, ast.ConstDecl):
            self.define_name(st.name, st.span)
            if st.name in self.overrides:
                value = sympy.Integer(self.overrides[st.name])
                self.used_overrides.add(st.name)
            else:
                value = self.constant(st.value, {}, "a const")
            self.constants[st.name] = value
            self.globals[st.name] = (self.builder.const(value, st.span), st.span)
        elif isinstance(st, ast.LetDecl):
            self.define_name(st.name, st.span)
            node = self.let(st, {})
            self.globals[st.name] = (node, st.span)
        elif isinstance(st, ast.DefDecl):
            self.define_name(st.name, st.span)
            if len(set(st.params)) != len(st.params):
                raise self.error(f"def '{st.name}' repeats a parameter name", st.span)
            self.defs[st.name] = st
        elif isinstance(st, ast.LayoutDecl):
            self.layout_decl(st)
        elif isinstance(st, ast.MeaningDecl):
            self.meaning_decl(st)
        elif isinstance(st, ast.OutputDecl):
            if self.output is not None:
                raise self.error("the program already has an output", st.span,
                                 f"the first one is at {self.output[1]}")
            node = self.expr(st.value, {})
            if node.type != "token":
                raise self.error(f"the output must be a token, but this is {describe(node.type)}", st.value.span,
                                 "turn a digit value into its token with digit_token(...)")
            self.output = (node, st.span)

    def define_name(self, name, span):
        if name in self.globals or name in self.defs:
            previous = self.globals[name][1] if name in self.globals else self.defs[name].span
            raise self.error(f"'{name}' is already defined", span, f"the first definition is at {previous}")
        if name in BUILTIN_FUNCTIONS or name in {"tokens", "indices", "k", "q"}:
            raise self.error(f"'{name}' is a built-in name and cannot be redefined", span)

    def let(self, st: ast.LetDecl, scope):
        node = self.expr(st.value, scope)
        if node.type == "selector" and st.encoding:
            raise self.error("a selector has no encoding to choose", st.span)
        if st.name not in node.names:
            node.names.append(st.name)
        if st.encoding:
            previous = self.encodings.get(node.id)
            if previous and previous != st.encoding:
                raise self.error(f"this value is already declared {previous}", st.span)
            self.encodings[node.id] = st.encoding
        return node

    # ----- layout and meaning
    def layout_decl(self, st: ast.LayoutDecl):
        if self.layout is not None:
            raise self.error("the program already has a layout", st.span)
        base = 10 if st.base is None else self.int_constant(st.base, "the base")
        entries = []
        for item in st.prompt + st.answer:
            if isinstance(item, ast.LayoutLiteral):
                entries.append(("literal", item.span, item.token))
            else:
                entries.append(("field", item.span, item.name, self.int_constant(item.width, "a field width")))
        n_prompt = len(st.prompt)
        self.layout = build_layout(base, st.order or "msb_first", entries[:n_prompt], entries[n_prompt:],
                                   st.span, self.sources.get(st.span.file))

    def meaning_decl(self, st: ast.MeaningDecl):
        layout = self.require_layout(st.span)
        if st.field != layout.answer.name:
            raise self.error(f"a meaning defines the answer field '{layout.answer.name}', not '{st.field}'", st.span)
        operand_names = {f.name for f in layout.operands}
        self.check_meaning_names(st.value, operand_names)
        expression = st.value
        source = self.sources.get(st.span.file, "")
        text = source.splitlines()[expression.span.line - 1][expression.span.column - 1:expression.span.end_column - 1] \
            if source and expression.span.line == expression.span.end_line else "<expression>"
        problem = meaning_rules.check(expression)
        if problem:
            raise self.error(f"a meaning is an integer expression over the operands; it cannot contain {problem}",
                             expression.span)
        constants = dict(self.constants)
        self.meaning = Meaning(st.field, text, expression, constants)

    def check_meaning_names(self, e, operand_names):
        if isinstance(e, ast.Name):
            if e.name not in operand_names and e.name not in self.constants:
                raise self.error(f"a meaning may use operand fields {sorted(operand_names)} and constants; "
                                 f"'{e.name}' is neither", e.span)
        for child in _children(e):
            self.check_meaning_names(child, operand_names)

    def require_layout(self, span) -> Layout:
        if self.layout is None:
            raise self.error("this needs the layout, which is not declared yet", span,
                             'declare it first, e.g. layout base 10, msb_first: "<bos>" a[N] "+" b[N] "=" => sum[N + 1] "<eos>"')
        return self.layout

    # ----- constants
    def constant(self, e, scope, what):
        node = self.expr(e, scope)
        if not isinstance(node, Const):
            raise self.error(f"{what} must be a compile-time constant", e.span,
                             "it may use numbers, consts and layout facts like start(a), not sequences")
        return node.value

    def int_constant(self, e, what) -> int:
        value = self.constant(e, {}, what)
        if type_of_value(value) != "num" or not value.is_integer:
            raise self.error(f"{what} must be a whole number, got {value}", e.span)
        return int(value)

    # ----- expressions
    def expr(self, e: ast.Expr, scope: dict) -> Node:
        method = getattr(self, "expr_" + type(e).__name__)
        return method(e, scope)

    def expr_Number(self, e, scope):
        return self.builder.const(sympy.Integer(e.value), e.span)

    def expr_String(self, e, scope):
        self.token_literals.append((e.value, e.span))
        return self.builder.const(e.value, e.span)

    def check_token_literals(self):
        for token, span in self.token_literals:
            if token not in self.layout.vocab:
                raise self.error(f"token {token!r} is not in the vocabulary", span,
                                 f"the vocabulary is {self.layout.vocab}")

    def expr_Boolean(self, e, scope):
        return self.builder.const(e.value, e.span)

    def expr_Name(self, e, scope):
        if e.name in scope:
            return scope[e.name]
        if e.name in self.globals:
            return self.globals[e.name][0]
        if e.name == "tokens":
            return self.builder.tokens(e.span)
        if e.name == "indices":
            return self.builder.indices(e.span)
        if e.name in self.defs or e.name in BUILTIN_FUNCTIONS:
            raise self.error(f"'{e.name}' is a function; call it with (...)", e.span)
        if e.name in ("k", "q"):
            raise self.error(f"'{e.name}' only has a meaning inside a select predicate", e.span,
                             "select(keys, queries, k == q - 1)")
        known = list(scope) + list(self.globals) + ["tokens", "indices"]
        close = difflib.get_close_matches(e.name, known, n=1)
        raise self.error(f"unknown name '{e.name}'", e.span, f"did you mean '{close[0]}'?" if close else None)

    def elementwise(self, op, args, span, arg_spans=None):
        """Type-check and build an elementwise op, folding it when every argument is constant.

        Errors point at `arg_spans` (where each argument is written here): shared nodes keep the
        span of their first use, which may be elsewhere.
        """
        type_name = self.result_type(op, args, span, arg_spans or tuple(span for _ in args))
        if all(isinstance(a, Const) for a in args):
            try:
                value = apply_op(op, tuple(a.value for a in args), self.layout.base if self.layout else 10)
            except EvaluationError as err:
                raise self.error(str(err), span) from None
            return self.builder.const(value, span)
        return self.builder.map(op, args, type_name, span)

    def result_type(self, op, args, span, arg_spans):
        types = [a.type for a in args]
        args = [_At(a, where) for a, where in zip(args, arg_spans)]
        if "selector" in types:
            raise self.error("a selector cannot be used as a value here", span,
                             "aggregate it first, e.g. mean(sel, values) or first(sel, values)")
        numeric = {"num", "bool"}
        if op in ("add", "sub", "mul", "div", "floordiv", "mod", "pow", "neg", "abs", "min", "max"):
            for a in args:
                if a.type not in numeric:
                    raise self.error(f"'{op}' needs numbers, but got {describe(a.type)}", a.span,
                                     "turn a digit token into its value with digit(...)" if a.type == "token" else None)
            return "num"
        if op in ("lt", "le", "gt", "ge"):
            for a in args:
                if a.type not in numeric:
                    raise self.error(f"ordering comparisons need numbers, but got {describe(a.type)}", a.span)
            return "bool"
        if op in ("eq", "ne"):
            if (types[0] == "token") != (types[1] == "token"):
                raise self.error(f"cannot compare {describe(types[0])} with {describe(types[1])}", span)
            return "bool"
        if op in ("and", "or", "not"):
            for a in args:
                if a.type != "bool":
                    raise self.error(f"'{op}' needs booleans, but got {describe(a.type)}", a.span,
                                     "compare it, e.g. x != 0")
            return "bool"
        if op == "if_else":
            if types[0] != "bool":
                raise self.error(f"a condition must be a boolean, but got {describe(types[0])}", args[0].span)
            if types[1] == types[2]:
                return types[1]
            if set(types[1:]) <= numeric:
                return "num"
            raise self.error(f"the branches of a conditional have different types: "
                             f"{describe(types[1])} and {describe(types[2])}", span)
        if op in ("digit", "is_digit"):
            if types[0] != "token":
                raise self.error(f"{op}(...) takes a token, but got {describe(types[0])}", args[0].span)
            return "num" if op == "digit" else "bool"
        if op == "nearest":
            return "token"
        if op == "digit_token":
            if types[0] not in numeric:
                raise self.error(f"digit_token(...) takes a number, but got {describe(types[0])}", args[0].span)
            return "token"
        raise AssertionError(op)  # pragma: no cover

    def expr_BinOp(self, e, scope):
        left, right = self.expr(e.left, scope), self.expr(e.right, scope)
        if e.op == "&":
            for side, node in (("left", left), ("right", right)):
                if node.type != "selector":
                    raise self.error(f"'&' combines selectors, but its {side} side is {describe(node.type)}",
                                     node.span if node.span.file == e.span.file else e.span,
                                     "use 'and' for booleans")
            return self.builder.select(left.terms + right.terms, e.span)
        return self.elementwise(BINARY_OPS[e.op], (left, right), e.span, (e.left.span, e.right.span))

    def expr_UnaryOp(self, e, scope):
        return self.elementwise(e.op, (self.expr(e.operand, scope),), e.span, (e.operand.span,))

    def expr_Compare(self, e, scope):
        operands = [self.expr(x, scope) for x in e.operands]
        result = None
        for i, op in enumerate(e.ops):
            part = self.elementwise(COMPARE_OPS[op], (operands[i], operands[i + 1]), e.span,
                                    (e.operands[i].span, e.operands[i + 1].span))
            result = part if result is None else self.elementwise("and", (result, part), e.span)
        return result

    def expr_IfElse(self, e, scope):
        args = (self.expr(e.condition, scope), self.expr(e.then, scope), self.expr(e.otherwise, scope))
        return self.elementwise("if_else", args, e.span, (e.condition.span, e.then.span, e.otherwise.span))

    def expr_Call(self, e, scope):
        name = e.function
        if name in self.defs:
            return self.call_def(e, scope)
        if name not in BUILTIN_FUNCTIONS:
            if name in scope or name in self.globals:
                raise self.error(f"'{name}' is a value, not a function", e.span)
            close = difflib.get_close_matches(name, list(self.defs) + sorted(BUILTIN_FUNCTIONS), n=1)
            raise self.error(f"unknown function '{name}'", e.span, f"did you mean '{close[0]}'?" if close else None)
        if name in LAYOUT_BUILTINS:
            return self.layout_fact(e)
        if name == "select":
            return self.call_select(e, scope)
        if name in ELEMENTWISE_BUILTINS:
            self.check_arity(e, ELEMENTWISE_BUILTINS[name], ())
            return self.elementwise(name, tuple(self.expr(a, scope) for a in e.args), e.span,
                                    tuple(a.span for a in e.args))
        if name == "selector_width":
            self.check_arity(e, 1, ())
            return self.builder.selector_width(self.selector_arg(e.args[0], scope), e.span)
        if name == "shift":
            return self.call_shift(e, scope)
        if name in ("nearest", "nearest_digit"):
            return self.call_nearest(e, scope)
        return self.call_aggregate(e, scope)

    def check_arity(self, e, count, keywords, optional=0):
        if not count <= len(e.args) <= count + optional:
            expected = f"{count}" if not optional else f"{count} to {count + optional}"
            raise self.error(f"{e.function}(...) takes {expected} positional argument(s), got {len(e.args)}", e.span)
        for key, value in e.kwargs:
            if key not in keywords:
                allowed = f"; it accepts {', '.join(keywords)}" if keywords else ""
                raise self.error(f"{e.function}(...) has no argument '{key}'{allowed}", value.span)

    def selector_arg(self, arg, scope) -> Select:
        node = self.expr(arg, scope)
        if node.type != "selector":
            raise self.error(f"expected a selector, but this is {describe(node.type)}", arg.span,
                             "build one with select(keys, queries, predicate)")
        return node

    def sequence_arg(self, arg, scope, what) -> Node:
        node = self.expr(arg, scope)
        if node.type == "selector":
            raise self.error(f"{what} must be a sequence, not a selector", arg.span)
        return node

    def call_select(self, e, scope):
        self.check_arity(e, 3, ())
        keys = self.sequence_arg(e.args[0], scope, "the keys")
        queries = self.sequence_arg(e.args[1], scope, "the queries")
        pred_scope = {"k": self.builder.var("k", keys.type, e.args[0].span),
                      "q": self.builder.var("q", queries.type, e.args[1].span)}
        predicate = self.predicate(e.args[2], pred_scope, scope)
        if predicate.type != "bool":
            raise self.error(f"a select predicate must be a boolean, but this is {describe(predicate.type)}",
                             e.args[2].span)
        return self.builder.select((SelectTerm(keys, queries, predicate),), e.span)

    def predicate(self, e, pred_scope, scope):
        """A predicate sees only k, q and constants: it is compiled to a table, not evaluated per position."""
        if isinstance(e, ast.Name) and e.name in pred_scope:
            return pred_scope[e.name]
        if isinstance(e, ast.Name):
            node = self.expr(e, scope)
            if not isinstance(node, Const):
                raise self.error(f"a select predicate may only use k, q and constants; '{e.name}' is a sequence",
                                 e.span, "select on that sequence instead: select(keys, queries, ...)")
            return node
        if isinstance(e, (ast.Number, ast.String, ast.Boolean)):
            return self.expr(e, scope)
        if isinstance(e, ast.BinOp) and e.op != "&":
            return self.elementwise(BINARY_OPS[e.op], (self.predicate(e.left, pred_scope, scope),
                                                       self.predicate(e.right, pred_scope, scope)), e.span)
        if isinstance(e, ast.UnaryOp):
            return self.elementwise(e.op, (self.predicate(e.operand, pred_scope, scope),), e.span)
        if isinstance(e, ast.Compare):
            operands = [self.predicate(x, pred_scope, scope) for x in e.operands]
            result = None
            for i, op in enumerate(e.ops):
                part = self.elementwise(COMPARE_OPS[op], (operands[i], operands[i + 1]), e.span)
                result = part if result is None else self.elementwise("and", (result, part), e.span)
            return result
        if isinstance(e, ast.IfElse):
            return self.elementwise("if_else", (self.predicate(e.condition, pred_scope, scope),
                                                self.predicate(e.then, pred_scope, scope),
                                                self.predicate(e.otherwise, pred_scope, scope)), e.span)
        if isinstance(e, ast.Call) and e.function in ELEMENTWISE_BUILTINS:
            self.check_arity(e, ELEMENTWISE_BUILTINS[e.function], ())
            return self.elementwise(e.function, tuple(self.predicate(a, pred_scope, scope) for a in e.args), e.span)
        if isinstance(e, ast.Call) and e.function in LAYOUT_BUILTINS:
            return self.layout_fact(e)
        raise self.error("this is not allowed in a select predicate", e.span,
                         "a predicate is an expression over k, q and constants, e.g. k == q - 1")

    def call_aggregate(self, e, scope):
        mode = AGGREGATES[e.function]
        keywords = ("default", "decay") if mode == "sum" else ("default",)
        self.check_arity(e, 2, keywords)
        selector = self.selector_arg(e.args[0], scope)
        value = self.sequence_arg(e.args[1], scope, "the values")
        kwargs = dict(e.kwargs)
        if mode in ("sum",) and value.type == "token":
            raise self.error("sum(...) needs numbers, but the values are tokens", e.args[1].span)
        result_type = value.type
        if mode in ("mean", "sum") and value.type == "bool":
            result_type = "num"
        default = self.default_value(kwargs.get("default"), result_type, e, scope)
        decay = None
        if "decay" in kwargs:
            decay = self.constant(kwargs["decay"], scope, "decay")
            if type_of_value(decay) != "num" or decay <= 0:
                raise self.error(f"decay must be a positive number, got {decay}", kwargs["decay"].span)
        return self.builder.aggregate(mode, selector, value, default, decay, result_type, e.span)

    def default_value(self, expr, result_type, e, scope):
        if expr is None:
            if result_type == "token":
                raise self.error(f"{e.function}(...) over tokens needs default=\"...\" for when nothing is selected",
                                 e.span)
            return False if result_type == "bool" else sympy.Integer(0)
        value = self.constant(expr, scope, "default")
        kind = type_of_value(value)
        if kind != result_type and not (kind in ("num", "bool") and result_type in ("num", "bool")):
            raise self.error(f"the default is {describe(kind)}, but the values are {describe(result_type)}",
                             expr.span)
        if result_type == "num" and kind == "bool":
            value = sympy.Integer(int(value))
        return value

    def call_nearest(self, e, scope):
        """nearest(x, {"tok": value, ...}): the token whose value is closest to x (a readout)."""
        if e.function == "nearest_digit":
            self.check_arity(e, 1, ())
            layout = self.require_layout(e.span)
            candidates = tuple((d, sympy.Integer(i)) for i, d in enumerate(layout.digits))
        else:
            self.check_arity(e, 2, ())
            table = e.args[1]
            if not isinstance(table, ast.Mapping) or not table.items:
                raise self.error("nearest(...) takes its candidates as a map, e.g. {\"0\": 0, \"1\": 1}",
                                 table.span)
            candidates = []
            for token, value_expr in table.items:
                self.token_literals.append((token, table.span))
                value = self.constant(value_expr, scope, "a candidate's value")
                if type_of_value(value) != "num":
                    raise self.error(f"a candidate's value must be a number, got {value!r}", value_expr.span)
                candidates.append((token, value))
            candidates = tuple(candidates)
        x = self.sequence_arg(e.args[0], scope, "the value")
        if x.type not in ("num", "bool"):
            raise self.error(f"nearest(...) reads a number, but got {describe(x.type)}", e.args[0].span)
        return self.elementwise("nearest", (x, self.builder.const(candidates, e.span)), e.span,
                                (e.args[0].span, e.span))

    def expr_Mapping(self, e, scope):
        raise self.error("a map of candidates only goes in nearest(value, {...})", e.span)

    def call_shift(self, e, scope):
        """shift(values, by): the value `by` positions earlier; a select on indices at a fixed offset."""
        self.check_arity(e, 2, ("default",))
        value = self.sequence_arg(e.args[0], scope, "the values")
        by = self.constant(e.args[1], scope, "the shift")
        if type_of_value(by) != "num" or not by.is_integer:
            raise self.error(f"the shift must be a whole number, got {by}", e.args[1].span)
        indices = self.builder.indices(e.span)
        pred_scope = {"k": self.builder.var("k", "num", e.span), "q": self.builder.var("q", "num", e.span)}
        offset = self.builder.const(by, e.span)
        predicate = self.elementwise("eq", (pred_scope["k"], self.elementwise("sub", (pred_scope["q"], offset),
                                                                              e.span)), e.span)
        selector = self.builder.select((SelectTerm(indices, indices, predicate),), e.span)
        default = self.default_value(dict(e.kwargs).get("default"), value.type, e, scope)
        return self.builder.aggregate("first", selector, value, default, None, value.type, e.span)

    def layout_fact(self, e):
        self.check_arity(e, 1, ())
        layout = self.require_layout(e.span)
        arg = e.args[0]
        if not isinstance(arg, ast.Name) or arg.name not in layout.fields:
            raise self.error(f"{e.function}(...) takes a layout field name, one of {list(layout.fields)}", arg.span)
        field = layout.fields[arg.name]
        value = {"start": field.start, "end": field.end, "width": field.width}[e.function]
        return self.builder.const(sympy.Integer(value), e.span)

    def call_def(self, e, scope):
        definition = self.defs[e.function]
        if e.kwargs:
            raise self.error(f"{e.function}(...) takes positional arguments only", e.kwargs[0][1].span)
        if len(e.args) != len(definition.params):
            raise self.error(f"{e.function}(...) takes {len(definition.params)} argument(s), got {len(e.args)}",
                             e.span, f"it is defined at {definition.span}")
        if e.function in self.def_stack or len(self.def_stack) > MAX_DEF_DEPTH:
            raise self.error(f"'{e.function}' calls itself; defs are expanded at compile time and cannot recurse",
                             e.span)
        local = {p: self.expr(a, scope) for p, a in zip(definition.params, e.args)}
        self.def_stack.append(e.function)
        for let in definition.lets:
            if let.name in local:
                raise self.error(f"'{let.name}' is already defined in this def", let.span)
            local[let.name] = self.let(let, local)
        result = self.expr(definition.body, local)
        self.def_stack.pop()
        return result


class _At:
    """A node seen at one particular use, so type errors point where the user wrote it."""

    def __init__(self, node, span):
        self.node, self.span, self.type = node, span, node.type


def _children(e):
    if isinstance(e, ast.BinOp):
        return (e.left, e.right)
    if isinstance(e, ast.UnaryOp):
        return (e.operand,)
    if isinstance(e, ast.Compare):
        return e.operands
    if isinstance(e, ast.IfElse):
        return (e.condition, e.then, e.otherwise)
    if isinstance(e, ast.Call):
        return e.args + tuple(v for _, v in e.kwargs)
    return ()


def load_program(path: str | Path, overrides: dict[str, int] | None = None, text: str | None = None) -> Program:
    """Read, parse, resolve and type-check a program file (or `text` standing for it)."""
    path = Path(path)
    resolver = _Resolver(overrides or {})
    resolver.load(path.resolve() if text is None else path, text)
    main = str(path.resolve() if text is None else path)
    unknown = set(resolver.overrides) - resolver.used_overrides
    if unknown:
        raise AdderError(f"-D {sorted(unknown)[0]}: the program declares no const of that name"
                         + (f" (its consts: {', '.join(resolver.constants)})" if resolver.constants else ""))
    end = Span(main, max(1, len(resolver.sources[main].splitlines())), 1)
    if resolver.layout is None:
        raise AdderError("the program has no layout declaration", end, resolver.sources[main],
                         'add one, e.g. layout base 10, msb_first: "<bos>" a[N] "+" b[N] "=" => sum[N + 1] "<eos>"')
    resolver.check_token_literals()
    if resolver.output is None:
        raise AdderError("the program has no output statement", end, resolver.sources[main],
                         "end it with: output <an expression giving the next token>")
    output = resolver.output[0]
    builder = resolver.builder
    keep = _reachable([output] + [n for n, _ in resolver.globals.values()])
    nodes = [n for n in builder.nodes
             if n.id in keep and n.id not in builder.predicate_ids and n.type != "selector"]
    return Program(main, resolver.sources[main], resolver.sources, dict(resolver.constants), resolver.layout,
                   output, nodes, dict(resolver.encodings), resolver.meaning)


def _reachable(roots):
    seen, stack = set(), list(roots)
    while stack:
        node = stack.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        stack.extend(node.inputs())
        if isinstance(node, Select):
            stack.extend(t.predicate for t in node.terms)
        if isinstance(node, (Aggregate, SelectorWidth)):
            stack.append(node.selector)
    return seen


def source_digest(program: Program) -> str:
    """sha256 over every file the program read, in the order read."""
    digest = hashlib.sha256()
    for path, text in program.sources.items():
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()
