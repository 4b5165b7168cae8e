"""A check that no compile writes a model that disagrees with its program (compiler.passes.precision
is the one before any weight is built).

`self_check`, after `lower`: the emitted model, in the emitted dtype, runs teacher-forced on the
layout's first edge cases and a few seeded random inputs, as many as a fixed budget of interpreter
work allows. On each, every stored program value is decoded right after the sublayer that writes
it and compared with the interpreter (dsl.semantics), within the margin its readers were built
with: a quarter of the gap between neighbouring values of a number (MLP kinks sit a quarter gap
away from every input value), a quarter of a one-hot. Every answer position's argmax must be the
program's token, by a logit gap that float rounding of the logits cannot close. A layout too wide
for the interpreter is checked against the program's meaning (a disagreement is confirmed with the
interpreter where it can be afforded), and always for a logit gap. The first failure, in the
order the model computes values, is an error at the line of that program node.
The check is evidence on a few inputs, as the probe is; `adderc verify` and `--prove` go further.
"""
from __future__ import annotations

import math

import torch

from dsl.core import Aggregate, SelectorWidth
from dsl.errors import AdderError
from dsl.semantics import EvaluationError, evaluate, num
from compiler.check.stored import exact_stored, same_value
from compiler.ir.attrs import NODE, VALUES
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR
from compiler.ir.maps import UNREAD, ResidualEntry
from compiler.model.decode import greedy
from compiler.model.transformer import CompiledTransformer
from compiler.passes.precision import EPSILON
from compiler.passes.probe import undefined_error
from compiler.check.inputs import edge_cases, random_batches

# Interpreter work, in (key, query) pairs over every aggregate, that the check may spend: about
# a quarter of a second on the 2-core development machine. Counts, never timings, decide it.
WORK_BUDGET = 200_000
MAX_INPUTS = 24
RANDOM_INPUTS = 12
SEED = 20261201
# A disagreement with the meaning on a layout too wide for the budget is confirmed with the
# interpreter up to this much work (only on that failure), else reported against the meaning.
CONFIRM_LIMIT = 40 * WORK_BUDGET
# Attention scores of a content-reading head, in floats, per model call: wide layouts go in
# smaller batches.
SCORE_BUDGET = 1 << 25
WIDE_INPUTS = 2
ONE_HOT_MARGIN = 0.25
# Float rounding of a logit is at most this many units of the dtype's epsilon times its size.
LOGIT_ROUNDING = 64


