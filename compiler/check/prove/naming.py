"""Program values named in the prover's messages as their reader knows them."""
from __future__ import annotations

import re

from dsl.errors import display_path
from compiler.ir.attrs import LABEL, NODE, SPAN

_INTERNAL_ID = re.compile(r"#\d+")


class ProgramText:
    """Names and places of program values, from the compiled graph (`self.graph`) and the
    program's sources (`self.ir.program.sources`)."""

    def name(self, nid):
        """A value as its reader knows it: its let name or its source text, never an internal id."""
        attrs = self.graph.nodes[nid]
        if not _INTERNAL_ID.search(attrs[LABEL]):
            return attrs[LABEL]
        text = self._source_line(attrs[SPAN])
        start = attrs[SPAN].column - 1
        text = text[start:].strip() if text else ""
        return (text if len(text) <= 48 else text[:45] + "...") or attrs[NODE].kind

    def at(self, nid):
        """Where a value is written in the program, for the end of a message."""
        span = self.graph.nodes[nid][SPAN]
        text = " ".join(self._source_line(span).split())
        text = text if len(text) <= 72 else text[:69] + "..."
        return f", at `{text}` ({display_path(span.file)}:{span.line})"

    def describe(self, assign):
        """A combination of values, as `name=value, ...`."""
        return ", ".join(f"{self.name(n)}={v}" for n, v in assign.items()) or "every input"

    def _source_line(self, span):
        lines = self.ir.program.sources.get(span.file, "").splitlines()
        return lines[span.line - 1] if 1 <= span.line <= len(lines) else ""
