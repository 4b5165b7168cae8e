"""A conventional command line: --version, help for every argument with its default, and --json
on every command, each printing one JSON document on standard output and nothing else there."""
import argparse
import json

import pytest

from compiler import __version__
from compiler.cli import COMMANDS, build_parser, main
from tests.conftest import ADD10, ROOT


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("conventions") / "model.pt"
    assert main([str(ADD10), "-o", str(path)]) == 0
    return path


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"adderc {__version__}"


def _commands():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_argument_has_help_and_every_option_its_default():
    commands = _commands()
    assert set(commands) == set(COMMANDS)
    for name, parser in commands.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            where = f"adderc {name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where}: no help text"
            if action.option_strings and not action.required and action.choices is None:
                assert "default" in action.help, f"{where}: the help does not say the default"


def test_top_level_help_says_a_program_means_compile(capsys):
    assert main(["--help"]) == 0
    assert "adderc PROGRAM" in capsys.readouterr().out


def _json(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def _documented(keys, command):
    """Every key a command's JSON has is named in docs/cli.md's section for that command."""
    doc = (ROOT / "docs" / "cli.md").read_text()
    section = doc.split(f"### `{command}")[1].split("###")[0]
    missing = [k for k in keys if f'"{k}"' not in section]
    assert not missing, f"docs/cli.md does not document {command} --json keys {missing}"


def test_every_command_prints_one_json_document(model_path, tmp_path, capsys):
    code, compiled, _ = _json(capsys, "compile", ADD10, "-o", tmp_path / "m.pt", "--json")
    assert code == 0 and compiled["output"] == str(tmp_path / "m.pt") and compiled["stats"]["layers"] == 2
    code, runs, _ = _json(capsys, "run", model_path, "1234567890+9876543210=", "9999999999+0000000001=", "--json")
    assert runs == [{"prompt": "1234567890+9876543210=", "answer": "11111111100"},
                    {"prompt": "9999999999+0000000001=", "answer": "10000000000"}]
    code, stats, _ = _json(capsys, "stats", model_path, "--json")
    assert stats["vocab"][:10] == list("0123456789") and stats["nonzero_params"] == 69
    # the leaderboard counts: positional encodings (the table, the heads' distance formulas) free
    assert (stats["unique_params"], stats["unique_params_strict"], stats["nonzero_params_leaderboard"]) == (29, 36, 62)
    code, rows, _ = _json(capsys, "explain", model_path, "--json")
    assert len(rows) == stats["nonzero_params"]
    code, checked, _ = _json(capsys, "check", ADD10, "--json")
    assert checked["ok"] and checked["vocab"] == stats["vocab"]
    # verify --json prints the report on standard output and its lines on standard error
    code, report, err = _json(capsys, "verify", model_path, "--samples", 50, "--per-stratum", 1, "--json")
    assert code == 0 and report["status"] == "holds" and report["exit_code"] == 0
    assert "result: every check holds" in err
    for keys, command in [(compiled, "compile"), (runs[0], "run"), (stats, "stats"), (rows[0], "explain"),
                          (checked, "check"), (report, "verify"), (stats["per_layer"][0], "stats"),
                          (stats["breakdown"][0], "stats")]:
        _documented(keys, command)


def test_verify_json_with_a_path_still_writes_the_file(model_path, tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main(["verify", str(model_path), "--samples", "20", "--per-stratum", "1", "--json", str(path)]) == 0
    assert "result: every check holds" in capsys.readouterr().out
    assert json.loads(path.read_text())["exit_code"] == 0
