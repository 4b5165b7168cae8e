"""The fuzzing oracle: a program gets a located error, or a model that matches the interpreter.

For one program text, `check` returns an `Outcome` whose kind is one of

    compiled   it compiled, in every dtype asked for, and the model equals the interpreter
               (dsl.semantics) at every answer position of every input checked;
    located    an AdderError with a span: a message at a line, as the CLI prints it;
    unlocated  an AdderError without a span (layout-wide errors); counted apart from located ones;
    internal   any other exception, from parsing, resolving, compiling or lowering;
    mismatch   the model writes another token than the interpreter somewhere, or the interpreter
               has no value on an input of the layout although the compiler wrote a model.

(`hang` is the runner's verdict for a check that outlives its timeout.)

The comparison needs no meaning statement: the expected tokens are the interpreter's own greedy
outputs. It runs the model greedily and the interpreter once over the model's whole sequence,
which finds exactly the inputs that teacher forcing on the interpreter's greedy sequence finds:
up to the first position where the two disagree, both sequences are the same, so the model's
token there is the one teacher forcing would see, and a model that agrees everywhere has written
the interpreter's greedy sequence itself. That costs one interpreter run per input, not one per
answer position. Where the interpreter fails on the model's sequence (a wrong earlier token can
lead it where the program is undefined), it is rerun greedily on its own tokens to decide.
"""
from __future__ import annotations

import random
import time
import traceback
from dataclasses import dataclass, field

import torch

from compiler import pipeline
from compiler.api import load_compiled
from compiler.model.decode import greedy
from compiler.check.inputs import edge_cases, exhaustive, input_space_size
from dsl.errors import AdderError
from dsl.resolve import load_program
from dsl.semantics import EvaluationError, evaluate

KINDS = ("compiled", "located", "unlocated", "internal", "mismatch", "hang")
FAILURES = ("internal", "mismatch", "hang")
LONG_LAYOUT = 32  # sequence length beyond which fewer inputs are checked


@dataclass
class Outcome:
    kind: str
    message: str = ""
    detail: str = ""  # a traceback, or the input, position and tokens of a mismatch
    dtype: str = ""
    inputs: int = 0  # inputs checked per dtype, when it compiled
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.kind in FAILURES


def _from_exception(err: BaseException, dtype: str = "") -> Outcome:
    if isinstance(err, AdderError):
        return Outcome("located" if err.span is not None else "unlocated", err.message, dtype=dtype)
    head = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
    return Outcome("internal", f"{type(err).__name__}: {err}"[:500], head, dtype=dtype)


def check(text: str, path: str, *, dtypes=("float64",), overrides=None, exhaustive_limit: int = 500,
          random_inputs: int = 100, seed: int = 0) -> Outcome:
    """Parse, compile (in each dtype) and compare one program; never raises for a bad program."""
    started = time.perf_counter()
    outcome = _check(text, path, dtypes, overrides, exhaustive_limit, random_inputs, seed)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _check(text, path, dtypes, overrides, exhaustive_limit, random_inputs, seed) -> Outcome:
    try:
        program = load_program(path, overrides, text)
    except Exception as err:  # noqa: BLE001 - every other kind is what the oracle sorts
        return _from_exception(err)
    inputs = None
    for dtype in dtypes:
        try:
            ir = pipeline.compile_program(program, {"dtype": dtype, "overrides": dict(overrides or {})})
            model = load_compiled(ir)
        except Exception as err:  # noqa: BLE001
            return _from_exception(err, dtype)
        if inputs is None:
            inputs = choose_inputs(program.layout, exhaustive_limit, random_inputs, seed)
        try:
            problem = first_mismatch(model, program, inputs)
        except Exception as err:  # noqa: BLE001 - the model or the interpreter crashed on an input
            return _from_exception(err, dtype)
        if problem is not None:
            return Outcome("mismatch", problem[0], problem[1], dtype=dtype, inputs=len(inputs))
    return Outcome("compiled", dtype=",".join(dtypes), inputs=len(inputs or []))


def choose_inputs(layout, exhaustive_limit: int, random_inputs: int, seed: int) -> list[dict]:
    """Every input when there are at most `exhaustive_limit`, else the verifier's edge cases and
    seeded random ones."""
    if input_space_size(layout) <= exhaustive_limit:
        return list(exhaustive(layout))
    # The interpreter's selection matrices cost the square of the length per input: a mutant
    # with N = 102 would spend minutes here, so long layouts get proportionally fewer inputs.
    scale = min(1.0, (LONG_LAYOUT / layout.sequence_length) ** 2)
    rng = random.Random(seed)
    chosen = edge_cases(layout)[:max(1, int(len(edge_cases(layout)) * scale))]
    chosen += [{f.name: rng.randrange(layout.base ** f.width) for f in layout.operands}
               for _ in range(max(1, int(random_inputs * scale)))]
    return chosen


def _greedy_model(model, layout, prompts: list[list[str]]) -> list[list[str]]:
    """The model's whole sequences (prompt plus greedy continuation, n_ctx + 1 tokens)."""
    vocab = layout.vocab
    ids = torch.tensor([[vocab.index(t) for t in p] for p in prompts], dtype=torch.long)
    # no end token given: every row runs to the full length, so every answer position is compared
    new = greedy(model, ids, layout.sequence_length - layout.prompt_length)
    return [[vocab[i] for i in row] for row in torch.cat([ids, new], dim=1).tolist()]


def _teacher_forced(model, layout, sequence: list[str]) -> list[str]:
    """The model's argmax at every answer position of one given sequence."""
    vocab = layout.vocab
    start = layout.prompt_length - 1
    ids = torch.tensor([[vocab.index(t) for t in sequence[:-1]]], dtype=torch.long)
    with torch.no_grad():
        logits = model(ids, last=len(sequence) - 1 - start)
    return [vocab[i] for i in logits[0].argmax(dim=-1).tolist()]


def interpreter_greedy(program, prompt: list[str]) -> list[str]:
    """The interpreter's own greedy sequence: each next token is its output at the last position."""
    layout = program.layout
    sequence = list(prompt)
    while len(sequence) < layout.sequence_length:
        sequence.append(evaluate(program, sequence).output[-1])
    return sequence


def first_mismatch(model, program, inputs: list[dict]) -> tuple[str, str] | None:
    """(message, detail) for the first input where the model leaves the interpreter, or None."""
    layout = program.layout
    prompts = [layout.prompt_tokens(operands) for operands in inputs]
    start = layout.prompt_length - 1
    for operands, sequence in zip(inputs, _greedy_model(model, layout, prompts)):
        got = sequence[start + 1:]
        try:
            expected = evaluate(program, sequence[:-1]).output[start:]
        except EvaluationError:
            try:
                sequence = interpreter_greedy(program, sequence[:start + 1])
            except EvaluationError as err:
                node = getattr(err, "node", None)
                where = f" at line {node.span.line}" if node is not None and node.span else ""
                return (f"the interpreter has no value for input {operands}{where} ({err}), "
                        "but the compiler wrote a model", f"input {operands}")
            expected, got = sequence[start + 1:], _teacher_forced(model, layout, sequence)
        for offset, (want, have) in enumerate(zip(expected, got)):
            if want != have:
                position = start + offset
                text = " ".join(sequence[:position + 1])
                return (f"input {operands}: at position {position} the interpreter writes {want!r}, "
                        f"the model {have!r}", f"after: {text}")
    return None

