"""Progress of a long run, on standard error: a rich bar on a terminal, a plain line now and then
when standard error is piped or logged (a bar's carriage returns make a log unreadable).

A run that ends within SILENT_SECONDS shows nothing, so quick commands print only their answer.
Standard output is left alone: it carries the answer, or the JSON, that a script reads.
ADDERC_PROGRESS=0 in the environment turns progress off (a tool that reads standard error).
"""
from __future__ import annotations

import os
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

SILENT_SECONDS = 2.0  # a bar appears only for runs longer than this
PLAIN_EVERY = 10.0  # seconds between two plain lines when standard error is not a terminal


class Progress:
    """`with Progress("float64 random", total) as bar: ... bar.advance(n)`; total 0 counts without
    a bar's end. `enabled=False` shows nothing."""

    def __init__(self, label: str, total: int = 0, enabled: bool = True, stream=None):
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and os.environ.get("ADDERC_PROGRESS", "1") != "0"
        self.terminal = enabled and self.stream.isatty()
        self.started = self.last_line = time.monotonic()
        self.bar = self.task = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.started < SILENT_SECONDS:
            return
        if self.terminal:
            self._bar().update(self.task, completed=self.done)
        elif now - self.last_line >= PLAIN_EVERY:
            self.last_line = now
            print(f"{self.label}: {self._count()} ({now - self.started:.0f} s)", file=self.stream, flush=True)

    def _count(self) -> str:
        if not self.total:
            return f"{self.done:,}"
        return f"{self.done:,}/{self.total:,} ({100 * self.done / self.total:.0f}%)"

    def _bar(self):
        if self.bar is None:
            # transient: the bar gives way to the line that reports the finished check
            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), console=Console(file=self.stream), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total or None, completed=self.done)
        return self.bar

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
