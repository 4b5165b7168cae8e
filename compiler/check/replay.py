"""Replaying inputs through a model file's model: its answers against the program's, and the first
input it gets wrong, as greedy generation writes it. The verifier checks its input sets this way,
and the prover turns a failed check into a counterexample only if a replayed input is wrong."""
from __future__ import annotations

import torch

from dsl.semantics import EvaluationError, evaluate
from compiler.check import inputs
from compiler.model.decode import greedy, trim
from compiler.model.transformer import CompiledTransformer


def model_in(payload, dtype: str, device: str) -> CompiledTransformer:
    config = dict(payload["config"], dtype=dtype)
    model = CompiledTransformer(config)
    model.load_state_dict({k: v.to(getattr(torch, dtype)) for k, v in payload["state_dict"].items()})
    return model.eval().to(device)


def expected_answer(layout, expected_fn, operands):
    """(answer, answer tokens, None), or (None, None, why) where the meaning gives no answer that
    fits the layout: such an input is a mismatch to report, not a crash."""
    try:
        answer = expected_fn(operands)
        return answer, layout.answer_tokens(answer), None
    except (ValueError, EvaluationError) as err:
        return None, None, str(err)


def sequences(layout, operand_batch, expected_fn):
    """Whole sequences for the inputs whose expected answer exists, and the others with the reason."""
    kept, rows, answers, undefined = [], [], [], []
    for operands in operand_batch:
        answer, tokens, why = expected_answer(layout, expected_fn, operands)
        if why is not None:
            undefined.append((operands, why))
            continue
        kept.append(operands)
        rows.append(layout.prompt_tokens(operands) + tokens)
        answers.append(answer)
    return kept, rows, answers, undefined


def teacher_forced(model, layout, rows, device):
    """(wrong per row, smallest logit gap per row) over every answer position."""
    index = {t: i for i, t in enumerate(layout.vocab)}
    return teacher_forced_ids(model, layout, torch.tensor([[index[t] for t in row] for row in rows], device=device))


def teacher_forced_ids(model, layout, ids):
    """teacher_forced for sequences already given as token ids (a tensor of them)."""
    start = layout.prompt_length - 1
    with torch.no_grad():
        logits = model(ids[:, :-1], last=ids.shape[1] - 1 - start)
    target = ids[:, start + 1:]
    right = logits.gather(-1, target[..., None])[..., 0]
    others = logits.scatter(-1, target[..., None], float("-inf")).max(-1).values
    gap = (right - others).min(dim=1).values
    wrong = (logits.argmax(-1) != target).any(dim=1)
    return wrong.cpu(), gap.cpu()


def expected_function(program, layout):
    if program.meaning is not None:
        return program.meaning.expected
    # Without a stated meaning the program itself is the reference: run the interpreter.
    def by_interpreter(operands):
        tokens = layout.prompt_tokens(operands)
        for _ in range(layout.answer.length):
            tokens.append(evaluate(program, tokens).output[-1])
        return layout.answer_value(tokens[layout.prompt_length:layout.prompt_length + layout.answer.length])
    return by_interpreter


def counterexample(model, layout, operands, answer, dtype, source, device):
    index = {t: i for i, t in enumerate(layout.vocab)}
    prompt = layout.prompt_tokens(operands)
    ids = torch.tensor([[index[t] for t in prompt]], device=device)
    end_id = index.get(layout.end_token)
    row = greedy(model, ids, layout.sequence_length - layout.prompt_length, end_id)[0].tolist()
    got = "".join(layout.vocab[i] for i in trim(row, end_id))
    expected = layout.answer_tokens(answer)
    return {"dtype": dtype, "source": source, "operands": operands,
            "expected": layout.written_answer(expected), "got": got,
            "carry_pattern": inputs.carry_pattern(layout, operands) if len(layout.operands) >= 2 else None}


def first_wrong_input(payload: dict, program, dtype: str, *, seed: int = 20261122, budget: int = 20_000,
                      device: str = "cpu") -> dict | None:
    """An input of the layout that the model (in `dtype`) answers wrong, or None: the verifier's
    own inputs (all of them for a layout of at most `budget`, else edge cases, carry strata and
    seeded random ones) replayed through the model. What it returns was regenerated greedily,
    so its "got" is what the model really writes."""
    layout = program.layout
    if program.meaning is None:  # the interpreter is the reference: slow, so fewer inputs
        budget = min(budget, 2_000)
    model = model_in(payload, dtype, device)
    expected_fn = expected_function(program, layout)
    if inputs.input_space_size(layout) <= budget:
        candidates = list(inputs.exhaustive(layout))
    else:
        candidates = inputs.edge_cases(layout)[:budget // 2]
        if len(layout.operands) >= 2:
            candidates += inputs.stratified(layout, 1, seed)[:budget // 4]
        candidates += next(inputs.random_batches(layout, max(1, budget - len(candidates)), seed + 4, budget), [])
    for start in range(0, len(candidates), 8192):
        chunk, rows, answers, _ = sequences(layout, candidates[start:start + 8192], expected_fn)
        if not rows:
            continue  # an input the meaning has no answer for says nothing about the model
        wrong, _ = teacher_forced(model, layout, rows, device)
        for i in wrong.nonzero()[:, 0].tolist():
            found = counterexample(model, layout, chunk[i], answers[i], dtype, "replay", device)
            if found["got"] != found["expected"]:
                return found
    return None
