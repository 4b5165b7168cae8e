"""One block of hidden units per MLP node: an exact piecewise-linear function of its inputs.

The MLP's inputs (its frontier, less the inputs affine in the others: compiler.ir.forms) each
have a finite value set, so the node's function (with every fused step inside it) is evaluated
with sympy over their grid of combinations. compiler.passes.weights.ridges lists ways to write it
as a sum of ridge functions of the inputs (a mixed-radix code of all of them in each order; one
affine form plus an affine rest; a conditional chain on two-valued inputs, one ridge per branch,
compiler.passes.weights.branches); each is built by `piecewise_linear_vectors`, units relu(c - t)
that reproduce it exactly at every code with every kink a quarter gap away from any code, and
the block with the fewest nonzero weights is kept.
"""
from __future__ import annotations

import itertools
from fractions import Fraction

import sympy

from dsl.errors import AdderError
from dsl.semantics import EvaluationError, num, value_from_inputs
from compiler.ir.attrs import (
    DEPENDENT, DIMS, ENCODING, FRONTIER, HELPER_DIM, IN_PLACE, LABEL, NODE, REALIZE, SHARE, VALUES,
)
from compiler.ir.compile_ir import Affine, CompileIR
from compiler.ir.reads import Reads
from compiler.passes.value_sets import MAX_VALUES, hint_for
from compiler.ir.weights import MLPBlock
from compiler.passes.weights.branches import Ramp, branch_parts, branch_ramps, branches
from compiler.passes.weights.ridges import SEARCH_LIMIT, Input, candidates, exact, expression_directions


def _code_input(reads: Reads, graph, nid) -> Input:
    """An input's code of each value (its rank when categorical, read off its one-hot), and the
    code's linear read."""
    attrs = graph.nodes[nid]
    values = attrs[VALUES]
    if attrs[ENCODING] == "categorical":
        read = Affine()
        for rank, value in enumerate(values):
            read = read + reads.categorical(nid)[value].scale(rank)
        return Input([Fraction(r) for r in range(len(values))], read)
    return Input([exact(num(v)) for v in values], reads.numeric(nid))


def build_mlp(ir: CompileIR, nid: int, reads: Reads) -> MLPBlock:
    graph = ir.graph
    attrs = graph.nodes[nid]
    inputs = [_code_input(reads, graph, f) for f in attrs[FRONTIER]]
    vector = lambda value: output_vector(attrs, value)
    chain = branches(graph, nid, attrs[FRONTIER])
    values = [graph.nodes[f][VALUES] for f in attrs[FRONTIER]]
    gated = [] if chain is None else [parts for parts in (branch_parts(chain, inputs, values, vector),
                                                          branch_ramps(chain, inputs, values, vector))
                                      if parts is not None]
    if gated and _combinations(graph, attrs) > SEARCH_LIMIT:
        # Each branch's term is checked over its own inputs: the whole grid is not needed.
        return _as_sympy(min((_block(nid, attrs[LABEL], parts) for parts in gated), key=_nonzero))
    grid = _output_grid(ir, nid, reads, inputs)
    options = candidates(inputs, grid, expression_directions(graph, nid, attrs[FRONTIER])) + gated
    best = min((_block(nid, attrs[LABEL], parts) for parts in options), key=_nonzero)  # the first of equals
    return _as_sympy(best)


def _block(nid, label, parts) -> MLPBlock:
    block = MLPBlock(nid, label)
    for part in parts:
        if isinstance(part, Ramp):  # one unit that is relu(read), never near its kink
            add_unit(block, part.read, part.out)
        else:
            piecewise_linear_vectors(block, part.read, part.table)
    return block


def _combinations(graph, attrs) -> int:
    combos = 1
    for f in attrs[FRONTIER]:
        combos *= len(graph.nodes[f][VALUES])
    return combos


