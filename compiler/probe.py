"""A check after the value sets: run the program on a few inputs, so that an operation undefined
on some input (a categorical mean over keys holding different values, which no value set shows)
is reported at its line and column now, not first found by the verifier after compiling.

The inputs are the layout's first edge cases (zeros, ones, the largest operands...), as many as
a fixed budget of interpreter work allows for the layout's width, each with
the answer its meaning gives, or the answer the program writes itself when it states none. A
probe is a quick check, not a proof: `adderc verify` still decides whether the program is
defined, and right, everywhere.
"""
from __future__ import annotations

from dsl.core import Aggregate, Program, SelectorWidth
from compiler.ir import CompileIR
from dsl.errors import AdderError
from dsl.semantics import EvaluationError, evaluate
from compiler.value_sets import hint_for
from compiler.verify_inputs import edge_cases

PROBES = 12
# The interpreter's work grows with the square of the context for each aggregate; past this many
# (key, query) pairs in all, fewer inputs are probed (none for the widest layouts, where a probe
# would cost more than the compile). The count depends on the program alone, never on timing.
BUDGET = 60_000


def probe_inputs(ir: CompileIR) -> CompileIR:
    """The check as a step of the pipeline: after the value sets, which catch what they can
    with messages of their own; the IR passes through unchanged."""
    probe_program(ir.program)
    return ir


def probe_program(program: Program) -> None:
    layout = program.layout
    aggregates = sum(isinstance(n, (Aggregate, SelectorWidth)) for n in program.nodes)
    work = layout.n_ctx * layout.n_ctx * max(aggregates, 1)
    for operands in edge_cases(layout)[:min(PROBES, BUDGET // work)]:
        tokens = layout.prompt_tokens(operands)
        try:
            answer = program.meaning.expected(operands) if program.meaning is not None else None
            if answer is not None:  # the whole sequence the model sees: all but the last token
                evaluate(program, (tokens + layout.answer_tokens(answer))[:layout.n_ctx])
            else:
                for _ in range(layout.answer.width):
                    tokens.append(evaluate(program, tokens).output[-1])
        except EvaluationError as err:
            node = err.node
            where = ", ".join(f"{name} = {value}" for name, value in operands.items())
            hint = ("take one key with first(...) or last(...), or select only keys that hold one value"
                    if "categorical mean" in str(err) else hint_for(str(err)))
            raise AdderError(f"{err}, on the input {where}", node.span if node is not None else None,
                             program.sources.get(node.span.file) if node is not None else None, hint) from None
        except ValueError:
            return  # the meaning gives no answer that fits the layout: the verifier reports that
