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

from dataclasses import replace

from dsl.core import Aggregate, Program, SelectorWidth
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR
from dsl.errors import AdderError
from dsl.semantics import Evaluation, EvaluationError, evaluate
from compiler.passes.value_sets import hint_for
from compiler.check.inputs import edge_cases

PROBES = 12
# The interpreter's work grows with the square of the context for each aggregate; past this many
# (key, query) pairs in all, fewer inputs are probed (none for the widest layouts, where a probe
# would cost more than the compile). The count depends on the program alone, never on timing.
BUDGET = 60_000


@compiler_pass(sets_ir={"probes"})
def probe_inputs(ir: CompileIR) -> CompileIR:
    """The check as a step of the pipeline: after the value sets, which catch what they can
    with messages of their own. Its evaluations are kept in ir.probes for the self-check."""
    return replace(ir, probes=probe_program(ir.program))


def probe_program(program: Program) -> list[tuple[dict, list[str], Evaluation]]:
    """(operands, whole token sequence, the interpreter on all but its last token) per input probed."""
    layout = program.layout
    aggregates = sum(isinstance(n, (Aggregate, SelectorWidth)) for n in program.nodes)
    work = layout.n_ctx * layout.n_ctx * max(aggregates, 1)
    probes = []
    for operands in edge_cases(layout)[:min(PROBES, BUDGET // work)]:
        tokens = layout.prompt_tokens(operands)
        try:
            answer = program.meaning.expected(operands) if program.meaning is not None else None
            if answer is not None:  # the whole sequence the model sees: all but the last token
                tokens += layout.answer_tokens(answer)
                evaluation = evaluate(program, tokens[:layout.n_ctx])
            else:
                for _ in range(layout.answer.length):
                    evaluation = evaluate(program, list(tokens))  # tokens grows on
                    tokens.append(evaluation.output[-1])
        except EvaluationError as err:
            raise undefined_error(program, err, operands) from None
        except ValueError:
            break  # the meaning gives no answer that fits the layout: the verifier reports that
        probes.append((operands, tokens, evaluation))
    return probes


def undefined_error(program: Program, err: EvaluationError, operands: dict) -> AdderError:
    """The program is undefined on this input: an error at the node the interpreter stopped at."""
    node = err.node
    where = ", ".join(f"{name} = {value}" for name, value in operands.items())
    hint = ("take one key with first(...) or last(...), or select only keys that hold one value"
            if "categorical mean" in str(err) else hint_for(str(err)))
    return AdderError(f"{err}, on the input {where}", node.span if node is not None else None,
                      program.sources.get(node.span.file) if node is not None else None, hint)
