"""The examples' golden figures in tests/golden.json: compare them with the current compiler, or rewrite them.

A compiler change that grows a model, changes its weights or makes compilation nondeterministic
shows up as a readable diff:

    python -m compiler.golden            # print the diff, exit 1 if there is one (runs this file)
    python -m compiler.golden --update   # rewrite tests/golden.json from the current compiler

The figures of one program (compiler.golden.golden_entry) belong to the compiler; the file they
are pinned in, and the tool that writes it, belong here with the tests.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from compiler.golden import golden_entry

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden.json"
UPDATE_HINT = "update with: python -m compiler.golden --update"

LIBRARY_MARK = "# library"


def is_library(path: Path) -> bool:
    """Helper libraries that only exist to be imported say `# library` on their first line."""
    with open(path, encoding="utf-8") as handle:
        return LIBRARY_MARK in handle.readline()


def programs(examples_dir=EXAMPLES) -> list[Path]:
    return [p for p in sorted(Path(examples_dir).glob("*.rasp"), key=lambda p: p.name) if not is_library(p)]


def collect(examples_dir=EXAMPLES) -> dict:
    """{file name: golden entry} for every program (not library) in the examples folder."""
    return {path.name: golden_entry(path) for path in programs(examples_dir)}


# --- diff -------------------------------------------------------------------------------------------

def _short(digest) -> str:
    return f"{digest[:12]}…" if isinstance(digest, str) else repr(digest)


def _change(old, new) -> str:
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) \
            and not isinstance(old, bool) and not isinstance(new, bool):
        delta = new - old
        return f"{old} -> {new} ({delta:+})"
    return f"{old!r} -> {new!r}" if isinstance(old, str) or isinstance(new, str) else f"{old} -> {new}"


def _diff_layers(name: str, old: list, new: list) -> list[str]:
    lines = []
    for i in range(max(len(old), len(new))):
        if i >= len(old):
            lines.append(f"{name}: new layer {i}: {_layer_summary(new[i])}")
        elif i >= len(new):
            lines.append(f"{name}: layer gone: {i} (was {_layer_summary(old[i])})")
        else:
            for key in sorted(set(old[i]) | set(new[i])):
                before, after = old[i].get(key), new[i].get(key)
                if before != after:
                    lines.append(f"{name}: layer {i} {key} {_change(before, after)}")
    return lines


def _layer_summary(layer) -> str:
    if not isinstance(layer, dict):
        return repr(layer)
    return ", ".join(f"{k} {v}" for k, v in layer.items() if k != "layer")


def _diff_entry(name: str, old: dict, new: dict) -> list[str]:
    lines = []
    for key in sorted(set(old) | set(new)):
        if key in ("weights_sha256", "per_layer", "program"):
            continue
        if key not in new:
            lines.append(f"{name}: field gone: {key} (was {old[key]!r})")
        elif key not in old:
            lines.append(f"{name}: new field {key} = {new[key]!r}")
        elif old[key] != new[key]:
            lines.append(f"{name}: {key} {_change(old[key], new[key])}")
    if old.get("per_layer") != new.get("per_layer"):
        lines.extend(_diff_layers(name, old.get("per_layer") or [], new.get("per_layer") or []))
    if old.get("weights_sha256") != new.get("weights_sha256"):
        lines.append(f"{name}: weights changed (sha256 {_short(old.get('weights_sha256'))} -> "
                     f"{_short(new.get('weights_sha256'))})")
    return lines


def diff(expected: dict, actual: dict) -> list[str]:
    """Readable lines, one per difference, from the golden figures to the current ones; [] if equal."""
    lines = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            lines.append(f"program gone: {name}")
        elif name not in expected:
            lines.append(f"new program {name}")
        else:
            lines.extend(_diff_entry(name, expected[name], actual[name]))
    return lines


# --- file and command line --------------------------------------------------------------------------

def dumps(golden: dict) -> str:
    return json.dumps(golden, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load(path=GOLDEN) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compiler.golden",
                                     description="Compare (or rewrite) the golden figures of the examples.")
    parser.add_argument("--update", action="store_true", help="rewrite the golden file from the current compiler")
    parser.add_argument("--examples", default=str(EXAMPLES), help="folder of example programs")
    parser.add_argument("--golden", default=str(GOLDEN), help="golden JSON file")
    args = parser.parse_args(argv)

    actual = collect(args.examples)
    golden_path = Path(args.golden)
    if args.update:
        golden_path.write_text(dumps(actual), encoding="utf-8")
        print(f"wrote {golden_path} ({len(actual)} programs)")
        return 0
    expected = load(golden_path) if golden_path.exists() else {}
    lines = diff(expected, actual)
    if lines:
        print("\n".join(lines))
        print(UPDATE_HINT)
        return 1
    print(f"golden figures match ({len(actual)} programs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
