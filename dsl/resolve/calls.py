"""Calls of the built-in functions: select, the aggregates, shift, nearest, the layout facts."""
from __future__ import annotations

import difflib

import sympy

from dsl import ast
from dsl.core import Const, Indices, SelectTerm
from dsl.errors import Span
from dsl.limits import MAX_NUMBER_BITS
from dsl.resolve.names import (AGGREGATES, BUILTIN_FUNCTIONS, ELEMENTWISE_BUILTINS, LAYOUT_BUILTINS, SIGNATURES,
                               describe, show_value, type_of_value)
from dsl.semantics import EvaluationError, eval_predicate


class Calls:
    """The resolver's built-in calls (defs are called in dsl.resolve.scope)."""

    def expr_Call(self, e, scope):
        name = e.function
        if name in self.defs:
            return self.call_def(e, scope)
        if name not in BUILTIN_FUNCTIONS:
            if name in scope or name in self.globals:
                raise self.error(f"'{name}' is a value, not a function", _function_name_span(e),
                                 "only defs and built-in functions can be called; remove the (...)")
            if name in self.pending:
                raise self.used_too_early(name, e.span, "function")
            close = difflib.get_close_matches(name, list(self.defs) + sorted(BUILTIN_FUNCTIONS), n=1)
            raise self.error(f"unknown function '{name}'", _function_name_span(e),
                             f"did you mean '{close[0]}'?" if close else
                             "define it with def above this line, e.g. def f(x) = x + 1")
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
        shape = SIGNATURES.get(e.function, f"{e.function}(...)")
        # A stray keyword first: `select(a, b, k = q)` is a comparison written with '=', and is
        # better reported as that than as a select with two arguments.
        for key, value in e.kwargs:
            if key not in keywords:
                allowed = f"; it accepts {', '.join(keywords)}" if keywords else ""
                if key in ("k", "q") or e.function == "select":
                    hint = f"to compare, write '==': {key} == ..."
                else:
                    hint = f"call it as {shape}"
                raise self.error(f"{e.function}(...) has no argument '{key}'{allowed}",
                                 self.keyword_span(value.span, key), hint)
        if not count <= len(e.args) <= count + optional:
            expected = f"{count}" if not optional else f"{count} to {count + optional}"
            raise self.error(f"{e.function}(...) takes {expected} positional argument(s), got {len(e.args)}",
                             e.span, f"call it as {shape}")

    def call_select(self, e, scope):
        self.check_arity(e, 3, ())
        keys = self.sequence_arg(e.args[0], scope, "the keys")
        queries = self.sequence_arg(e.args[1], scope, "the queries")
        pred_scope = {"k": self.builder.var("k", keys.type, e.args[0].span),
                      "q": self.builder.var("q", queries.type, e.args[1].span)}
        predicate = self.predicate(e.args[2], pred_scope, scope)
        if predicate.type != "bool":
            raise self.error(f"a select predicate must be a boolean, but this is {describe(predicate.type)}",
                             e.args[2].span, "compare the key with the query, e.g. k == q - 1")
        if isinstance(predicate, Const) and predicate.value is False:
            raise self.error("this select can never select anything: its predicate is always false",
                             e.args[2].span, "compare the key with the query, e.g. k == q - 1")
        if isinstance(keys, Indices) and isinstance(queries, Indices) and self.never_on_positions(predicate):
            raise self.error("this select can never select anything: a query only sees keys at or before it "
                             "(k <= q), and there the predicate is never true", e.args[2].span,
                             "models are causal; select earlier positions, e.g. k == q - 1 or k < q")
        return self.builder.select((SelectTerm(keys, queries, predicate),), e.span)

    def never_on_positions(self, predicate) -> bool:
        """Whether a predicate over positions fails for every key at or before every query.

        Checked only where the layout is known and short enough to try every pair; longer ones are
        left to the compiler.
        """
        if self.layout is None or self.layout.n_ctx > 64:
            return False
        try:
            return not any(eval_predicate(predicate, sympy.Integer(k), sympy.Integer(q), self.layout.base)
                           for q in range(self.layout.n_ctx) for k in range(q + 1))
        except EvaluationError:
            return False

    def call_aggregate(self, e, scope):
        mode = AGGREGATES[e.function]
        keywords = ("default", "decay") if mode == "sum" else ("default",)
        self.check_arity(e, 2, keywords)
        selector = self.selector_arg(e.args[0], scope)
        value = self.sequence_arg(e.args[1], scope, "the values")
        kwargs = dict(e.kwargs)
        if mode in ("sum",) and value.type == "token":
            raise self.error("sum(...) needs numbers, but the values are tokens (categorical, where numeric "
                             "values are needed)", e.args[1].span, "sum their digit values instead: digit(tokens)")
        result_type = value.type
        if mode in ("mean", "sum") and value.type == "bool":
            result_type = "num"
        default = self.default_value(kwargs.get("default"), result_type, e, scope)
        decay = None
        if "decay" in kwargs:
            decay = self.constant(kwargs["decay"], scope, "decay")
            if type_of_value(decay) != "num" or decay <= 0:
                raise self.error(f"decay must be a positive number, got {show_value(decay)}", kwargs["decay"].span,
                                 "each key's value is divided by decay ** (q - k); use a number above 0, e.g. decay=2")
            self.check_decay(decay, kwargs["decay"].span)
        return self.builder.aggregate(mode, selector, value, default, decay, result_type, e.span)

    def check_decay(self, decay, span):
        """decay ** (q - k) is computed exactly for every distance in the context, and the value
        sets and weights then compute with those powers: refuse a decay whose largest power would
        be a number past MAX_NUMBER_BITS bits, the bound on every other number a program holds
        (under the looser meaning bound, compiling a 30,000-digit power ran for minutes)."""
        layout = self.layout
        if layout is None or not decay.is_Rational:
            return  # without a layout there is no context yet; the compiler sees every sum again
        bits = max(abs(decay.p).bit_length(), abs(decay.q).bit_length()) * layout.n_ctx
        if bits > MAX_NUMBER_BITS:
            raise self.error(f"decay {show_value(decay)} to the power of the context ({layout.n_ctx:,} positions) "
                             f"needs {bits:,} bits; at most {MAX_NUMBER_BITS:,} are supported", span,
                             "a decay is a small factor per position, e.g. decay=2")

    def default_value(self, expr, result_type, e, scope):
        if expr is None:
            if result_type == "token":
                example = self.layout.begin if self.layout else "<bos>"
                raise self.error(f"{e.function}(...) over tokens needs default=\"...\" for when nothing is selected",
                                 e.span, f'add a token of the vocabulary as the default, e.g. default="{example}"')
            return False if result_type == "bool" else sympy.Integer(0)
        value = self.constant(expr, scope, "default")
        kind = type_of_value(value)
        if kind != result_type and not (kind in ("num", "bool") and result_type in ("num", "bool")):
            example = '"' + (self.layout.begin if self.layout else "<bos>") + '"' if result_type == "token" else "0"
            raise self.error(f"the default is {describe(kind)}, but the values are {describe(result_type)}",
                             expr.span, f"give a default of the same kind as the values, e.g. default={example}")
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
                raise self.error("nearest(...) takes its candidates as a map", table.span,
                                 f"write them as {{\"token\": value, ...}}, e.g. {SIGNATURES['nearest']}")
            candidates = []
            for token, value_expr in table.items:
                self.token_literals.append((token, table.span))
                value = self.constant(value_expr, scope, "a candidate's value")
                if type_of_value(value) != "num":
                    raise self.error(f"a candidate's value must be a number, got {show_value(value)}", value_expr.span,
                                     "the readout picks the token whose number is nearest the value")
                candidates.append((token, value))
            candidates = tuple(candidates)
        x = self.sequence_arg(e.args[0], scope, "the value")
        if x.type not in ("num", "bool"):
            raise self.error(f"nearest(...) reads a number, but this is {describe(x.type)}", e.args[0].span,
                             "a token can be output as it is, without nearest(...)")
        return self.elementwise("nearest", (x, self.builder.const(candidates, e.span)), e.span,
                                (e.args[0].span, e.span))

    def call_shift(self, e, scope):
        """shift(values, by): the value `by` positions earlier; a select on indices at a fixed offset."""
        self.check_arity(e, 2, ("default",))
        value = self.sequence_arg(e.args[0], scope, "the values")
        by = self.constant(e.args[1], scope, "the shift")
        if type_of_value(by) != "num" or not by.is_integer:
            raise self.error(f"the shift must be a whole number, got {show_value(by)}", e.args[1].span,
                             "shift by a whole number of positions; use // to divide, e.g. N // 2")
        if by < 0:
            raise self.error(f"shift by {by} would read {-by} position(s) ahead, which a model cannot see",
                             e.args[1].span, "models are causal: a position only sees itself and the positions "
                                             "before it; shift by 0 or more")
        if self.layout is not None and by >= self.layout.n_ctx:
            raise self.error(f"shift by {by} reaches before the start of every sequence (a model sees "
                             f"{self.layout.n_ctx} positions), so it would always give the default",
                             e.args[1].span, f"shift by less than {self.layout.n_ctx}")
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
            raise self.error(f"{e.function}(...) takes a layout field name, one of {list(layout.fields)}", arg.span,
                             f"name a field of the layout, e.g. {e.function}({next(iter(layout.fields))})")
        field = layout.fields[arg.name]
        value = {"start": field.start, "end": field.end, "width": field.width}[e.function]
        return self.builder.const(sympy.Integer(value), e.span)


def _function_name_span(e: ast.Call) -> Span:
    """The name of a called function: where a wrong name is written, not the whole call."""
    s = e.span
    return Span(s.file, s.line, s.column, s.line, s.column + len(e.function))
