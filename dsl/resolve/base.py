"""What a resolver holds while it reads a program, and where its errors point."""
from __future__ import annotations

import bisect
import re
from typing import Any

from dsl import ast
from dsl.core import Node
from dsl.errors import AdderError, Span
from dsl.layout import Layout, Meaning
from dsl.resolve.builder import NodeBuilder


class ResolverBase:
    """The state every part of the resolver (dsl.resolve.program.Resolver) reads and writes, and
    errors that point at the text: the parts are mixins over this one object, cut by concern."""

    def __init__(self, overrides: dict[str, int]):
        self.builder = NodeBuilder()
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
        self.meaning_decl_st = None  # checked against the widths once every requirement is known
        self.requirements: list = []  # dsl.layout.Requirement, in the order written
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

    def keyword_span(self, value_span: Span, key: str) -> Span:
        """Where `key=` is written before the value it names (the AST keeps only the value's span)."""
        lines = self.sources.get(value_span.file, "").splitlines()
        if 1 <= value_span.line <= len(lines):
            column = lines[value_span.line - 1].rfind(key, 0, value_span.column - 1)
            if column >= 0:
                return Span(value_span.file, value_span.line, column + 1, value_span.line, column + 1 + len(key))
        return value_span
