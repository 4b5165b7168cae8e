"""Mutants of existing programs: the small slips a user makes, applied to real program text.

Each mutant applies one to three edits to a token list (strings, names, numbers, operators and
punctuation; whitespace and comments kept as they are) or to the lines of the text: delete,
duplicate or swap tokens, change a number, swap an operator for a neighbouring one, duplicate or
delete a line. Most mutants are invalid and must get a located error; the rest must compile into
models that match the interpreter, as any program must.

Examples declare `const N = 10`; `shrink` lowers such widths first, so a mutant checks in a
fraction of a second instead of comparing 34-token sequences.
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Iterator

TOKEN = re.compile(r'"[^"\n]*"|#[^\n]*|\*\*|//|==|!=|<=|>=|=>|[A-Za-z_][A-Za-z_0-9]*|[0-9]+|\s+|.', re.S)
OPERATOR_SWAPS = {"+": ["-", "*"], "-": ["+"], "*": ["//", "+", "**"], "//": ["%", "/"], "%": ["//"],
                  "/": ["//"], "<": ["<=", ">"], "<=": ["<", ">="], ">": [">=", "<"], ">=": [">", "<="],
                  "==": ["!=", "<="], "!=": ["=="], "and": ["or", "&"], "or": ["and"], "&": ["and"],
                  "k": ["q"], "q": ["k"], "first": ["last", "mean"], "last": ["first"], "mean": ["sum", "first"],
                  "sum": ["mean"], "msb_first": ["lsb_first"], "lsb_first": ["msb_first"],
                  "indices": ["tokens"], "tokens": ["indices"], "min": ["max"], "max": ["min"]}
NUMBER_CHANGES = [0, 1, 2, 3, -1, 9, 10, 11, 100]
SMALL_N = re.compile(r"^(const\s+N\s*=\s*)(\d+)", re.M)
DOC_BLOCK = re.compile(r"^```rasp\n(.*?)^```", re.M | re.S)  # "```rasp broken" blocks are left out


def shrink(text: str, width: int = 2) -> str:
    """The program with `const N = ...` set to `width`, so the mutants of a 10-digit example run fast."""
    return SMALL_N.sub(lambda m: f"{m.group(1)}{width}", text)


def _tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def _significant(tokens: list[str]) -> list[int]:
    return [i for i, t in enumerate(tokens) if not t.isspace() and not t.startswith("#")]


def _token_edit(rng: random.Random, text: str) -> str:
    tokens = _tokens(text)
    places = _significant(tokens)
    if not places:
        return text
    i = rng.choice(places)
    edit = rng.choice(["delete", "duplicate", "swap", "number", "operator", "operator"])
    if edit == "delete":
        tokens[i] = ""
    elif edit == "duplicate":
        tokens[i] = tokens[i] + " " + tokens[i]
    elif edit == "swap":
        later = [j for j in places if j > i]
        if later:
            j = later[0]
            tokens[i], tokens[j] = tokens[j], tokens[i]
    elif edit == "number":
        numbers = [j for j in places if tokens[j].isdigit()] or [i]
        j = rng.choice(numbers)
        change = rng.choice(NUMBER_CHANGES)
        tokens[j] = str(max(0, int(tokens[j]) + change)) if tokens[j].isdigit() and rng.random() < 0.5 \
            else str(abs(change))
    else:
        swappable = [j for j in places if tokens[j] in OPERATOR_SWAPS] or [i]
        j = rng.choice(swappable)
        if tokens[j] in OPERATOR_SWAPS:
            tokens[j] = rng.choice(OPERATOR_SWAPS[tokens[j]])
    return "".join(tokens)


def _line_edit(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    code = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if not code:
        return text
    i = rng.choice(code)
    if rng.random() < 0.5:
        lines.insert(i, lines[i])
    else:
        del lines[i]
    return "".join(lines)


def mutate(text: str, rng: random.Random) -> str:
    """One mutant: one to three edits, most of them to tokens."""
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        text = _line_edit(rng, text) if rng.random() < 0.2 else _token_edit(rng, text)
    return text


def mutants(text: str, seed: int, count: int) -> Iterator[str]:
    """`count` mutants of one program text, from one seed."""
    rng = random.Random(seed)
    for _ in range(count):
        yield mutate(text, rng)


def corpus(root: Path) -> list[tuple[Path, str]]:
    """(path, shrunk text) of every program the project ships: examples, the tutorial, the docs'
    reference layout and examples, and the bad programs (their imports resolve beside them)."""
    paths = sorted([*root.glob("examples/*.rasp"), *root.glob("docs/tutorial/*.rasp"),
                    *root.glob("docs/reference/*.rasp"), *root.glob("tests/bad_programs/*.rasp")])
    sources = [(path, shrink(path.read_text())) for path in paths]
    # docs/language.md's examples import "layout3.rasp": named as if beside it, they resolve
    language = root / "docs" / "language.md"
    for index, block in enumerate(DOC_BLOCK.findall(language.read_text()) if language.exists() else []):
        sources.append((root / "docs" / "reference" / f"language_example_{index}.rasp", block))
    return sources
