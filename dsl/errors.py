"""Source spans and the one error type every user-facing failure is reported through."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def display_path(file: str) -> str:
    """A path as a user would type it: relative to the working directory when it lies inside it.

    Programs are loaded by absolute path (so imports resolve the same from anywhere), but a
    message should name the file the way the user named it on the command line.
    """
    if not os.path.isabs(file):
        return file
    try:
        relative = os.path.relpath(file)
    except (ValueError, OSError):  # another drive, or the working directory is gone
        return file
    return file if relative.startswith("..") else relative


MAX_SHOWN = 160  # characters of a source line quoted in a message


def _window(line: str, column: int) -> tuple[str, int]:
    """The part of a long line around `column` (and the column within it): a 100,000-digit
    literal or a 5,000-term sum would otherwise be quoted in full."""
    if len(line) <= MAX_SHOWN:
        return line, column
    start = max(0, column - 1 - MAX_SHOWN // 4)
    shown = line[start:start + MAX_SHOWN]
    prefix = "..." if start else ""
    suffix = "..." if start + MAX_SHOWN < len(line) else ""
    return prefix + shown + suffix, column - start + len(prefix)


@dataclass(frozen=True)
class Span:
    """Where a piece of program text sits: 1-based line and column, as editors count."""

    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{display_path(self.file)}:{self.line}:{self.column}"


class AdderError(Exception):
    """A problem in the user's input, reported as `file:line:col: message` plus the line and a caret.

    `source` is the text of the file the span points into, when known, so the message can quote
    the offending line without reading the file again. `hint` says what to do about it; `notes`
    give context that is not at the span, such as the call a def body was expanded for.
    """

    def __init__(self, message: str, span: Span | None = None, source: str | None = None,
                 hint: str | None = None, notes: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.source = source
        self.hint = hint
        self.notes = list(notes or [])

    def render(self) -> str:
        if self.span is None:
            text = f"error: {self.message}"
        else:
            text = f"{self.span}: error: {self.message}"
            line_text = self._line_text()
            if line_text is not None:
                caret_width = 1
                if self.span.end_line == self.span.line and self.span.end_column:
                    caret_width = max(1, self.span.end_column - self.span.column)
                elif self.span.end_line and self.span.end_line > self.span.line:
                    # the rest of the first line: the caret should not stop short of what it marks
                    caret_width = max(1, len(line_text.rstrip()) - self.span.column + 1)
                shown, column = _window(line_text, self.span.column)
                caret_width = min(caret_width, len(shown) - column + 1)
                text += f"\n    {shown}\n    {' ' * (column - 1)}{'^' * max(1, caret_width)}"
        for note in self.notes:
            text += f"\n  note: {note}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def _line_text(self) -> str | None:
        source = self.source
        if source is None:
            try:
                source = Path(self.span.file).read_text()
            except OSError:
                return None
        lines = source.splitlines()
        if 1 <= self.span.line <= len(lines):
            return lines[self.span.line - 1].expandtabs(1)
        return None

    def __str__(self) -> str:
        return self.render()
