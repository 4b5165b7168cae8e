"""Broken programs through the command line: exit 2, `FILE:LINE:COL: error: ...`, the line, a caret, a hint.

Each file in tests/bad_programs/ is a program broken in one way. Its leading comment says where the
error must point and what it must say:

    # expect: line 18, col 37
    # expect message: unknown name 'carr'
    # expect hint: did you mean 'carry'?
    # expect file: imports/helper.rasp      (when the error is in an imported file; relative to the program)
    # args: -D N=0                          (extra command-line arguments)

Every case runs in-process through `compiler.cli.main`, which is what the `adderc` script calls; a
few run as real subprocesses as well, to show that nothing the user does escapes as a traceback.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from compiler.cli import main

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "bad_programs"
PROGRAMS = sorted(CORPUS.glob("*.rasp"))
# One per stage that can fail: lexer, resolver, an imported file, a -D override, a compiler pass.
SUBPROCESS_CASES = ["unterminated_string", "undefined_name", "error_in_imported_file", "override_zero_width",
                    "division_by_zero_for_some_input"]
# `python -m compiler.cli` runs the same `main` (the module has a __main__ guard); this spelling is
# the one the installed `adderc` script uses, so the subprocesses test what a user runs.
ENTRY = "import sys; from compiler.cli import main; sys.exit(main())"


@dataclass(frozen=True)
class Expect:
    program: Path
    line: int
    column: int
    message: str
    hint: str
    file: Path  # the file the error is in
    args: tuple[str, ...]


def read_expect(program: Path) -> Expect:
    fields = {}
    for text in program.read_text().splitlines():
        if not text.startswith("#"):
            break
        match = re.match(r"#\s*(expect|expect message|expect hint|expect file|args):\s*(.*?)\s*$", text)
        if match:
            fields[match.group(1)] = match.group(2)
    missing = {"expect", "expect message", "expect hint"} - set(fields)
    assert not missing, f"{program.name}: its header lacks {sorted(missing)}"
    position = re.fullmatch(r"line (\d+), col (\d+)", fields["expect"])
    assert position, f"{program.name}: write '# expect: line L, col C'"
    file = (program.parent / fields["expect file"]).resolve() if "expect file" in fields else program
    return Expect(program, int(position.group(1)), int(position.group(2)), fields["expect message"],
                  fields["expect hint"], file, tuple(shlex.split(fields.get("args", ""))))


def argv(expect: Expect, model: Path) -> list[str]:
    return ["compile", str(expect.program.relative_to(ROOT)), "-o", str(model), *expect.args]


def check_report(expect: Expect, code, stderr: str, model: Path):
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert code == 2, f"exit {code}\n{stderr}"
    assert not model.exists(), "a broken program must not leave a model file"
    lines = stderr.splitlines()
    # Paths are shown as the user would write them from the working directory (the repository root).
    where = f"{expect.file.relative_to(ROOT).as_posix()}:{expect.line}:{expect.column}: error: "
    assert lines and lines[0].startswith(where), f"expected {where!r}, got:\n{stderr}"
    assert expect.message in lines[0], stderr
    source_line = expect.file.read_text().splitlines()[expect.line - 1].expandtabs(1)
    assert lines[1] == "    " + source_line, stderr
    caret = re.fullmatch(r" {4}( *)\^+", lines[2])
    assert caret and len(caret.group(1)) == expect.column - 1, stderr
    hints = [line for line in lines if line.startswith("  hint: ")]
    assert len(hints) == 1, f"every error should say what to do, in one hint line:\n{stderr}"
    assert expect.hint in hints[0], stderr


def test_the_corpus_is_large_and_every_header_is_complete():
    assert len(PROGRAMS) >= 35
    for program in PROGRAMS:
        expect = read_expect(program)
        assert expect.file.is_file(), f"{program.name}: no file {expect.file}"


def test_every_helper_file_is_imported_by_a_case():
    # A helper no case imports would be a broken program nobody checks.
    imported = {m for p in PROGRAMS for m in re.findall(r'import "(imports/[^"]+)"', p.read_text())}
    helpers = {p.relative_to(CORPUS).as_posix() for p in (CORPUS / "imports").glob("*.rasp")}
    assert helpers <= imported, helpers - imported


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_broken_program_is_reported(program, tmp_path, capsys, monkeypatch):
    expect = read_expect(program)
    monkeypatch.chdir(ROOT)
    model = tmp_path / "model.pt"
    code = main(argv(expect, model))
    captured = capsys.readouterr()
    assert captured.out == "", "nothing is printed on stdout for a failed compile"
    check_report(expect, code, captured.err, model)


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_broken_program_through_a_real_process(name, tmp_path):
    expect = read_expect(CORPUS / f"{name}.rasp")
    model = tmp_path / "model.pt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("ADDERC_DEBUG", None)  # it turns internal errors into tracebacks on purpose
    result = subprocess.run([sys.executable, "-c", ENTRY, *argv(expect, model)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    check_report(expect, result.returncode, result.stderr, model)