def _output_grid(ir: CompileIR, nid: int, reads: Reads, inputs: list[Input]) -> dict:
    """{one code per input: the output vector ({dim: value}) the MLP must write there}."""
    graph, base = ir.graph, ir.program.layout.base
    attrs = graph.nodes[nid]
    node, frontier = attrs[NODE], attrs[FRONTIER]

    def fail(message, hint=None):
        raise AdderError(message, node.span, ir.program.sources.get(node.span.file), hint)

    combos = _combinations(graph, attrs)
    if combos > MAX_VALUES:
        fail(f"'{attrs[LABEL]}' needs a table over {combos} input combinations, too many for one MLP",
             "store an intermediate value with its own let, or give an input fewer values")
    # Updating its input's dimension in place (compiler.passes.allocate), the MLP adds f(x) minus what
    # the dimension holds now.
    held = None
    if IN_PLACE in attrs:
        x_read = reads.numeric(attrs[IN_PLACE])
        (slope,) = x_read.coeffs.values()
        held = lambda env: (num(env[attrs[IN_PLACE]]) - x_read.bias) / slope
    grid = {}
    columns = [list(zip(graph.nodes[f][VALUES], item.codes)) for f, item in zip(frontier, inputs)]
    for combo in itertools.product(*columns):
        env = {f: value for f, (value, _) in zip(frontier, combo)}
        try:
            value = value_through_fused(graph, nid, env, base)
        except EvaluationError as err:
            fail(f"cannot compile '{attrs[LABEL]}': {err} for some input the layout allows",
                 hint_for(str(err)))
        if held is not None:  # the new value in the dimension's encoding, less what it holds
            value = (num(value) - x_read.bias) / slope - held(env)
        grid[tuple(code for _, code in combo)] = output_vector(attrs, value)
    return grid


def output_vector(attrs, value) -> dict:
    """{dim: exact value} the MLP writes for one value of its node."""
    if attrs[ENCODING] == "categorical":
        return {attrs[DIMS][attrs[VALUES].index(value)]: Fraction(1)}
    return {attrs[DIMS][0]: exact(num(value) * attrs.get(SHARE, (None, 1))[1])}  # a share of a sum: scaled


def _nonzero(block: MLPBlock) -> int:
    return sum(1 for table in (block.W_in, block.b_in, block.W_out, block.b_out) for v in table.values() if v != 0)


def _as_sympy(block: MLPBlock) -> MLPBlock:
    """The block with every number exact sympy, as the IR keeps weights."""
    convert = lambda table: {k: sympy.Rational(v) if isinstance(v, Fraction) else v for k, v in table.items()
                             if v != 0}
    block.W_in, block.b_in = convert(block.W_in), convert(block.b_in)
    block.W_out, block.b_out = convert(block.W_out), convert(block.b_out)
    return block


def build_width_mlp(ir: CompileIR, nid: int) -> MLPBlock:
    """selector_width's second half: the head left f = w/(w+1) in a helper dimension; map it to w."""
    attrs = ir.graph.nodes[nid]
    table = {sympy.Integer(w) / (w + 1): sympy.Integer(w) for w in (int(v) for v in attrs[VALUES])}
    code_read = Affine({attrs[HELPER_DIM]: sympy.Integer(1)})
    return piecewise_linear(MLPBlock(nid, attrs[LABEL]), code_read, table, attrs)


def piecewise_linear(block: MLPBlock, code_read: Affine, table: dict, attrs) -> MLPBlock:
    """Hidden units computing the node's value table[code] exactly at every code."""
    return piecewise_linear_vectors(block, code_read, {c: output_vector(attrs, v) for c, v in table.items()})


