"""No input hangs or ends in an internal error: programs that ask for unbounded work, and bad arguments.

Each case goes through `compiler.cli.main`, as the `adderc` script does, and must exit 2 within 10
seconds with a message saying what is wrong (and where, when it is in a program). A few run as real
processes with a timeout, so a hang fails the test instead of stalling the suite. Broken programs
small enough to read are in tests/bad_programs/; the ones here are generated, thousands of lines
or characters long.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compiler.cli import main
from dsl.limits import MAX_NUMBER_DIGITS, MAX_OPERATIONS, MAX_POSITIONS, MAX_TOKENS
from tests.conftest import ADD10

ROOT = Path(__file__).resolve().parent.parent
ENTRY = "import sys; from compiler.cli import main; sys.exit(main())"
SECONDS = 10
ANCHOR = "let pair = value + shift(value, ALIGN)"


def add10_with(before_pair: str = "", after: str = "", replace: tuple[str, str] | None = None) -> str:
    """examples/add10.rasp with lines inserted before `pair`, its use in `pair`, or one text replaced."""
    text = ADD10.read_text()
    if replace:
        assert replace[0] in text
        text = text.replace(*replace)
    if before_pair or after:
        text = text.replace(ANCHOR, before_pair + ANCHOR + after)
    return text


def run(argv, capsys):
    started = time.perf_counter()
    code = main([str(a) for a in argv])
    seconds = time.perf_counter() - started
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "internal error" not in captured.err, captured.err
    assert seconds < SECONDS, f"took {seconds:.1f} s"
    return code, captured


def refused(argv, capsys, *messages):
    code, captured = run(argv, capsys)
    assert code == 2, f"exit {code}\n{captured.err}"
    for message in messages:
        assert message in captured.err, captured.err
    return captured.err


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("robust") / "add2.pt"
    assert main(["compile", str(ADD10), "-D", "N=2", "-o", str(path)]) == 0
    return path


# ----- programs that ask for unbounded work ---------------------------------------------------

GENERATED = {
    # name: (program text, what the message must say, where the message starts after the path)
    "3000 lets": (add10_with("let v0 = value\n" + "".join(f"let v{i} = v{i - 1} + 1\n" for i in range(1, 3001)),
                             " + 0 * v3000"),
                  f"at most {MAX_OPERATIONS:,} are supported (this is operation {MAX_OPERATIONS + 1:,})", ":"),
    "a sum of 300 shifts": (add10_with("let many = " + " + ".join(f"shift(value, {i % 20})" for i in range(300)) + "\n",
                                       " + 0 * many"), "nests more than 100 operations deep", ":15:1:"),
    "a 5,000-term sum": (add10_with("let many = " + " + ".join("value" if i % 2 else "1" for i in range(5000)) + "\n",
                                    " + 0 * many"), "nests more than 100 operations deep", ":15:1:"),
    "1,000 nested if/else": (add10_with("let many = " + "".join(f"({i} if value == {i % 10} else " for i in range(1000))
                                        + "value" + ")" * 1000 + "\n", " + 0 * many"),
                             "nests more than 100 operations deep", ":15:1:"),
    "a 100,000-digit literal": (add10_with(replace=("const N = 10", "const N = 10\nconst BIG = " + "7" * 100_000)),
                                f"this number has 100,000 digits; at most {MAX_NUMBER_DIGITS:,} are supported", ":5:13:"),
    "8,000 lets": (add10_with("".join(f"let w{i} = value + {i}\n" for i in range(8000))),
                   f"this file has more than {MAX_TOKENS:,} tokens", ":"),
    "defs that make 6,000 operations": (
        add10_with("def f0(x) = x\n" + "".join(f"def f{i}(x) = f{i - 1}(x * 2) + f{i - 1}(x * 3)\n" for i in range(1, 12)),
                   " + 0 * f11(value)"), "the program has 6,166 operations", ":16:13:"),
    "2,000 lets, each using the next": (
        add10_with("".join(f"let v{i} = v{i + 1} + 1\n" for i in range(2000)) + "let v2000 = value\n", " + 0 * v0"),
        "name 'v1' is used before its definition", ":15:10:"),
    "N = 10**19": (add10_with(replace=("const N = 10", "const N = 10 ** 19")),
                   f"field 'a' is N = 10000000000000000000 digits wide: too large, a sequence has at most "
                   f"{MAX_POSITIONS:,} positions", ":6:36:"),
}


@pytest.mark.parametrize("name", GENERATED)
@pytest.mark.parametrize("command", ["check", "compile"])
def test_a_program_asking_for_unbounded_work_is_refused_quickly(name, command, tmp_path, capsys):
    text, message, where = GENERATED[name]
    program = tmp_path / "big.rasp"
    program.write_text(text)
    model = tmp_path / "model.pt"
    err = refused([command, program, "-o", model] if command == "compile" else [command, program], capsys, message)
    assert err.startswith(f"{program}{where}") or err.startswith(f"{os.path.relpath(program)}{where}"), err
    assert not model.exists()


def test_a_chain_of_3000_distinct_defs_is_too_deep_not_recursive(tmp_path, capsys):
    program = tmp_path / "chain.rasp"
    program.write_text(add10_with("def f0(x) = x\n" + "".join(f"def f{i}(x) = f{i - 1}(x) + 1\n" for i in range(1, 3001)),
                                  " + 0 * f3000(value)"))
    err = refused(["check", program], capsys, "defs call each other 65 deep here (f3000 -> ... -> f2937 -> f2936)",
                  "at most 64 calls can be open at once")
    assert "calls itself" not in err


def test_doubling_defs_are_expanded_once_per_argument(tmp_path, capsys):
    # f30 would be 2**30 expansions if every call were written out; a def is a function of its arguments
    program = tmp_path / "doubling.rasp"
    program.write_text(add10_with("def f0(x) = x\n" + "".join(f"def f{i}(x) = f{i - 1}(x) + f{i - 1}(x)\n"
                                                              for i in range(1, 31)), " + 0 * f30(value)"))
    code, captured = run(["check", program], capsys)
    assert code == 0 and "ok" in captured.out, captured.err


def test_widths_just_inside_the_limit_still_work(tmp_path, capsys):
    # A 4,400-digit operand: its meaning's values pass Python's 4,300-digit limit on int-to-text,
    # which every message and the answer-width check used to trip on.
    program = tmp_path / "last_digit.rasp"
    program.write_text('const N = 3\nlayout base 10, msb_first: "<bos>" a[N] "=" => r[1] "<eos>"\nmeaning r = a % 10\n'
                       'let value = digit(tokens)\n'
                       'output "<eos>" if indices == end(r) else nearest_digit(shift(value, 1))\n')
    code, captured = run(["check", program, "-D", "N=4400"], capsys)
    assert code == 0 and "context 4403" in captured.out, captured.err
    program.write_text(program.read_text().replace("meaning r = a % 10", "meaning r = a"))
    refused(["check", program, "-D", "N=4400"], capsys, "its meaning can be 999999...999999 (4,400 digits)",
            "which needs 4400")


def test_an_override_past_python_int_text_limit_is_a_clear_error(capsys):
    refused(["check", ADD10, "-D", "N=4301"], capsys, "field 'b' is N = 4301 digits wide: too large",
            "set on the command line by -D N=4301")
    refused(["check", ADD10, "-D", "N=" + "9" * 5000], capsys, f"at most {MAX_NUMBER_DIGITS:,} are supported")


# ----- files that are not programs ------------------------------------------------------------

def test_a_program_that_is_not_utf8(tmp_path, capsys):
    program = tmp_path / "latin1.rasp"
    program.write_bytes(ADD10.read_bytes().replace(b"# Two", b"# Tw\xe9o"))
    refused(["check", program], capsys, f"{program}:1:5: error:", "is not UTF-8 text: byte 0xe9 cannot be read",
            "save the file as UTF-8")
    helper = tmp_path / "uses_latin1.rasp"
    helper.write_text('import "latin1.rasp"\n')
    refused(["check", helper], capsys, f"{helper}:1:1: error:", "at line 1, column 5 of that file")


def test_a_model_file_given_as_a_program(small_model, capsys):
    refused([small_model], capsys, "is a model file (a zip archive), not a program",
            f"adderc run {small_model}", "adderc verify")


def test_a_byte_order_mark_and_windows_line_endings_are_read_as_text(tmp_path, capsys):
    program = tmp_path / "windows.rasp"
    program.write_bytes(b"\xef\xbb\xbf" + ADD10.read_bytes().replace(b"\n", b"\r\n"))
    code, captured = run(["check", program], capsys)
    assert code == 0, captured.err


# ----- output paths ---------------------------------------------------------------------------

def test_output_paths_are_checked_before_compiling(tmp_path, capsys):
    program = tmp_path / "add10.rasp"
    program.write_text(ADD10.read_text())
    refused(["compile", program, "-o", tmp_path / "missing" / "m.pt"], capsys, "the folder", "does not exist",
            "mkdir -p")
    refused(["compile", program, "-o", tmp_path], capsys, "is a folder")
    refused(["compile", program, "-o", program / "m.pt"], capsys, "is not a folder")
    refused(["compile", program, "-o", program], capsys, "this is a program source; writing there would overwrite it")
    assert program.read_text() == ADD10.read_text()


def test_output_onto_an_imported_file_is_refused(tmp_path, capsys):
    (tmp_path / "lib.rasp").write_text("def twice(x) = x + x\n")
    program = tmp_path / "main.rasp"
    program.write_text('import "lib.rasp"\n' + ADD10.read_text())
    refused(["compile", program, "-o", tmp_path / "lib.rasp"], capsys, "this is a program source")
    assert (tmp_path / "lib.rasp").read_text() == "def twice(x) = x + x\n"


@pytest.mark.skipif(not Path("/proc/version").exists(), reason="needs a folder no one can create files in")
def test_a_write_that_fails_is_a_clear_error(tmp_path, capsys):
    # /proc refuses new files even to root, for whom permission checks always pass
    program = tmp_path / "add2.rasp"
    program.write_text(ADD10.read_text().replace("const N = 10", "const N = 2"))
    refused(["compile", program, "-o", "/proc/adderc-model.pt"], capsys, "/proc/adderc-model.pt")
    assert not any(p.name.startswith(".adderc-model") for p in tmp_path.iterdir())


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write any file")
def test_an_unwritable_output_file(tmp_path, capsys):
    program = tmp_path / "add10.rasp"
    program.write_text(ADD10.read_text())
    locked = tmp_path / "locked.pt"
    locked.write_bytes(b"")
    locked.chmod(0o444)
    refused(["compile", program, "-o", locked], capsys, "the file is not writable")


# ----- arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1_2", "１２", " 12", "12.0", "0x10", "", "+-3"])
def test_defines_take_plain_digits_only(value, capsys):
    refused(["check", ADD10, "-D", f"N={value}"], capsys, "is not a whole number", "plain digits 0-9")


@pytest.mark.parametrize("args, message", [
    (["--samples", "-1"], "argument --samples: -1 is out of range"),
    (["--samples", "1_000"], "argument --samples: '1_000' is not a whole number"),
    (["--per-stratum", "-2"], "argument --per-stratum: -2 is out of range"),
    (["--seed", "1" * 30], "argument --seed: 111111111111111111111111111111 is out of range; give a whole number "
                           "from 0 to 9,223,372,036,854,775,807"),
    (["--seed", "-1"], "argument --seed: -1 is out of range"),
])
def test_verify_arguments_are_checked(args, message, small_model, capsys):
    refused(["verify", small_model, *args], capsys, message)


def test_verify_json_into_a_missing_folder_fails_before_the_run(small_model, tmp_path, capsys):
    err = refused(["verify", small_model, "--json", tmp_path / "missing" / "report.json"], capsys,
                  "--json", "does not exist")
    assert "verify" not in capsys.readouterr().out  # nothing was run
    refused(["verify", small_model, "--json", tmp_path], capsys, "is a folder")
    assert err


def test_prompts_together_with_operands_are_an_error(small_model, capsys):
    refused(["run", small_model, "12+34=", "--operands", "1", "2"], capsys,
            "give prompts or --operands, not both (got 1 prompt(s) and 2 operand value(s))")
    refused(["run", small_model, "--operands", "1_2", "3"], capsys, "'1_2' is not a whole number from 0 to 99")
    refused(["run", small_model, "--operands", "１", "3"], capsys, "is not a whole number")


# ----- as real processes, with a timeout ------------------------------------------------------

SUBPROCESS_CASES = {
    "N = 10**19": add10_with(replace=("const N = 10", "const N = 10 ** 19")),
    "2 ** 100000000": add10_with(replace=("const N = 10", "const N = 10\nconst BIG = 2 ** 100000000")),
    "10 ** 10 ** 10": add10_with(replace=("const N = 10", "const N = 10\nconst BIG = 10 ** 10 ** 10")),
    "a 5,000-term sum": GENERATED["a 5,000-term sum"][0],
    "an answer N + 65536 wide": add10_with(replace=("sum[N + 1]", "sum[N + 65536]")),
}


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_no_hang_in_a_real_process(name, tmp_path):
    program = tmp_path / "bomb.rasp"
    program.write_text(SUBPROCESS_CASES[name])
    model = tmp_path / "model.pt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("ADDERC_DEBUG", None)
    # the limit includes starting Python and importing torch and sympy, on a busy machine
    result = subprocess.run([sys.executable, "-c", ENTRY, "compile", str(program), "-o", str(model)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"{program}:" in result.stderr.splitlines()[0] and "error:" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not model.exists()
