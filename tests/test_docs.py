"""The docs stay honest: every program in docs/*.md compiles, every quoted error is the one the
compiler gives, and the tutorial's final program answers what the tutorial says it answers.

Fenced blocks are tagged by their info string:
  ```rasp              a complete program: it must compile;
  ```rasp broken       a program that must be rejected; the next fenced block quotes the error;
  ```rasp fragment     a statement or two shown on their own: they must parse;
  ```rasp NAME.rasp    the text of the file NAME.rasp under docs/, which must match it.
Weight counts are not pinned here: the compiler keeps changing, and the docs say so.
"""
import re
import shlex
import shutil
from pathlib import Path

import pytest

from compiler.api import compile_file
from compiler.cli import main
from dsl.errors import AdderError
from dsl.parser import parse
from tests.conftest import ROOT

DOCS = ROOT / "docs"
PAGES = [DOCS / "language.md", DOCS / "tutorial.md"]
TUTORIAL_PROGRAM = DOCS / "tutorial" / "increment.rasp"

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
# "/tmp/inc/increment.rasp:17:52:" and "increment.rasp:17:52:" name the same place.
LOCATION = re.compile(r"\S*?[\w.-]+\.rasp:(\d+):(\d+):")


def _blocks(page: Path) -> list[dict]:
    text = page.read_text(encoding="utf-8")
    found = [{"tags": m.group(1).split(), "body": m.group(2), "page": page.name,
              "line": text.count("\n", 0, m.start()) + 1} for m in FENCE.finditer(text)]
    for block, following in zip(found, found[1:] + [None]):
        block["next"] = following
    return found


BLOCKS = [b for page in PAGES for b in _blocks(page)]
RASP = [b for b in BLOCKS if b["tags"][:1] == ["rasp"]]


def _of_kind(kind: str) -> list:
    chosen = [b for b in RASP if (b["tags"][1:] or ["program"])[0] == kind]
    return [pytest.param(b, id=f"{b['page']}:{b['line']}") for b in chosen]


def _workdir(tmp_path: Path) -> Path:
    """A directory holding the files the docs' programs import (docs/reference/*.rasp)."""
    for path in (DOCS / "reference").glob("*.rasp"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_every_program_block_has_a_known_tag():
    for block in RASP:
        tag = (block["tags"][1:] or ["program"])[0]
        assert tag in ("program", "broken", "fragment") or tag.endswith(".rasp"), \
            f"{block['page']}:{block['line']}: unknown tag {block['tags']}"
    assert len(_of_kind("program")) >= 20 and _of_kind("broken") and _of_kind("fragment")


@pytest.mark.parametrize("block", _of_kind("program"))
def test_program_compiles(block, tmp_path):
    path = _workdir(tmp_path) / "example.rasp"
    path.write_text(block["body"])
    ir, stats, _ = compile_file(path)
    assert stats["nonzero_params"] > 0


@pytest.mark.parametrize("block", _of_kind("broken"))
def test_broken_program_fails_with_the_quoted_message(block, tmp_path):
    path = _workdir(tmp_path) / "broken.rasp"
    path.write_text(block["body"])
    with pytest.raises(AdderError) as caught:
        compile_file(path)
    actual = _normalise(caught.value.render())
    quoted = _normalise("\n".join(line for line in block["next"]["body"].splitlines()
                                  if not line.startswith("$ ")))
    assert quoted, f"{block['page']}:{block['line']}: no error quoted after the broken program"
    # Every quoted line appears, in order, in the real message (which may gain a hint later).
    remaining = iter(actual)
    missing = [line for line in quoted if not any(line == seen for seen in remaining)]
    assert not missing, f"quoted {quoted}\nactual {actual}"


def _normalise(text: str) -> list[str]:
    return [LOCATION.sub(r"FILE:\1:\2:", line).rstrip() for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("block", _of_kind("fragment"))
def test_fragment_parses(block):
    parse(block["body"], f"{block['page']}:{block['line']}")


def test_listed_files_match_the_docs():
    listings = [b for b in RASP if b["tags"][1:2] and b["tags"][1].endswith(".rasp")]
    assert listings
    for block in listings:
        matches = list(DOCS.rglob(block["tags"][1]))
        assert len(matches) == 1, f"{block['tags'][1]}: expected one file under docs/, found {matches}"
        assert matches[0].read_text() == block["body"]


def test_tutorial_program_is_its_final_listing():
    programs = [b for b in _blocks(DOCS / "tutorial.md") if b["tags"] == ["rasp"]]
    assert programs[-1]["body"] == TUTORIAL_PROGRAM.read_text()


def test_tutorial_runs_answer_as_quoted(tmp_path, monkeypatch, capsys):
    """Replay the tutorial's `adderc` compile and run commands from its broken program on (every
    version after it computes the same function) with the final program, and compare every quoted
    `adderc run` output."""
    blocks = _blocks(DOCS / "tutorial.md")
    start = next(i for i, b in enumerate(blocks) if b["tags"] == ["rasp", "broken"])
    monkeypatch.chdir(tmp_path)
    shutil.copy(TUTORIAL_PROGRAM, tmp_path / "increment.rasp")
    checked = 0
    for block in blocks[start + 2:]:
        if block["tags"] != ["console"]:
            continue
        for command, quoted in _commands(block["body"]):
            argv = shlex.split(command)[1:]
            if argv[0] == "run":
                assert main(argv) == 0
                assert capsys.readouterr().out.splitlines() == quoted, command
                checked += 1
            elif argv[0].endswith(".rasp"):  # a compile; its figures are not pinned
                assert main(argv) == 0, command
                capsys.readouterr()
    assert checked >= 4


def _commands(body: str) -> list[tuple[str, list[str]]]:
    """(`adderc ...` command, the output lines quoted under it) for each command in a console block."""
    commands = []
    for line in body.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
    return [(c, out) for c, out in commands if c.startswith("adderc ")]