def piecewise_linear_vectors(block: MLPBlock, code_read: Affine, table: dict) -> MLPBlock:
    """Hidden units adding the vector table[code] ({dim: value}) to the block's output exactly at
    every code, as a piecewise-linear function of the code.

    The codes split into maximal runs of collinear points. The function follows each run's line
    and crosses each gap between runs on a straight segment from a quarter of the gap past the
    last code to a quarter before the next. So every kink sits a quarter gap away from any code
    (a small input error never flips a ReLU), and flat runs pass no error on. Each slope change is
    one unit relu(code - t); output dimensions that change slope at the same t share it.
    """
    codes = sorted(table)
    vectors = [table[c] for c in codes]
    dims = sorted({d for v in vectors for d in v})
    gaps = [b - a for a, b in zip(codes, codes[1:])]
    margin = (min(gaps) if gaps else 1) / 4
    knots: dict = {}  # t -> {dim: slope change}
    for dim in dims:
        ys = [v.get(dim, 0) for v in vectors]
        start_slope, bias, changes = ramp_changes(codes, ys, margin)
        block.b_out[dim] = block.b_out.get(dim, 0) + bias
        for t, change in ([(codes[0] - margin, start_slope)] if start_slope != 0 else []) + changes:
            knots.setdefault(t, {})
            knots[t][dim] = knots[t].get(dim, 0) + change
    block.b_out = {d: v for d, v in block.b_out.items() if v != 0}
    for t in sorted(knots):
        changes = {d: v for d, v in knots[t].items() if v != 0}
        if changes:
            add_unit(block, code_read + Affine.constant(-t), changes)
    return block


def add_unit(block: MLPBlock, pre: Affine, out: dict):
    """One more hidden unit: relu(pre), adding out[dim] times it to each output dimension."""
    unit = block.units
    block.units += 1
    block.W_in.update({(dim, unit): c for dim, c in pre.coeffs.items()})
    if pre.bias != 0:
        block.b_in[unit] = pre.bias
    block.W_out.update({(unit, dim): v for dim, v in out.items()})


def ramp_changes(codes, ys, margin):
    """(slope before the first knot, output bias, [(knot, slope change)]) reproducing ys at codes.

    The function is ys[0] + slope0 * (c - codes[0]) near the first code; a unit relu(c - t0) with
    t0 = codes[0] - margin carries slope0 (hence the bias correction)."""
    runs, i = [], 0
    while i < len(codes):
        j = i
        slope = (ys[i + 1] - ys[i]) / (codes[i + 1] - codes[i]) if i + 1 < len(codes) else sympy.Integer(0)
        while j + 1 < len(codes) and (ys[j + 1] - ys[j]) / (codes[j + 1] - codes[j]) == slope:
            j += 1
        if j == i:
            slope = sympy.Integer(0)
        runs.append((i, j, slope))
        i = j + 1
    start_slope = runs[0][2]
    bias = ys[0] - start_slope * margin if start_slope != 0 else ys[0]
    changes, current = [], start_slope
    for (a0, a1, slope_a), (b0, b1, slope_b) in zip(runs, runs[1:]):
        gap = codes[b0] - codes[a1]
        t1, t2 = codes[a1] + gap / 4, codes[b0] - gap / 4
        y1 = ys[a1] + slope_a * (t1 - codes[a1])
        y2 = ys[b0] - slope_b * (codes[b0] - t2)
        middle = (y2 - y1) / (t2 - t1)
        changes += [(t1, middle - current), (t2, slope_b - middle)]
        current = slope_b
    return start_slope, bias, [(t, c) for t, c in changes if c != 0]


def value_through_fused(graph, nid, env, base):
    """The node's value given its frontier's values, computing fused steps on the way (and the
    inputs the frontier determines, compiler.ir.forms)."""
    dependents = graph.nodes[nid].get(DEPENDENT, {})
    if any(d not in env for d in dependents):
        env = dict(env)
        env.update({d: dependent.value(env) for d, dependent in dependents.items()})
    return _value_through_fused(graph, nid, env, base)


def _value_through_fused(graph, nid, env, base):
    if nid in env:
        return env[nid]
    attrs = graph.nodes[nid]
    if attrs[REALIZE] == "const":
        return attrs[VALUES][0]
    node = attrs[NODE]
    args = tuple(_value_through_fused(graph, a.id, env, base) for a in node.args)
    env[nid] = value_from_inputs(node, args, base)
    return env[nid]
