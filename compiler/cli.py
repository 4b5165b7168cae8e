"""The `adderc` command line: compile, run, stats, explain, check, verify.

Every failure caused by the input (a program, a prompt, a model file) prints a message naming
where it is and exits 2; nothing the user does should show a Python traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import torch

from dsl.errors import AdderError
from dsl.layout import Layout
from dsl.limits import MAX_NUMBER_DIGITS, show_number
from dsl.resolve import load_program
from compiler import __version__
from compiler.api import compile_file, run_prompts
from compiler.check.adapter import counterexample_lines, load_callable, metadata_lines, stress
from compiler.check.program import program_from_payload
from compiler.check.verify import heading, verify
from compiler.export import FORMATS, export
from compiler.explain import explain_rows, format_rows, rows_on_line
from compiler.model.file import kind_for_name, load_model, save_model
from compiler.passes.probe import probe_program
from compiler.show import show
from compiler.stats import breakdown, format_stats, model_stats

COMMANDS = ("compile", "run", "stats", "explain", "check", "verify", "export", "show")
RUN_BATCH = 1024


# A whole number as a user types it: int() also takes "1_2", full-width and other Unicode digits
# and surrounding spaces, none of which a program could contain.
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def _whole_number(text: str, what: str, low: int | None = None, high: int | None = None) -> int:
    if not WHOLE_NUMBER.fullmatch(text):
        raise AdderError(f"{what}: {text!r} is not a whole number", hint="write plain digits 0-9, e.g. 20")
    if len(text.lstrip("+-")) > MAX_NUMBER_DIGITS:
        raise AdderError(f"{what}: the number has {len(text.lstrip('+-')):,} digits; at most "
                         f"{MAX_NUMBER_DIGITS:,} are supported")
    value = int(text)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low:,} to {high:,}" if high is not None else f"of at least {low:,}"
        raise AdderError(f"{what}: {show_number(value)} is out of range; give a whole number {bounds}")
    return value


def _defines(values: list[str]) -> dict[str, int]:
    overrides = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier() or not name.isascii():
            raise AdderError(f"-D {item}: write -D NAME=VALUE, e.g. -D N=20")
        overrides[name] = _whole_number(value, f"-D {item}" if len(item) <= 60 else f"-D {name}=...")
    return overrides


def _count(low: int, high: int | None = None):
    """An argparse type: a whole number from `low` (to `high`), with the same strict digits as -D."""
    def parse(text: str) -> int:
        try:
            return _whole_number(text, "the value", low, high)
        except AdderError as err:
            raise argparse.ArgumentTypeError(err.message.removeprefix("the value: ")) from None
    parse.__name__ = "whole number"
    return parse


VERIFY_EPILOG = """\
exit status:
  0  every check holds (and with --prove, the model is proved equal to its program)
  1  a mismatch: a concrete input on which the model (or the program, against its
     meaning) is wrong, printed as a counterexample
  2  bad input: a program, model file or option that cannot be used
  4  nothing wrong was found, but the proof could not be completed ("could not
     prove: <why>, at <program line>"); no counterexample was found

A counterexample is always an input of the layout that was run through the model and
answered wrong. A proof check that fails on a combination of values that no replayed
input produces is reported as "could not prove", never as a counterexample.
"""


DESCRIPTION = """\
Compile arithmetic programs into transformers, run them, and prove them right.

`adderc PROGRAM [options]` is short for `adderc compile PROGRAM [options]`.
Every command takes --json and then prints one JSON document on standard output
(docs/cli.md gives each schema); progress shows on standard error.
"""

EXIT_STATUS = """\
exit status: 0 done (for verify: every check holds), 1 verify found a mismatch, 2 bad
input, 3 internal error, 4 verify --prove found nothing wrong but could not complete
the proof, 130 interrupted.
"""


def _command(sub, name: str, help: str, epilog: str = EXIT_STATUS, json_help: str | None = None):
    parser = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=epilog,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    if json_help is None:
        parser.add_argument("--json", action="store_true", help="print one JSON document on standard output "
                                                                "instead of text (default: text)")
    return parser


def _defines_option(parser):
    parser.add_argument("-D", dest="defines", action="append", metavar="NAME=VALUE",
                        help="override a const of the program, e.g. -D N=20 (repeatable; default: none)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adderc", description=DESCRIPTION, epilog=EXIT_STATUS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"adderc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = _command(sub, "compile", "compile a program into a model file")
    p.add_argument("program", help="the program file (.rasp)")
    p.add_argument("-o", "--output", default="model.pt", help="model file to write: a name ending .safetensors writes safetensors, "
                        "any other a torch archive (default: model.pt)")
    _defines_option(p)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="precision of the stored weights (default: float64)")
    p = _command(sub, "run", "let a compiled model write its answers, token by token")
    p.add_argument("model", help="a model file written by adderc compile")
    p.add_argument("prompts", nargs="*", help="prompts as a user writes them, e.g. 12+34= (default: one per line "
                                              "from standard input)")
    p.add_argument("--operands", nargs="+", metavar="N",
                   help="operand values instead of prompts, formatted through the layout (default: none)")
    p = _command(sub, "stats", "print a model's size figures")
    p.add_argument("model", help="a model file written by adderc compile")
    p = _command(sub, "explain", "list every stored number with the program node and line it serves")
    p.add_argument("model", help="a model file written by adderc compile")
    p.add_argument("--line", type=_count(1, 10 ** 9), metavar="N",
                   help="only the numbers that line N of the program costs, and how many (default: every line)")
    p = _command(sub, "verify", "check a model against its program (exit 0 holds, 1 mismatch, 4 unproved)",
                 epilog=VERIFY_EPILOG, json_help="own")
    p.add_argument("model", help="a model file, or with --callable a layout program")
    p.add_argument("program", nargs="?", help="program to check against (default: the one in the model file)")
    p.add_argument("--samples", type=_count(0), default=None,
                   help="random inputs (default: 1,000,000 for a model, 10,000 for --callable, as the board "
                        "checks; 0: none, only edge cases and strata)")
    # torch's generators take a seed below 2**64; the verifier also uses seed + 1
    p.add_argument("--seed", type=_count(0, 2 ** 63 - 1), default=20261122,
                   help="seed of the random inputs (default: 20261122)")
    p.add_argument("--per-stratum", type=_count(0), default=20,
                   help="inputs per carry-structure stratum (default: 20)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--prove", action="store_true",
                   help="also prove the model equal to the program on every input of the layout (default: off)")
    # A path is optional, for the scripts that wrote the report to a file before --json printed it.
    p.add_argument("--json", dest="json_path", nargs="?", const="-", metavar="PATH",
                   help="print the full report as JSON on standard output, the progress lines going to "
                        "standard error; with PATH, write it there and print the lines (default: text)")
    p.add_argument("--callable", dest="callable_spec", metavar="SPEC",
                   help="verify an outside adder instead: file.py with build_model() and add(model, a, b), "
                        "or module:function; MODEL is then the program whose layout and meaning it must meet "
                        "(default: none, MODEL is a model file)")
    p.add_argument("--call-timeout", type=_count(1, 3600), default=None, metavar="SECONDS",
                   help="with --callable: seconds one add() call may take (default: 5)")
    p = _command(sub, "export", "write a model in another format: " + ", ".join(sorted(FORMATS)))
    p.add_argument("model", help="a model file written by adderc compile")
    p.add_argument("--to", dest="format", required=True, choices=sorted(FORMATS), help="the format to write")
    p.add_argument("-o", "--output", required=True, help="file to write")
    p = _command(sub, "show", "draw a model as pictures (PNG and SVG): graph, residual layout, attention, MLPs, readout")
    p.add_argument("model", help="a model file written by adderc compile")
    p.add_argument("--prompt", help="the prompt the attention is drawn on, e.g. 12+34= (default: an example sum "
                                    "of the layout, digits counting up in the first operand and down in the next)")
    p.add_argument("-o", "--output", required=True, help="folder to write the pictures in (created if missing)")
    p = _command(sub, "check", "parse and type-check a program")
    p.add_argument("program", help="the program file (.rasp)")
    _defines_option(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "compile")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # argparse has printed its message (exit 2) or the help (exit 0)
        return exit.code
    try:
        return {"compile": cmd_compile, "run": cmd_run, "stats": cmd_stats, "explain": cmd_explain,
                "check": cmd_check, "verify": cmd_verify, "export": cmd_export,
                "show": cmd_show}[args.command](args)
    except AdderError as err:
        print(err.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        # `adderc run ... | head`: the reader has all it wanted. Any other command stopped before
        # its verdict (`verify | head -1` must not pass for a model that fails): 128 + SIGPIPE.
        return 0 if args.command == "run" else 141
    except Exception as err:  # a compiler bug: say so plainly; ADDERC_DEBUG=1 shows the traceback
        if os.environ.get("ADDERC_DEBUG"):
            raise
        print(f"adderc: internal error: {type(err).__name__}: {err}\n"
              f"  this is a bug in adderc, not in your input; rerun with ADDERC_DEBUG=1 for details",
              file=sys.stderr)
        return 3


def cmd_verify(args) -> int:
    if args.json_path and args.json_path != "-":  # before the run, which can take minutes, not after it
        _check_writable(Path(args.json_path), "--json", [args.model] + ([args.program] if args.program else []))
    if args.callable_spec:
        return _verify_callable(args)
    if args.device != "cpu" and not torch.cuda.is_available():
        raise AdderError(f"--device {args.device}: no such device here")
    _, payload = load_model(args.model)
    program = program_from_payload(payload, args.program, args.model)
    # Each line is printed as its check completes: a run cut short still shows what it found.
    lines = _lines_stream(args)
    overrides = "".join(f", -D {name}={value}" for name, value in payload["program"].get("overrides", {}).items())
    print(heading(args.program or f"{args.model} (embedded {payload['program']['path']}{overrides})", args.seed),
          file=lines, flush=True)
    samples = 1_000_000 if args.samples is None else args.samples
    report = verify(payload, program, samples=samples, seed=args.seed, per_stratum=args.per_stratum,
                    device=args.device, prove=args.prove, emit=lambda line: print(line, file=lines, flush=True))
    _write_json(args.json_path, report.to_dict())
    return report.exit_code


def _verify_callable(args) -> int:
    program = load_program(args.model)
    if program.meaning is None:
        raise AdderError(f"{args.model}: the program states no meaning to check the adder against",
                         hint="add one, e.g. meaning sum = a + b")
    limits = {} if args.call_timeout is None else {"call_timeout": args.call_timeout}
    add = load_callable(args.callable_spec, **limits)
    lines = _lines_stream(args)
    # What is being checked shows before the run: an outside adder can take minutes.
    for line in [f"verify {args.callable_spec} against {args.model} (seed {args.seed})",
                 *metadata_lines(add.metadata)]:
        print(line, file=lines, flush=True)
    report = stress(add, program.layout, program.meaning.expected, seed=args.seed,
                    random_count=10_000 if args.samples is None else args.samples, per_stratum=args.per_stratum,
                    on_source=lambda source, entry: print(
                        f"  {source:<12} {entry['checked'] - entry['wrong']:>9,}/{entry['checked']:,} right",
                        file=lines, flush=True))
    for line in counterexample_lines(report):
        print(line, file=lines)
    print("  result: " + ("every check holds" if report["wrong"] == 0 else "MISMATCH"), file=lines)
    _write_json(args.json_path, report)
    return 0 if report["wrong"] == 0 else 1


def _lines_stream(args):
    """Where verify's text goes: standard error when the JSON report takes standard output."""
    return sys.stderr if args.json_path == "-" else sys.stdout


def _write_json(path, data):
    if path == "-":
        print(json.dumps(data, indent=2, default=str))
    elif path:
        try:
            Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")
        except OSError as err:
            raise AdderError(f"cannot write {path}: {err.strerror}") from None


def cmd_export(args) -> int:
    output = Path(args.output)
    _check_writable(output, "-o", [args.model])
    model, payload = load_model(args.model)
    lines = export(args.format, model, payload, output)
    if args.json:
        print(json.dumps({"format": args.format, "output": str(output), "notes": lines}, indent=2))
    else:
        for line in lines + [f"wrote {output}"]:
            print(line)
    return 0


def cmd_show(args) -> int:
    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise AdderError(f"-o {folder}: is not a folder", hint="name a folder for the pictures, e.g. -o pictures")
    if not folder.exists():
        _check_writable(folder, "-o")  # the folder it would be created in must exist and be writable
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise AdderError(f"-o {folder}: cannot create files in this folder")
    model, payload = load_model(args.model)
    layout = Layout.from_dict(payload["layout"])
    prompt = _prompt_tokens(layout, args.prompt, 1) if args.prompt is not None else None
    folder.mkdir(exist_ok=True)
    written = show(model, payload, prompt, folder, Path(args.model).name)
    if args.json:
        print(json.dumps({"output": str(folder), "files": [str(p) for p in written]}, indent=2))
    else:
        for path in written:
            print(f"wrote {path}")
    return 0


def cmd_check(args) -> int:
    program = load_program(args.program, _defines(args.defines))
    probe_program(program)
    layout = program.layout
    if args.json:
        print(json.dumps({"program": args.program, "ok": True, "operations": len(program.nodes),
                          "vocab": list(layout.vocab), "n_ctx": layout.n_ctx}, indent=2))
    else:
        print(f"{args.program}: ok ({len(program.nodes)} operations, vocabulary of {len(layout.vocab)}, "
              f"context {layout.n_ctx})")
    return 0


def _check_writable(path: Path, what: str, sources=()) -> None:
    """Refuse an output path that cannot be written, before any work is done for it."""
    def fail(reason, hint=None):
        raise AdderError(f"{what} {path}: {reason}", hint=hint)
    if path.is_dir():
        fail("is a folder", f"name a file, e.g. {what} {path / ('model.pt' if what == '-o' else 'report.json')}")
    folder = path.parent
    if not folder.exists():
        fail(f"the folder {folder} does not exist", f"create it first: mkdir -p {folder}")
    if not folder.is_dir():
        fail(f"{folder} is not a folder")
    for source in sources:
        if path.exists() and Path(source).exists() and os.path.samefile(path, source):
            fail("this is a program source; writing there would overwrite it", "choose another name, e.g. "
                 + (f"-o {Path(source).with_suffix('.pt').name}" if what == "-o" else f"{what} report.json"))
    if path.exists() and not os.access(path, os.W_OK):
        fail("the file is not writable")
    if not path.exists() and not os.access(folder, os.W_OK | os.X_OK):
        fail(f"cannot create files in the folder {folder}")


def cmd_compile(args) -> int:
    output = Path(args.output)
    overrides = _defines(args.defines)
    _check_writable(output, "-o", [args.program])
    ir, stats, digest = compile_file(args.program, overrides, args.dtype, progress=True)
    _check_writable(output, "-o", list(ir.program.sources))  # its imports as well
    # written beside the target, then renamed over it: an interrupted or failed write leaves no
    # half-written model, and the old file (if any) stays as it was
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        save_model(partial, ir, stats, digest, kind_for_name(output))  # the partial name's suffix is not it
        os.replace(partial, output)
    except (OSError, RuntimeError) as err:  # torch.save reports a file it cannot open as a RuntimeError
        raise AdderError(f"cannot write {output}: {getattr(err, 'strerror', None) or err}") from None
    finally:
        partial.unlink(missing_ok=True)
    if args.json:
        print(json.dumps({"output": str(output), "stats": stats}, indent=2))
    else:
        print(format_stats(stats))
        print(f"wrote {output}")
    return 0


def cmd_stats(args) -> int:
    model, payload = load_model(args.model)
    stats = model_stats(payload["config"], payload["state_dict"], payload.get("stats", {}).get("compile_seconds"),
                        payload.get("structure"))
    stats.setdefault("compile_seconds", None)  # a model file keeps no timings (it is byte-deterministic)
    stats["breakdown"] = breakdown(payload["state_dict"], payload.get("weight_map", []), payload["residual_map"])
    if args.json:
        stats["vocab"] = list(payload["vocab"])  # the token of each id, in order
        print(json.dumps(stats, indent=2))
    else:
        print(format_stats(stats))
    return 0


def cmd_explain(args) -> int:
    _, payload = load_model(args.model)
    if "provenance" not in payload:
        raise AdderError(f"{args.model}: written in model format {payload['format_version']}, which keeps no "
                         f"provenance of its numbers", hint="compile the program again to explain its model")
    rows = explain_rows(payload)
    total = len(rows)
    if args.line is not None:
        rows = rows_on_line(rows, payload, args.line)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for line in format_rows(rows):
        print(line)
    if args.line is None:
        print(f"{total} stored numbers, each with the program node it serves")
    else:
        print(f"line {args.line} of {payload['program']['path']} costs {len(rows)} of the model's {total} "
              f"stored numbers")
    return 0


def _note_unmet_requirements(payload, model_path, prompts):
    """A prompt outside the program's `require` still runs, but its answer is unspecified: say so."""
    if not any(re.search(r"^\s*require\b", text, re.M) for text in payload["program"]["sources"].values()):
        return
    layout = program_from_payload(payload, None, model_path).layout
    for prompt in prompts:
        unmet = [r for r in layout.requires if not r.holds(layout.operands_in(prompt))]
        if unmet:
            print(f"note: {''.join(prompt[1:])} does not meet require {unmet[0].text} ({unmet[0].where}); "
                  f"the program's answer there is unspecified", file=sys.stderr)


def cmd_run(args) -> int:
    model, payload = load_model(args.model)
    layout = Layout.from_dict(payload["layout"])
    if args.operands and args.prompts:
        raise AdderError(f"give prompts or --operands, not both (got {len(args.prompts)} prompt(s) and "
                         f"{len(args.operands)} operand value(s))",
                         hint="with --operands, every value is an operand; put prompts in a run of their own")
    if args.operands:
        operands = layout.operands
        if len(args.operands) % len(operands):
            raise AdderError(f"--operands takes {len(operands)} value(s) per prompt "
                             f"({', '.join(f.name for f in operands)}), got {len(args.operands)}")
        prompts = []
        for start in range(0, len(args.operands), len(operands)):
            values = {}
            for field, text in zip(operands, args.operands[start:start + len(operands)]):
                try:
                    if not WHOLE_NUMBER.fullmatch(text) or len(text) > MAX_NUMBER_DIGITS:
                        raise ValueError(text)
                    values[field.name] = int(text)
                    layout.digits_of(values[field.name], field.width)
                except ValueError:
                    raise AdderError(f"--operands: {text!r} is not a whole number from 0 to "
                                     f"{show_number(layout.base ** field.width - 1)} for field '{field.name}'") from None
            prompts.append(layout.prompt_tokens(values))
    else:
        texts = args.prompts or [line for line in sys.stdin.read().splitlines() if line.strip()]
        prompts = [_prompt_tokens(layout, text, i + 1) for i, text in enumerate(texts)]
    _note_unmet_requirements(payload, args.model, prompts)
    answers = run_prompts(model, layout, prompts, RUN_BATCH, progress=True)
    if args.json:
        print(json.dumps([{"prompt": "".join(p[1:]), "answer": a} for p, a in zip(prompts, answers)], indent=2))
    else:
        for line in answers:
            print(line)
    return 0


def _prompt_tokens(layout, text: str, number: int) -> list[str]:
    """A prompt as the user writes it, checked against the layout so the model only sees what it expects."""
    where = f"prompt {number} ({text!r})"
    try:
        tokens = layout.tokenize(text)
    except ValueError as err:
        raise AdderError(f"{where}: {err}") from None
    example = "".join(layout.prompt_tokens({f.name: 0 for f in layout.operands})[1:])
    if len(tokens) != layout.prompt_length:
        raise AdderError(f"{where}: expected {layout.prompt_length - 1} tokens after the begin token, "
                         f"like {example!r}, got {len(tokens) - 1}")
    position = 0
    for item in layout.items[: layout.answer_index]:
        span = 1 if item[0] == "literal" else item[2]
        chunk = tokens[position: position + span]
        if item[0] == "literal" and chunk != [item[1]]:
            raise AdderError(f"{where}: expected {item[1]!r} at token {position}, like {example!r}")
        if item[0] == "field" and any(t not in layout.digits for t in chunk):
            raise AdderError(f"{where}: field '{item[1]}' needs {item[2]} base-{layout.base} digits, like {example!r}")
        position += span
    return tokens


if __name__ == "__main__":
    sys.exit(main())