@compiler_pass(reads={NODE, VALUES}, reads_ir={"options", "lowered", "probes", "residual_map"})
def self_check(ir: CompileIR) -> CompileIR:
    """The lowered model against the interpreter (or, when too wide, the meaning). Raises an
    AdderError at the first offending node; the IR passes through unchanged."""
    if not ir.options.get("self_check", True):  # the prover recompiles a model checked when it was written
        return ir
    config, state = ir.lowered
    model = CompiledTransformer(config)
    model.load_state_dict(state)
    model.eval()
    checker = _Checker(ir, model)
    layout = ir.program.layout
    # The probe's evaluations are reused; a few seeded random inputs add what edge cases miss.
    extra = min(RANDOM_INPUTS, WORK_BUDGET // checker.work_per_input())
    cases = list(ir.probes)
    if extra:
        cases += checker.evaluated(next(random_batches(layout, extra, SEED, extra), []))
    if cases:
        checker.against_interpreter(cases)
        return ir
    # Too wide for the interpreter: a few edge cases spread over the list (zeros, the longest
    # carries, the largest operands...), as many as one batch of the model takes.
    candidates = edge_cases(layout)
    count = min(len(candidates), max(WIDE_INPUTS, checker.model_batch()), MAX_INPUTS)
    inputs = [candidates[i * len(candidates) // count] for i in range(count)]
    if ir.program.meaning is not None:
        checker.against_meaning(inputs)
    else:  # nothing to compare with: the model's own answers must at least be unambiguous
        checker.own_answers(inputs)
    return ir


class _Checker:
    def __init__(self, ir: CompileIR, model: CompiledTransformer):
        self.ir, self.model = ir, model
        self.program, self.layout = ir.program, ir.program.layout
        self.dtype = ir.lowered[0]["dtype"]
        self.index = {t: i for i, t in enumerate(self.layout.vocab)}
        self.entries = sorted((e for e in map(ResidualEntry.from_dict, ir.residual_map) if not e.helper),
                              key=lambda e: (e.sublayer, e.dims[0]))

    def work_per_input(self) -> int:
        aggregates = sum(isinstance(n, (Aggregate, SelectorWidth)) for n in self.program.nodes)
        runs = 1 if self.program.meaning is not None else self.layout.answer.length
        return self.layout.n_ctx * self.layout.n_ctx * max(aggregates, 1) * runs

    def model_batch(self) -> int:
        # A head whose pattern is fixed by position keeps one pattern for the whole batch.
        heads = max([int((~b.attn.content_free()).sum()) for b in self.model.blocks if b.attn is not None] + [1])
        return max(1, SCORE_BUDGET // (self.layout.n_ctx * self.layout.n_ctx * heads))

    # --- the sequences
    def _sequence(self, operands):
        """The whole sequence, prompt and answer, or None where the meaning gives no answer that
        fits the layout (the verifier reports those). The model reads all but its last token."""
        tokens = self.layout.prompt_tokens(operands)
        if self.program.meaning is not None:
            try:
                return tokens + self.layout.answer_tokens(self.program.meaning.expected(operands))
            except (ValueError, EvaluationError):
                return None
        try:
            while len(tokens) < self.layout.sequence_length:
                tokens.append(evaluate(self.program, tokens).output[-1])
        except EvaluationError as err:
            raise undefined_error(self.program, err, operands) from None
        return tokens

    def evaluated(self, inputs) -> list:
        """(operands, whole sequence, the interpreter on what the model reads) per input."""
        cases = []
        for operands in inputs:
            tokens = self._sequence(operands)
            if tokens is not None:
                cases.append((operands, tokens, None))
        return [self._complete(case) for case in cases]

    def _complete(self, case):
        operands, tokens, evaluation = case
        seen = tokens[:self.layout.n_ctx]
        if evaluation is None or len(evaluation.output) != len(seen):
            try:
                evaluation = evaluate(self.program, seen)
            except EvaluationError as err:
                raise undefined_error(self.program, err, operands) from None
        return operands, seen, evaluation

    def _run(self, rows):
        """(residual states, logits) for equal-length token rows, in batches a wide layout affords."""
        states, logits = [], []
        batch = self.model_batch()
        with torch.no_grad():
            for start in range(0, len(rows), batch):
                part = self.model.residuals(self._ids(rows[start:start + batch]))
                states.append(part)
                logits.append(self._logits(part[-1]))
        return [torch.cat(s) for s in zip(*states)], torch.cat(logits)

    def _answer_logits(self, rows):
        """Logits at the answer positions only (the final layer runs there alone), NaN elsewhere."""
        answers = self.layout.n_ctx - (self.layout.prompt_length - 1)
        logits = []
        with torch.no_grad():
            for start in range(0, len(rows), self.model_batch()):
                ids = self._ids(rows[start:start + self.model_batch()])
                part = torch.full((*ids.shape, len(self.layout.vocab)), math.nan, dtype=torch.float64)
                part[:, -answers:] = self.model(ids, last=answers).to(torch.float64)
                logits.append(part)
        return torch.cat(logits)

    def _ids(self, rows):
        return torch.tensor([[self.index[t] for t in r[:self.layout.n_ctx]] for r in rows])

    def _logits(self, x):
        state = dict(self.model.named_parameters())
        W_U = (state["embed.W_E"].T * state["unembed.logit_scale"] if "unembed.logit_scale" in state
               else state["unembed.W_U"])
        return x @ W_U + state["unembed.b_U"]

    # --- the checks
    def against_interpreter(self, cases):
        cases = [self._complete(case) for case in cases]
        states, logits = self._run([seen for _, seen, _ in cases])
        for entry in self.entries:  # in the order the model computes them: the first is the cause
            allowed = self._allowed(entry)
            for row, (operands, _, evaluation) in enumerate(cases):
                self._stored(entry, allowed, states[entry.sublayer][row], evaluation.values, operands)
        for row, (operands, _, evaluation) in enumerate(cases):
            self._answers(logits[row], evaluation.output, operands)

    def against_meaning(self, inputs):
        cases = [(o, s) for o in inputs if (s := self._sequence(o)) is not None]
        if not cases:
            return
        logits = self._answer_logits([s for _, s in cases])
        for row, (operands, tokens) in enumerate(cases):
            try:  # the meaning's next token at every position
                self._answers(logits[row], tokens[1:], operands, against="its meaning")
            except AdderError:
                if self.work_per_input() > CONFIRM_LIMIT:
                    raise
                # The program itself may disagree with its meaning: the model answers to the program.
                self._answers(logits[row], self._complete((operands, tokens, None))[2].output, operands)

    def own_answers(self, inputs):
        prompts = torch.tensor([[self.index[t] for t in self.layout.prompt_tokens(o)] for o in inputs])
        width = self.layout.sequence_length - self.layout.prompt_length
        with torch.no_grad():
            answers = greedy(self.model, prompts, width)
        rows = [[self.layout.vocab[i] for i in row] for row in torch.cat([prompts, answers], dim=1).tolist()]
        logits = self._answer_logits(rows)
        for row, (operands, tokens) in enumerate(zip(inputs, rows)):
            self._answers(logits[row], tokens[1:], operands)

    def _stored(self, entry: ResidualEntry, allowed, state, values, operands):
        """One stored value at every position of one input, within the margin its readers have."""
        want = exact_stored(entry, values)
        if want is None:
            return
        got = entry.decode_all(state)
        if entry.encoding == "numerical":
            errors = (torch.tensor(got, dtype=torch.float64) - torch.tensor([float(w) for w in want],
                                                                           dtype=torch.float64)).abs()
        else:
            block = state[:len(want), list(entry.dims)].to(torch.float64)
            target = torch.zeros_like(block)
            for position, (exact, decoded) in enumerate(zip(want, got)):
                if not same_value(entry, decoded, exact):
                    target[position] = math.nan  # the wrong value: no margin can hold
                elif str(exact) in entry.values and float(block[position].max()) >= 0.5:
                    target[position, entry.values.index(str(exact))] = 1
            errors = (block - target).abs().amax(dim=1)
        bad = (~(errors <= allowed)).nonzero()  # a NaN fails too
        if len(bad):
            position = int(bad[0, 0])
            error = float(errors[position])
            shown = f"{got[position]:.6g}" if entry.encoding == "numerical" else \
                ("nothing (all zero)" if got[position] == UNREAD else f"'{got[position]}'")
            self._fail_value(entry, operands, position, shown, want[position], error, allowed)

    def _allowed(self, entry: ResidualEntry) -> float:
        if entry.encoding != "numerical":
            return ONE_HOT_MARGIN
        numbers = sorted({num(v) for v in self.ir.graph.nodes[entry.id][VALUES] if not isinstance(v, str)})
        if len(numbers) < 2:
            return ONE_HOT_MARGIN
        return float(min(b - a for a, b in zip(numbers, numbers[1:]))) / 4

    def _answers(self, logits, written, operands, against="the program"):
        """Every answer position's argmax is the written token, by a gap rounding cannot close."""
        first = self.layout.prompt_length - 1
        room = LOGIT_ROUNDING * EPSILON[self.dtype] * (1 + float(logits[first:].abs().max()))
        for position in range(first, logits.shape[0]):
            want = self.index[written[position]]
            others = logits[position].clone()
            others[want] = -math.inf
            gap = float(logits[position, want] - others.max())
            if gap > room:
                continue
            got = self.layout.vocab[int(logits[position].argmax())]
            what = (f"writes '{got}' where {against} writes '{written[position]}'" if gap <= 0 else
                    f"writes '{written[position]}' by a logit gap of only {gap:.3g}, within float rounding "
                    f"({room:.3g})")
            self._raise(self.program.output.id, f"the {self.dtype} model {what}, on the input "
                        f"{_where(operands)} at position {position}", self._hint(None))

    def _fail_value(self, entry: ResidualEntry, operands, position, got, exact, error, allowed):
        value = f"'{entry.node}'"
        if entry.sum_of is not None:  # terms written into one dimension cannot be told apart: name them all
            terms = " + ".join(f"'{t.node}'" for t in entry.sum_of)
            value = f"the dimension of '{entry.node}' (holding {terms})"
        lost = "loses this value" if error < 1 else "computes this value wrongly"
        error = "the wrong value" if math.isnan(error) else f"error {error:.3g}"
        self._raise(entry.id, f"{self.dtype} {lost}: on the input {_where(operands)}, at position {position}, "
                    f"{value} is {got} where the program has {_shown(exact)} ({error}, allowed "
                    f"{allowed:.3g})", self._hint(entry))

    def _hint(self, entry: ResidualEntry | None) -> str:
        top = ""
        if entry is not None and entry.encoding == "numerical":
            numbers = [abs(num(v)) for v in self.ir.graph.nodes[entry.id][VALUES] if not isinstance(v, str)]
            top = f" (this one reaches {float(max(numbers)):.3g})" if numbers else ""
        if self.dtype == "float32":
            return f"compile in float64 (--dtype float64), or keep values smaller{top}"
        return (f"keep values smaller{top}, or combine fewer terms in one step; if neither is the cause, "
                f"the compiler built this model wrong: please report it")

    def _raise(self, nid, message, hint):
        node = self.ir.graph.nodes[nid][NODE]
        raise AdderError(message, node.span, self.program.sources.get(node.span.file), hint)


def _where(operands: dict) -> str:
    return ", ".join(f"{name} = {value}" for name, value in operands.items())


def _shown(value) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)
