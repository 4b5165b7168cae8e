"""Progress goes to standard error: a bar on a terminal, a plain line now and then in a log, and
nothing at all for a run that ends quickly."""
import io

import pytest

import compiler.progress as progress_module
from compiler.progress import Progress


@pytest.fixture(autouse=True)
def progress_on(monkeypatch):
    monkeypatch.delenv("ADDERC_PROGRESS", raising=False)  # conftest turns it off for every other test


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_quick_run_shows_nothing(monkeypatch):
    for stream in (io.StringIO(), Terminal()):
        with Progress("quick", 10, stream=stream) as bar:
            bar.advance(10)
        assert stream.getvalue() == ""


def test_a_log_gets_plain_lines_without_carriage_returns(monkeypatch):
    monkeypatch.setattr(progress_module, "SILENT_SECONDS", 0.0)
    monkeypatch.setattr(progress_module, "PLAIN_EVERY", 0.0)
    stream = io.StringIO()
    with Progress("float64 random", 1000, stream=stream) as bar:
        for _ in range(4):
            bar.advance(250)
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("float64 random: 1,000/1,000 (100%)")
    assert len(lines) == 4 and "\r" not in stream.getvalue()


def test_a_terminal_gets_a_bar(monkeypatch):
    monkeypatch.setattr(progress_module, "SILENT_SECONDS", 0.0)
    stream = Terminal()
    with Progress("float64 proof", 8, stream=stream) as bar:
        bar.advance(3)
    assert "float64 proof" in stream.getvalue()


def test_disabled_shows_nothing(monkeypatch):
    monkeypatch.setattr(progress_module, "SILENT_SECONDS", 0.0)
    monkeypatch.setattr(progress_module, "PLAIN_EVERY", 0.0)
    stream = io.StringIO()
    with Progress("off", 5, enabled=False, stream=stream) as bar:
        bar.advance(5)
    assert stream.getvalue() == ""


def test_the_environment_turns_it_off(monkeypatch):
    monkeypatch.setattr(progress_module, "SILENT_SECONDS", 0.0)
    monkeypatch.setattr(progress_module, "PLAIN_EVERY", 0.0)
    monkeypatch.setenv("ADDERC_PROGRESS", "0")
    stream = io.StringIO()
    with Progress("off", 5, stream=stream) as bar:
        bar.advance(5)
    assert stream.getvalue() == ""
