"""A program's meaning has two backends, exact Python integers and int64 tensors (the verifier's
millions of expected answers): they must agree on every expression the language allows."""
import random

import pytest
import torch

from dsl.meaning import evaluate
from dsl.parser import parse

# Truth values used as numbers: Python counts True as 1; a bool tensor must too (torch adds two
# bool tensors as `or`, which made verify call a right digit-counting model MISMATCH).
EXPRESSIONS = [
    "a + b", "a * b - c", "(a == 5) + (b == 5)", "(a == 5) + (b == 5) + (c == 5)", "-(a > b)",
    "(a < b) * 3", "max(a > 1, b > 1) + 1", "min(a == b, 0)", "abs(a - b) + (a != b)",
    "a if a > b else b", "(a > b) if c == 0 else 2", "not a == b", "(a == b) and (b == c)",
    "(a == 1) or (b == 1)", "(a < b < c) * 10", "(a >= b) // 1 + (a >= b) % 2", "a ** 2 + (b == 0)",
]


def _meaning(text):
    (statement,) = parse(f"meaning x = {text}\n").statements
    return statement.value


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_both_backends_agree(text):
    expression = _meaning(text)
    rng = random.Random(20261202)
    rows = [{name: rng.choice([0, 1, 5, rng.randrange(10)]) for name in "abc"} for _ in range(200)]
    tensors = {name: torch.tensor([row[name] for row in rows], dtype=torch.int64) for name in "abc"}
    got = evaluate(expression, tensors, {}, tensors=True)
    want = [int(evaluate(expression, row, {})) for row in rows]
    assert torch.as_tensor(got).dtype == torch.int64
    assert torch.as_tensor(got).expand(len(rows)).tolist() == want
