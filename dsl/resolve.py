"""Syntax tree to core program: constants, lets, defs, imports and the layout, with type checks.

Defs are expanded at every call (there is no run-time function call in a transformer); constants
are folded; `-D NAME=VALUE` overrides a declared constant. Every error names file, line and column.
"""
from __future__ import annotations

import bisect
import difflib
import hashlib
import itertools
import math
import posixpath
import re
from pathlib import Path
from typing import Any

import sympy

from dsl import ast
from dsl.core import (Aggregate, Const, Indices, Map, Node, Program, Select, SelectorWidth, SelectTerm,
                      Tokens, Var)
from dsl.errors import AdderError, Span, display_path
from dsl import meaning as meaning_rules
from dsl.layout import Layout, Meaning, build_layout
from dsl.limits import (MAX_CHAIN, MAX_DEF_DEPTH, MAX_EXPANSION, MAX_MEANING_BITS, MAX_NUMBER_BITS,
                        MAX_NUMBER_DIGITS, MAX_OPERATIONS, MAX_POSITIONS, digits_in, show_count,
                        show_number)
from dsl.parser import parse
from dsl.semantics import EvaluationError, apply_op, eval_predicate, num

BINARY_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "//": "floordiv", "%": "mod", "**": "pow",
              "and": "and", "or": "or"}
COMPARE_OPS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
AGGREGATES = {"mean": "mean", "aggregate": "mean", "sum": "sum", "first": "first", "last": "last"}
ELEMENTWISE_BUILTINS = {"digit": 1, "digit_token": 1, "is_digit": 1, "min": 2, "max": 2, "abs": 1}
LAYOUT_BUILTINS = {"start", "end", "width"}
BUILTIN_FUNCTIONS = (set(AGGREGATES) | set(ELEMENTWISE_BUILTINS) | LAYOUT_BUILTINS
                     | {"select", "selector_width", "shift", "nearest", "nearest_digit"})
# Every model file is a zip archive (torch.save); a program is text and never starts with these bytes.
MODEL_FILE_MAGIC = b"PK\x03\x04"
NUMBER_HINT = ("a program's constants are sizes, offsets and factors; keep them smaller (a very large one "
               "is also beyond what a float weight can hold)")
MEANING_HINT = ("a meaning states the answer from the operands' values, with numbers, consts, + - * // % **, "
                "comparisons, conditionals, min, max and abs, e.g. meaning sum = a + b")
