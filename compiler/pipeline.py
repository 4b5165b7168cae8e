"""The whole compiler on one screen: each pass is a plain function from one IR to the next.

`python -m compiler.pipeline` prints what each pass reads and adds (their declarations, see
compiler.ir.contract) as the markdown table docs/architecture.md shows.
"""
from __future__ import annotations

import time

from dsl.core import Program
from compiler.ir.compile_ir import CompileIR
from compiler.ir.contract import contract_table
from compiler.passes.allocate import allocate
from compiler.passes.build_graph import build_graph
from compiler.passes.encodings import choose_encodings
from compiler.passes.lower import lower
from compiler.passes.pair_heads import pair_offset_heads
from compiler.passes.probe import probe_inputs
from compiler.passes.prune import prune
from compiler.passes.schedule import schedule
from compiler.passes.precision import check_precision
from compiler.passes.self_check import self_check
from compiler.passes.share import share_sums
from compiler.passes.structure import find_structure
from compiler.passes.tie import tie_unembedding
from compiler.passes.value_sets import infer_value_sets
from compiler.passes.weights.build import build_weights

PASSES = [
    infer_value_sets,   # 2. every value each node can take (exact, sympy)
    probe_inputs,       # (a check) run on a few inputs: an undefined operation is an error at its line
    choose_encodings,   # 3. one-hot or scalar; embedded, derived, attention, MLP or fused
    check_precision,    # (a check) a value the emitted dtype cannot tell from its neighbours is an error
    schedule,           # 4. attention and MLP sublayers, as shallow as the dependencies allow
    share_sums,         # 5. terms of a sum that nothing else reads: one dimension for them all
    pair_offset_heads,  # 6. two shifts of one value at neighbouring offsets in a sum: one head
    allocate,           # 7. residual dimensions for the values that must be stored
    build_weights,      # 8. every weight as an exact sympy value, tagged with its program node
    prune,              # 9. drop zero weights and dimensions, heads and units that carry nothing
    tie_unembedding,    # 10. W_U stored as a multiple of W_E^T when it is one
    lower,              # 11. dense torch tensors
    find_structure,     # 12. equal entries tied, vocabulary lines as polynomials in the digit
    self_check,         # (a check) the model, in its dtype, against the interpreter: a wrong one is an error
]
# Every pass in order, build_graph first: what compiler.ir.contract checks and tabulates.
PIPELINE = [build_graph, *PASSES]


def compile_program(program: Program, options: dict | None = None, after_pass=None) -> CompileIR:
    """The compiled IR; `after_pass(n)`, if given, is called once each pass is done (progress)."""
    started = time.perf_counter()
    ir: CompileIR = build_graph(program, options)  # 1. the program graph (networkx DAG)
    for compiler_pass in PASSES:
        ir = compiler_pass(ir)
        if after_pass is not None:
            after_pass(1)
    ir.options["compile_seconds"] = time.perf_counter() - started
    return ir


if __name__ == "__main__":
    print(contract_table(PIPELINE), end="")