# How each built-in is called, for hints that show the right shape of a call.
SIGNATURES = {
    "select": "select(keys, queries, predicate)", "selector_width": "selector_width(selector)",
    "mean": "mean(selector, values, default=...)", "aggregate": "aggregate(selector, values, default=...)",
    "sum": "sum(selector, values, decay=...)", "first": "first(selector, values, default=...)",
    "last": "last(selector, values, default=...)", "shift": "shift(values, positions, default=...)",
    "digit": "digit(tokens)", "digit_token": "digit_token(number)", "is_digit": "is_digit(tokens)",
    "min": "min(x, y)", "max": "max(x, y)", "abs": "abs(x)", "start": "start(field)", "end": "end(field)",
    "width": "width(field)", "nearest": 'nearest(value, {"0": 0, "1": 1})', "nearest_digit": "nearest_digit(value)",
}
# Operators as the user wrote them, for messages about an operation's operands.
OP_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%", "pow": "**",
              "neg": "-", "abs": "abs(...)", "min": "min(...)", "max": "max(...)", "and": "and", "or": "or",
              "not": "not", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


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
        # Sources held in memory (a model file's), by plain relative name: imports resolve among
        # them, and a name that is not there is an error, never a read from disk.
        self.embedded: dict[str, str] | None = None
        self.layout: Layout | None = None
        self.meaning: Meaning | None = None
        self.output: tuple[Node, Span] | None = None
        self.import_stack: list[str] = []
        self.def_stack: list[str] = []
        self.token_literals: list[tuple[str, Span]] = []
        # Declarations read but not resolved yet (the rest of each file being loaded), so a name
        # used too early is reported as used before its definition, or as a cycle, not as unknown.
        self.pending: dict[str, ast.Statement] = {}
        self.pending_layout: ast.LayoutDecl | None = None
        self.current: ast.Statement | None = None  # the top-level const or let being resolved
        self.layout_span: Span | None = None
        self.answer_span: Span | None = None
        self.encoding_spans: dict[int, Span] = {}
        self.declarations: dict[str, ast.Statement] = {}
        self.work = 0  # expressions visited, against MAX_EXPANSION
        # (def name, argument node ids) -> the expanded body: a def is a pure function of its
        # arguments, so a second call with the same ones is the same node, and is not expanded again
        self.expanded: dict[tuple, Node] = {}
        self._line_starts: dict[str, list[int]] = {}

    # ----- errors
    def error(self, message, span, hint=None):
        source = self.sources.get(span.file) if span else None
        return AdderError(message, span, source, hint)

    def name_span(self, st: ast.Statement, name: str, after: str = "", nth: int = 1) -> Span:
        """Where `name` is written in declaration `st` (its `nth` time after the text `after`), so a
        caret marks the name, not the whole statement."""
        source = self.sources.get(st.span.file)
        if source is None:
            return st.span
        starts = self.line_starts(st.span.file)
        offset = starts[st.span.line - 1] + st.span.column - 1
        if after:
            offset = max(offset, source.find(after, offset))
        matches = re.compile(rf"\b{re.escape(name)}\b").finditer(source, offset)
        match = next((m for i, m in enumerate(matches, 1) if i == nth), None)
        if match is None:
            return st.span
        line = bisect.bisect_right(starts, match.start())
        column = match.start() - starts[line - 1] + 1
        return Span(st.span.file, line, column, line, column + len(name))

    def line_starts(self, file: str) -> list[int]:
        """Offsets where each line of `file` begins, computed once: a span is found in time of its line."""
        if file not in self._line_starts:
            source = self.sources[file]
            self._line_starts[file] = [0] + [m.end() for m in re.finditer("\n", source)]
        return self._line_starts[file]

    # ----- files
    def load(self, path: Path, text: str | None = None, span: Span | None = None):
        key = str(path)
        if key in self.import_stack:
            chain = " -> ".join(display_path(f) for f in self.import_stack + [key])
            raise self.error(f"import cycle: {chain}", span,
                             "remove this import; put what both files need in a third file that both import")
        if key in self.sources:
            return  # already imported: importing twice is harmless
        if text is None and self.embedded is not None:
            if key not in self.embedded:
                raise self.error(f"cannot import {key}: the model file embeds no source of that name", span,
                                 "a program embedded in a model file imports only the sources embedded with it")
            text = self.embedded[key]
        elif text is None:
            text = self.read(path, span)
        self.sources[key] = text
        module = parse(text, key)
        self.import_stack.append(key)
        for statement in module.statements:
            if isinstance(statement, (ast.ConstDecl, ast.LetDecl, ast.DefDecl)):
                self.pending.setdefault(statement.name, statement)
            elif isinstance(statement, ast.LayoutDecl) and self.pending_layout is None:
                self.pending_layout = statement
        for statement in module.statements:
            self.statement(statement, path)
            if getattr(statement, "name", None) is not None and self.pending.get(statement.name) is statement:
                del self.pending[statement.name]
        self.import_stack.pop()

    def import_path(self, st: ast.ImportDecl, path: Path) -> Path:
        """The file an import names: relative to the importing file's folder. Among embedded
        sources the name is only a key: joined without the disk, and kept inside their folder."""
        if self.embedded is None:
            return (path.parent / st.path).resolve() if path.name else Path(st.path)
        name = posixpath.normpath(posixpath.join(posixpath.dirname(str(path)), st.path))
        if posixpath.isabs(st.path) or "\\" in st.path or name == ".." or name.startswith("../"):
            raise self.error(f"cannot import {st.path!r}: a program embedded in a model file imports only "
                             "the sources embedded with it, by a relative name", st.span)
        return Path(name)

    def read(self, path: Path, span: Span | None) -> str:
        """A program file's text; a file that is not a program (a model file, bytes that are not
        UTF-8) is reported as such, at the import that names it when there is one."""
        key = str(path)
        def fail(message, hint):
            if span is None:
                return AdderError(message, hint=hint)
            return self.error(message, span, hint)
        try:
            data = path.read_bytes()
        except OSError as err:
            if span is None:
                raise AdderError(f"cannot read program {key}: {err.strerror}") from None
            raise self.error(f"cannot import {display_path(key)}: {err.strerror}", span,
                             "an import path is relative to the folder of the file that imports it") from None
        if data.startswith(MODEL_FILE_MAGIC):
            raise fail(f"{display_path(key)} is a model file (a zip archive), not a program",
                       f"to use a model: adderc run {display_path(key)} PROMPT..., or adderc verify "
                       f"{display_path(key)}; to compile, name a .rasp program")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            column = len(data[data.rfind(b"\n", 0, err.start) + 1:err.start].decode("utf-8", "replace")) + 1
            message = f"{display_path(key)} is not UTF-8 text: byte 0x{data[err.start]:02x} cannot be read"
            if span is not None:
                raise self.error(f"{message} (at line {line}, column {column} of that file)", span,
                                 "save the file as UTF-8; a program is text") from None
            raise AdderError(message, Span(key, line, column), data.decode("utf-8", "replace"),
                             "save the file as UTF-8; a program is text") from None
        # as text mode reads it: every line ending becomes "\n", and a leading byte-order mark goes
        return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")

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
        elif isinstance(st, ast.OutputDecl):
            if self.output is not None:
                raise self.error("the program already has an output", st.span,
                                 f"a program has one output; the first one is at {self.output[1]}")
            node = self.expr(st.value, {})
            if node.type != "token":
                raise self.error(f"the output must be a token, but this is {describe(node.type)}", st.value.span,
                                 "turn a digit value into its token with digit_token(...)")
            self.output = (node, st.span)

    def define_name(self, name, st):
        self.declarations.setdefault(name, st)
        if name in self.globals or name in self.defs:
            previous = self.globals[name][1] if name in self.globals else self.defs[name].span
            raise self.error(f"'{name}' is already defined", self.name_span(st, name),
                             f"choose another name; the first definition is at {previous}")
        if name in BUILTIN_FUNCTIONS or name in {"tokens", "indices", "k", "q"}:
            raise self.error(f"'{name}' is a built-in name and cannot be redefined", self.name_span(st, name),
                             f"choose another name, e.g. '{name}_'")

    def used_too_early(self, name, span, what="name"):
        """The error for a name declared further on: a cycle when its definition leads back here."""
        st = self.pending[name]
        where = self.name_span(st, name)
        current = self.current.name if self.current is not None else None
        if current is not None and st is self.current:
            return self.error(f"cyclic definition: '{name}' is defined in terms of itself", span,
                              "a value cannot depend on itself; to read its value at earlier positions, "
                              "build it from other values and use shift(...) or a select")
        chain = self._path_to(name, current, {name}) if current is not None else None
        if chain is not None:
            cycle = " -> ".join([current, name] + chain)
            return self.error(f"cyclic definition: {cycle}", span,
                              f"a value cannot depend on itself; '{name}' is defined at {where}: "
                              "compute one of them from earlier values only")
        return self.error(f"{what} '{name}' is used before its definition at {where}", span,
                          f"statements are read from top to bottom: move the definition of '{name}' above this line")

    def _path_to(self, name, target, seen) -> list[str] | None:
        """The names through which pending declaration `name` uses `target`, ending with it, or None.

        A depth-first search with its own stack: a chain of thousands of declarations is no deeper
        for it than a chain of two."""
        stack = [iter(_names_used(self.pending[name]))]
        path = [name]
        while stack:
            used = next(stack[-1], None)
            if used is None:
                stack.pop()
                path.pop()
            elif used == target:
                return path[1:] + [target]
            elif used in self.pending and used not in seen:
                seen.add(used)
                path.append(used)
                stack.append(iter(_names_used(self.pending[used])))
        return None

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

    # ----- layout and meaning
    def layout_decl(self, st: ast.LayoutDecl):
        if self.layout is not None:
            raise self.error("the program already has a layout", st.span,
                             f"a program has one layout; the first one is at {self.layout_span}")
        base = 10 if st.base is None else self.int_constant(st.base, "the base")
        entries, positions = [], 0
        for item in st.prompt + st.answer:
            if isinstance(item, ast.LayoutLiteral):
                entries.append(("literal", item.span, item.token))
                positions += 1
            else:
                width = self.int_constant(item.width, "a field width")
                positions += max(width, 0)
                if positions > MAX_POSITIONS:
                    self.too_many_positions(item, width, positions)
                entries.append(("field", item.span, item.name, width))
        n_prompt = len(st.prompt)
        self.layout = build_layout(base, st.order or "msb_first", entries[:n_prompt], entries[n_prompt:],
                                   st.span, self.sources.get(st.span.file),
                                   base_span=st.base.span if st.base is not None else None)
        self.layout_span = st.span
        self.answer_span = st.answer[0].span

    def too_many_positions(self, item: ast.LayoutField, width: int, positions: int):
        """The error for a layout longer than MAX_POSITIONS, at the field that takes it past the limit."""
        source = self.sources.get(item.span.file, "")
        w = item.width.span
        written = source.splitlines()[w.line - 1][w.column - 1:w.end_column - 1] \
            if source and w.end_line == w.line else ""
        size = show_number(width)
        what = f"{written} = {size}" if written and written != size else size
        raise self.error(f"field '{item.name}' is {what} digits wide: too large, a sequence has at most "
                         f"{MAX_POSITIONS:,} positions (this layout has {show_count(positions)} up to here)",
                         item.span, "choose smaller widths; every width adds its digits to the positions a model "
                                    "reads and writes")

    def meaning_decl(self, st: ast.MeaningDecl):
        layout = self.require_layout(st.span)
        if st.field != layout.answer.name:
            raise self.error(f"a meaning defines the answer field '{layout.answer.name}', not '{st.field}'",
                             self.name_span(st, st.field), f"write: meaning {layout.answer.name} = ...")
        operand_names = {f.name for f in layout.operands}
        self.check_meaning_names(st.value, operand_names)
        expression = st.value
        source = self.sources.get(st.span.file, "")
        text = source.splitlines()[expression.span.line - 1][expression.span.column - 1:expression.span.end_column - 1] \
            if source and expression.span.line == expression.span.end_line else "<expression>"
        problem = meaning_rules.check(expression)
        if problem:
            raise self.error(f"a meaning is an integer expression over the operands; it cannot contain {problem}",
                             expression.span, MEANING_HINT)
        constants = dict(self.constants)
        operand_bits = {f.name: (layout.base ** f.width - 1).bit_length() for f in layout.operands}
        try:
            meaning_rules.bit_bound(expression, operand_bits, constants, MAX_MEANING_BITS)
        except meaning_rules.TooLarge as err:
            raise self.error(f"this part of the meaning can need {show_count(err.bits)} bits for the largest "
                             f"operands; at most {MAX_MEANING_BITS:,} are supported", err.expression.span,
                             "a meaning computes the answer, which has at most as many digits as the answer "
                             "field: use smaller powers and products") from None
        self.meaning = Meaning(st.field, text, expression, constants)
        self.check_answer_width(st)

    def check_answer_width(self, st: ast.MeaningDecl):
        """The answer field must hold every answer: try the meaning where operands are smallest and largest.

        A corner that does not fit is a certain error, with an input to show for it; answers that
        overflow only between corners are left to `adderc verify`.
        """
        layout, meaning = self.layout, self.meaning
        operands, answer = layout.operands, layout.answer
        if len(operands) > 8 or _has_variable_power(st.value, {f.name for f in operands}):
            return  # too many corners, or a power of an operand, too large to evaluate
        limit = layout.base ** answer.width
        for corner in itertools.product(*[(0, layout.base ** f.width - 1) for f in operands]):
            values = dict(zip((f.name for f in operands), corner))
            try:
                value = meaning.expected(values)
            except (ValueError, ArithmeticError):
                continue  # no answer at this input: the verifier reports it
            at = ", ".join(f"{name} = {show_number(v)}" for name, v in values.items())
            if value < 0:
                raise self.error(f"the meaning of '{answer.name}' can be negative ({show_number(value)} at {at}), but an answer "
                                 "field holds digits", st.value.span,
                                 "add an offset that keeps it at 0 or more, as examples/sub.rasp does with "
                                 "a - b + 10 ** N")
            if value >= limit:
                needed = _digit_count(value, layout.base)
                error = self.error(f"the layout's widths do not add up: '{answer.name}' has {answer.width} "
                                   f"digit(s), but its meaning can be {show_number(value)} ({at}), which needs "
                                   f"{needed}",
                                   self.answer_span,
                                   f"make '{answer.name}' {needed} digits wide, or change the meaning")
                error.notes.append(f"the meaning is at {st.span}: meaning {st.field} = {meaning.text}")
                raise error

    def check_meaning_names(self, e, operand_names):
        if isinstance(e, ast.Name):
            if e.name not in operand_names and e.name not in self.constants:
                raise self.error(f"a meaning may use operand fields {sorted(operand_names)} and constants; "
                                 f"'{e.name}' is neither", e.span, MEANING_HINT)
        for child in _children(e):
            self.check_meaning_names(child, operand_names)

    def require_layout(self, span) -> Layout:
        if self.layout is None:
            if self.pending_layout is not None:
                hint = f"move the layout (at {self.pending_layout.span}) above this line"
            else:
                hint = 'declare it first, e.g. layout base 10, msb_first: "<bos>" a[N] "+" b[N] "=" => sum[N + 1] "<eos>"'
            raise self.error("this needs the layout, which is not declared yet", span, hint)
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
            raise self.error(f"{what} must be a whole number, got {_show(value)}", e.span,
                             "use // to divide whole numbers, e.g. N // 2" if type_of_value(value) == "num"
                             else "write a number, or a const that holds one")
        return int(value)

    # ----- expressions
    def expr(self, e: ast.Expr, scope: dict) -> Node:
        self.work += 1
        if self.work > MAX_EXPANSION:
            inside = f" (expanding {' -> '.join(self.def_stack)})" if self.def_stack else ""
            raise self.error(f"the program grows past {MAX_EXPANSION:,} expressions when its defs are written "
                             f"out at every call{inside}", e.span,
                             "defs are expanded where they are called: a def that calls another def twice, "
                             "level after level, doubles at each level; compute shared values once with let")
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
            shape = SIGNATURES.get(e.name) or f"{e.name}({', '.join(self.defs[e.name].params)})"
            raise self.error(f"'{e.name}' is a function; call it with (...)", e.span, f"for example {shape}")
        if e.name in ("k", "q"):
            raise self.error(f"'{e.name}' only has a meaning inside a select predicate", e.span,
                             "k is the key's value and q the query's, as in select(indices, indices, k == q - 1)")
        if e.name in self.pending:
            raise self.used_too_early(e.name, e.span)
        known = list(scope) + list(self.globals) + ["tokens", "indices"]
        close = difflib.get_close_matches(e.name, known, n=1)
        raise self.error(f"unknown name '{e.name}'", e.span, f"did you mean '{close[0]}'?" if close else
                         "define it with let or const above this line")

    def elementwise(self, op, args, span, arg_spans=None):
        """Type-check and build an elementwise op, folding it when every argument is constant.

        Errors point at `arg_spans` (where each argument is written here): shared nodes keep the
        span of their first use, which may be elsewhere.
        """
        type_name = self.result_type(op, args, span, arg_spans or tuple(span for _ in args))
        if all(isinstance(a, Const) for a in args):
            if op == "pow":
                self.check_power(args[0].value, args[1].value, span)
            try:
                value = apply_op(op, tuple(a.value for a in args), self.layout.base if self.layout else 10)
            except EvaluationError as err:
                raise self.error(f"{err}, in a constant expression", span, self.constant_hint(op, args)) from None
            self.check_constant(value, span)
            return self.builder.const(value, span)
        return self.builder.map(op, args, type_name, span)

    def check_power(self, base, exponent, span):
        """Refuse a constant power too large to compute, from its size alone: 2 ** 100000000 would
        take minutes to build before any other check could see it."""
        base, exponent = num(base), num(exponent)
        if not (base.is_Rational and exponent.is_Rational):
            return
        bits = max(abs(base.p).bit_length(), abs(base.q).bit_length()) - 1  # log2 of the larger part, rounded down
        if bits >= 1 and abs(exponent) * bits > MAX_NUMBER_BITS:
            digits = int(abs(exponent) * bits / 3.33)
            raise self.error(f"{show_number(base)} ** {show_number(exponent)} has over {digits:,} digits; a "
                             f"constant has at most {MAX_NUMBER_DIGITS:,}", span, NUMBER_HINT)

    def check_constant(self, value, span):
        """Refuse a folded constant past MAX_NUMBER_DIGITS, so that repeated products cannot grow
        one without bound (each step is checked, so none is ever much larger than the limit)."""
        if type_of_value(value) != "num":
            return
        if not value.is_Rational:
            raise self.error(f"this constant is {value}, which is not a rational number", span,
                             "constants are whole numbers and fractions; a root such as 2 ** (1/2) is neither")
        # the bit length rules out almost every constant before counting digits exactly
        if max(abs(value.p).bit_length(), abs(value.q).bit_length()) > MAX_NUMBER_BITS - 8 and \
                max(digits_in(value.p), digits_in(value.q)) > MAX_NUMBER_DIGITS:
            raise self.error(f"this constant is {show_number(value)}; a constant has at most "
                             f"{MAX_NUMBER_DIGITS:,} digits", span, NUMBER_HINT)

    def constant_hint(self, op, args):
        """What to change when folding constants fails; the values come from consts, maybe set by -D."""
        if op == "digit_token":
            base = self.layout.base if self.layout else 10
            return f"digit_token(...) takes a whole number from 0 to {base - 1}"
        if op in ("div", "floordiv", "mod"):
            return "every argument here is known when compiling; change the consts so the divisor is not 0"
        if op == "nearest":
            return "give the candidates values that are not equally near this one"
        return "every argument here is known when compiling; change the consts it uses"

    def result_type(self, op, args, span, arg_spans):
        types = [a.type for a in args]
        args = [_At(a, where) for a, where in zip(args, arg_spans)]
        if "selector" in types:
            raise self.error("a selector cannot be used as a value here",
                             next(a.span for a in args if a.type == "selector"),
                             "aggregate it first, e.g. mean(sel, values) or first(sel, values)")
        numeric = {"num", "bool"}
        token_to_number = "turn a digit token into its value with digit(...)"
        if op in ("add", "sub", "mul", "div", "floordiv", "mod", "pow", "neg", "abs", "min", "max"):
            for a in args:
                if a.type == "token":
                    raise self.error(f"'{OP_SYMBOLS[op]}' needs numbers, but this is a token (a categorical value, "
                                     "where a numeric one is needed)", a.span, token_to_number)
                if a.type not in numeric:
                    raise self.error(f"'{OP_SYMBOLS[op]}' needs numbers, but this is {describe(a.type)}", a.span,
                                     "only numbers and booleans take part in arithmetic")
            return "num"
        if op in ("lt", "le", "gt", "ge"):
            for a in args:
                if a.type not in numeric:
                    raise self.error(f"'{OP_SYMBOLS[op]}' orders numbers, but this is {describe(a.type)}", a.span,
                                     f"tokens have no order: compare them with == or !=, or {token_to_number}")
            return "bool"
        if op in ("eq", "ne"):
            if (types[0] == "token") != (types[1] == "token"):
                raise self.error(f"cannot compare {describe(types[0])} with {describe(types[1])}", span,
                                 f'compare a token with a token string such as "+", or {token_to_number}')
            return "bool"
        if op in ("and", "or", "not"):
            for a in args:
                if a.type != "bool":
                    raise self.error(f"'{op}' needs booleans, but this is {describe(a.type)}", a.span,
                                     "compare it, e.g. x != 0" if a.type != "token" else 'compare it, e.g. t == "+"')
            return "bool"
        if op == "if_else":
            if types[0] != "bool":
                raise self.error(f"a condition must be a boolean, but this is {describe(types[0])}", args[0].span,
                                 "compare it, e.g. x != 0" if types[0] != "token" else 'compare it, e.g. t == "+"')
            if types[1] == types[2]:
                return types[1]
            if set(types[1:]) <= numeric:
                return "num"
            raise self.error(f"the branches of a conditional have different types: "
                             f"{describe(types[1])} and {describe(types[2])}", span,
                             "make both tokens (digit_token(x) turns a digit value into its token) or both numbers")
        if op in ("digit", "is_digit"):
            if types[0] != "token":
                raise self.error(f"{op}(...) takes a token, but this is {describe(types[0])}", args[0].span,
                                 f"pass it tokens, or a value aggregated from them: {SIGNATURES[op]}")
            return "num" if op == "digit" else "bool"
        if op == "nearest":
            return "token"
        if op == "digit_token":
            if types[0] not in numeric:
                raise self.error(f"digit_token(...) takes a number, but this is {describe(types[0])}",
                                 args[0].span, "a token needs no conversion; use it as it is")
            return "token"
        raise AssertionError(op)  # pragma: no cover

    def expr_BinOp(self, e, scope):
        left, right = self.expr(e.left, scope), self.expr(e.right, scope)
        if e.op == "&":
            for side, node, written in (("left", left, e.left), ("right", right, e.right)):
                if node.type != "selector":
                    raise self.error(f"'&' combines selectors, but its {side} side is {describe(node.type)}",
                                     written.span, "use 'and' for booleans")
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

    def keyword_span(self, value_span: Span, key: str) -> Span:
        """Where `key=` is written before the value it names (the AST keeps only the value's span)."""
        lines = self.sources.get(value_span.file, "").splitlines()
        if 1 <= value_span.line <= len(lines):
            column = lines[value_span.line - 1].rfind(key, 0, value_span.column - 1)
            if column >= 0:
                return Span(value_span.file, value_span.line, column + 1, value_span.line, column + 1 + len(key))
        return value_span

    def selector_arg(self, arg, scope) -> Select:
        node = self.expr(arg, scope)
        if node.type != "selector":
            raise self.error(f"expected a selector, but this is {describe(node.type)}", arg.span,
                             "build one with select(keys, queries, predicate)")
        return node

    def sequence_arg(self, arg, scope, what) -> Node:
        node = self.expr(arg, scope)
        if node.type == "selector":
            raise self.error(f"{what} must be a sequence, not a selector", arg.span,
                             "a selector only says which keys each query reads; aggregate it to get values, "
                             "e.g. first(sel, values)")
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
                                                       self.predicate(e.right, pred_scope, scope)), e.span,
                                    (e.left.span, e.right.span))
        if isinstance(e, ast.UnaryOp):
            return self.elementwise(e.op, (self.predicate(e.operand, pred_scope, scope),), e.span, (e.operand.span,))
        if isinstance(e, ast.Compare):
            operands = [self.predicate(x, pred_scope, scope) for x in e.operands]
            result = None
            for i, op in enumerate(e.ops):
                part = self.elementwise(COMPARE_OPS[op], (operands[i], operands[i + 1]), e.span,
                                        (e.operands[i].span, e.operands[i + 1].span))
                result = part if result is None else self.elementwise("and", (result, part), e.span)
            return result
        if isinstance(e, ast.IfElse):
            return self.elementwise("if_else", (self.predicate(e.condition, pred_scope, scope),
                                                self.predicate(e.then, pred_scope, scope),
                                                self.predicate(e.otherwise, pred_scope, scope)), e.span,
                                    (e.condition.span, e.then.span, e.otherwise.span))
        if isinstance(e, ast.Call) and e.function in ELEMENTWISE_BUILTINS:
            self.check_arity(e, ELEMENTWISE_BUILTINS[e.function], ())
            return self.elementwise(e.function, tuple(self.predicate(a, pred_scope, scope) for a in e.args), e.span,
                                    tuple(a.span for a in e.args))
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
                raise self.error(f"decay must be a positive number, got {_show(decay)}", kwargs["decay"].span,
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
            raise self.error(f"decay {_show(decay)} to the power of the context ({layout.n_ctx:,} positions) "
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
                    raise self.error(f"a candidate's value must be a number, got {_show(value)}", value_expr.span,
                                     "the readout picks the token whose number is nearest the value")
                candidates.append((token, value))
            candidates = tuple(candidates)
        x = self.sequence_arg(e.args[0], scope, "the value")
        if x.type not in ("num", "bool"):
            raise self.error(f"nearest(...) reads a number, but this is {describe(x.type)}", e.args[0].span,
                             "a token can be output as it is, without nearest(...)")
        return self.elementwise("nearest", (x, self.builder.const(candidates, e.span)), e.span,
                                (e.args[0].span, e.span))

    def expr_Mapping(self, e, scope):
        raise self.error("a map of candidates only goes in nearest(value, {...})", e.span,
                         f"for example {SIGNATURES['nearest']}")

    def call_shift(self, e, scope):
        """shift(values, by): the value `by` positions earlier; a select on indices at a fixed offset."""
        self.check_arity(e, 2, ("default",))
        value = self.sequence_arg(e.args[0], scope, "the values")
        by = self.constant(e.args[1], scope, "the shift")
        if type_of_value(by) != "num" or not by.is_integer:
            raise self.error(f"the shift must be a whole number, got {_show(by)}", e.args[1].span,
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

    def call_def(self, e, scope):
        definition = self.defs[e.function]
        shape = f"{e.function}({', '.join(definition.params)})"
        if e.kwargs:
            key, value = e.kwargs[0]
            raise self.error(f"{e.function}(...) takes positional arguments only", self.keyword_span(value.span, key),
                             f"pass them in order: {shape}, defined at {definition.span}")
        if len(e.args) != len(definition.params):
            raise self.error(f"{e.function}(...) takes {len(definition.params)} argument(s), got {len(e.args)}",
                             e.span, f"call it as {shape}; it is defined at {definition.span}")
        if e.function in self.def_stack:
            chain = self.def_stack[self.def_stack.index(e.function):]
            through = f" ({' -> '.join(chain + [e.function])})" if len(chain) > 1 else ""
            raise self.error(f"'{e.function}' calls itself{through}; defs are expanded at compile time and "
                             "cannot recurse", e.span,
                             "write the repetition out, or compute it over positions with a select or sum(...)")
        if len(self.def_stack) >= MAX_DEF_DEPTH:
            raise self.error(f"defs call each other {len(self.def_stack) + 1} deep here ({self.def_stack[0]} -> "
                             f"... -> {self.def_stack[-1]} -> {e.function}); at most {MAX_DEF_DEPTH} calls can be "
                             "open at once", e.span, "call fewer defs inside one another: give intermediate "
                                                     "results names with let")
        local = {p: self.expr(a, scope) for p, a in zip(definition.params, e.args)}
        key = (e.function, tuple(local[p].id for p in definition.params))
        if key in self.expanded:
            return self.expanded[key]
        self.def_stack.append(e.function)
        try:
            for let in definition.lets:
                if let.name in local:
                    raise self.error(f"'{let.name}' is already defined in this def", self.name_span(let, let.name),
                                     "parameters and lets of a def share one scope; choose another name")
                local[let.name] = self.let(let, local)
            result = self.expr(definition.body, local)
        except AdderError as err:
            # The body is the same at every call; which call went wrong is what the user needs.
            if err.span is not None and err.span != e.span and len(err.notes) < 4:
                err.notes.append(f"in the call {e.function}(...) at {e.span}")
            raise
        self.def_stack.pop()
        self.expanded[key] = result
        return result


class _At:
    """A node seen at one particular use, so type errors point where the user wrote it."""

    def __init__(self, node, span):
        self.node, self.span, self.type = node, span, node.type


def _function_name_span(e: ast.Call) -> Span:
    """The name of a called function: where a wrong name is written, not the whole call."""
    s = e.span
    return Span(s.file, s.line, s.column, s.line, s.column + len(e.function))


def _show(value) -> str:
    if isinstance(value, str):
        return repr(value)
    return show_number(value) if type_of_value(value) == "num" and getattr(value, "is_Rational", False) else str(value)


def _digit_count(value: int, base: int) -> int:
    """Base-`base` digits of a whole number >= 0, from its size (dividing digit by digit is quadratic)."""
    count = max(1, int(value.bit_length() / math.log2(base)) - 1)
    while base ** count <= value:
        count += 1
    return count


def _has_variable_power(e, operands) -> bool:
    """Whether `e` raises something to a power that depends on an operand (too large to try)."""
    if isinstance(e, ast.BinOp) and e.op == "**" and _mentions(e.right, operands):
        return True
    return any(_has_variable_power(child, operands) for child in _children(e))


def _mentions(e, names) -> bool:
    return (isinstance(e, ast.Name) and e.name in names) or any(_mentions(c, names) for c in _children(e))


def _names_used(st) -> list[str]:
    """The global names (values, consts and functions) a declaration refers to, in order."""
    if isinstance(st, ast.DefDecl):
        local = set(st.params) | {let.name for let in st.lets}
        exprs = [let.value for let in st.lets] + [st.body]
    else:
        local, exprs = set(), [st.value]
    found = []
    stack = list(reversed(exprs))
    while stack:
        e = stack.pop()
        if isinstance(e, ast.Name) and e.name not in local:
            found.append(e.name)
        elif isinstance(e, ast.Call) and e.function not in local:
            found.append(e.function)
        if isinstance(e, ast.Mapping):
            stack.extend(reversed([v for _, v in e.items]))
        stack.extend(reversed(_children(e)))
    return found


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


def load_program(path: str | Path, overrides: dict[str, int] | None = None, text: str | None = None,
                 embedded: dict[str, str] | None = None) -> Program:
    """Read, parse, resolve and type-check a program file (or `text` standing for it). With
    `embedded` (plain relative name -> source), `path` is one of those names, and the program and
    its imports come from there alone: nothing is read from disk."""
    path = Path(path)
    resolver = _Resolver(overrides or {})
    if embedded is not None:
        resolver.embedded, text = embedded, embedded[str(path)]
    try:
        resolver.load(path.resolve() if text is None else path, text)
    except AdderError as err:
        _note_overrides(err, resolver)
        raise
    main = str(path.resolve() if text is None else path)
    unknown = set(resolver.overrides) - resolver.used_overrides
    if unknown:
        name = sorted(unknown)[0]
        if name in resolver.declarations:
            st = resolver.declarations[name]
            kind = "def" if isinstance(st, ast.DefDecl) else "let"
            raise resolver.error(f"-D {name}: the program declares no const of that name; '{name}' is a {kind}",
                                 resolver.name_span(st, name), "-D overrides consts only" + (
                                     f"; the consts are {', '.join(resolver.constants)}" if resolver.constants else ""))
        raise AdderError(f"-D {name}: the program declares no const of that name"
                         + (f" (its consts: {', '.join(resolver.constants)})" if resolver.constants else ""),
                         hint="check the spelling; names are case-sensitive")
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
    _check_size(nodes, resolver)
    return Program(main, resolver.sources[main], resolver.sources, dict(resolver.constants), resolver.layout,
                   output, nodes, dict(resolver.encodings), resolver.meaning)


def _check_size(nodes: list[Node], resolver: _Resolver):
    """Refuse a program with more operations, or longer chains of them, than the compiler is meant for.

    Checked on the resolved program, where equal values are shared: what the compiler will build.
    """
    if len(nodes) > MAX_OPERATIONS:
        raise resolver.error(f"the program has {len(nodes):,} operations; at most {MAX_OPERATIONS:,} are "
                             f"supported (this is operation {MAX_OPERATIONS + 1:,})", nodes[MAX_OPERATIONS].span,
                             "a model's size grows with its operations; compute repeated work over positions, "
                             "with a select or sum(...), rather than writing it out")
    chain: dict[int, int] = {}
    for node in nodes:  # in topological order: every input comes before the nodes that read it
        chain[node.id] = 1 + max((chain.get(i.id, 0) for i in node.inputs()), default=0)
        if chain[node.id] > MAX_CHAIN:
            raise resolver.error(f"this value comes at the end of a chain of more than {MAX_CHAIN} operations, each "
                                 f"reading the one before; at most {MAX_CHAIN} are supported", node.span,
                                 "a long chain is usually a long sum written term by term: sum over positions "
                                 "with a select and sum(...) instead")


def _note_overrides(err: AdderError, resolver: _Resolver):
    """Say so when a const named on the failing line was set with -D: the fix may be on the command line."""
    if err.span is None or not resolver.used_overrides:
        return
    lines = resolver.sources.get(err.span.file, "").splitlines()
    line = lines[err.span.line - 1] if 1 <= err.span.line <= len(lines) else ""
    for name in sorted(resolver.used_overrides):
        if re.search(rf"\b{re.escape(name)}\b", line):
            err.notes.append(f"{name} is {resolver.overrides[name]} here, set on the command line by "
                             f"-D {name}={resolver.overrides[name]}")


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
    return sources_digest(program.sources.values())


def sources_digest(texts) -> str:
    """sha256 over source texts in order: what a model file records of the program it came from."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()
