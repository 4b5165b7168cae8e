"""One block of hidden units per MLP node: an exact piecewise-linear function of a code of its inputs.

The MLP's inputs (its frontier) each have a finite value set. They are folded into one number,
the code c = sum_i K_i (x_i - min_i), with each K_i large enough that the inputs' combinations
never collide. A categorical input contributes the rank of its value, read off its one-hot.
The node's function (with every fused step inside it) is evaluated with sympy at each code, and
`piecewise_linear` builds units relu(c - t) that reproduce it exactly at every code, with every
kink t a quarter gap away from any code (see its docstring).
"""
from __future__ import annotations

import itertools

import sympy

from dsl.errors import AdderError
from dsl.semantics import EvaluationError, apply_op, num
from compiler.ir.attrs import (
    DIMS, ENCODING, FRONTIER, HELPER_DIM, IN_PLACE, LABEL, NODE, REALIZE, SHARE, VALUES,
)
from compiler.ir.compile_ir import Affine, CompileIR
from compiler.ir.reads import Reads
from compiler.passes.value_sets import MAX_VALUES, hint_for
from compiler.passes.weights.build import MLPBlock


def _code_input(reads: Reads, graph, nid):
    """(values, code of each value, linear read of the code)."""
    attrs = graph.nodes[nid]
    values = attrs[VALUES]
    if attrs[ENCODING] == "categorical":
        read = Affine()
        for rank, value in enumerate(values):
            read = read + reads.categorical(nid)[value].scale(rank)
        return values, [sympy.Integer(r) for r in range(len(values))], read
    return values, [num(v) for v in values], reads.numeric(nid)


def build_mlp(ir: CompileIR, nid: int, reads: Reads) -> MLPBlock:
    graph, base = ir.graph, ir.program.layout.base
    attrs = graph.nodes[nid]
    node = attrs[NODE]
    frontier = attrs[FRONTIER]

    def fail(message, hint=None):
        raise AdderError(message, node.span, ir.program.sources.get(node.span.file), hint)

    inputs = [_code_input(reads, graph, f) for f in frontier]
    combos = 1
    for values, _, _ in inputs:
        combos *= len(values)
    if combos > MAX_VALUES:
        fail(f"'{attrs[LABEL]}' needs a table over {combos} input combinations, too many for one MLP",
             "store an intermediate value with its own let, or give an input fewer values")

    code_read, multipliers, spread, min_gap = Affine(), [], sympy.Integer(0), None
    for values, codes, read in inputs:
        low, high = min(codes), max(codes)
        gaps = [b - a for a, b in zip(sorted(codes), sorted(codes)[1:])]
        gap = min(gaps) if gaps else sympy.Integer(1)
        factor = sympy.Integer(1) if min_gap is None else (spread + min_gap) / gap
        multipliers.append((factor, low))
        code_read = code_read + read.scale(factor) + Affine.constant(-factor * low)
        spread += factor * (high - low)
        min_gap = gap if min_gap is None else min(min_gap, gap)

    # Updating its input's dimension in place (compiler.passes.allocate), the MLP adds f(x) minus what
    # the dimension holds now.
    held = None
    if IN_PLACE in attrs:
        x_read = reads.numeric(attrs[IN_PLACE])
        (slope,) = x_read.coeffs.values()
        held = lambda env: (num(env[attrs[IN_PLACE]]) - x_read.bias) / slope
    table = {}
    for combo in itertools.product(*[list(zip(v, c)) for v, c, _ in inputs]):
        env = {f: value for f, (value, _) in zip(frontier, combo)}
        code = sum((factor * (c - low) for (factor, low), (_, c) in zip(multipliers, combo)), sympy.Integer(0))
        try:
            table[code] = _evaluate(graph, nid, env, base)
        except EvaluationError as err:
            fail(f"cannot compile '{attrs[LABEL]}': {err} for some input the layout allows",
                 hint_for(str(err)))
        if held is not None:  # the new value in the dimension's encoding, less what it holds
            table[code] = (num(table[code]) - x_read.bias) / slope - held(env)
    return piecewise_linear(MLPBlock(nid, attrs[LABEL]), code_read, table, attrs)


def build_width_mlp(ir: CompileIR, nid: int) -> MLPBlock:
    """selector_width's second half: the head left f = w/(w+1) in a helper dimension; map it to w."""
    attrs = ir.graph.nodes[nid]
    table = {sympy.Integer(w) / (w + 1): sympy.Integer(w) for w in (int(v) for v in attrs[VALUES])}
    code_read = Affine({attrs[HELPER_DIM]: sympy.Integer(1)})
    return piecewise_linear(MLPBlock(nid, attrs[LABEL]), code_read, table, attrs)


def piecewise_linear(block: MLPBlock, code_read: Affine, table: dict, attrs) -> MLPBlock:
    """Hidden units computing table[code] exactly at every code, as a piecewise-linear function.

    The codes split into maximal runs of collinear points. The function follows each run's line
    and crosses each gap between runs on a straight segment from a quarter of the gap past the
    last code to a quarter before the next. So every kink sits a quarter gap away from any code
    (a small input error never flips a ReLU), and flat runs pass no error on. Each slope change is
    one unit relu(code - t); output dimensions that change slope at the same t share it.
    """
    codes = sorted(table)
    categorical = attrs[ENCODING] == "categorical"
    out_dims = attrs[DIMS]

    def output_vector(value):
        if categorical:
            return {out_dims[attrs[VALUES].index(value)]: sympy.Integer(1)}
        return {out_dims[0]: num(value) * attrs.get(SHARE, (None, 1))[1]}  # a share of a sum: scaled

    vectors = [output_vector(table[c]) for c in codes]
    dims = sorted({d for v in vectors for d in v})
    gaps = [b - a for a, b in zip(codes, codes[1:])]
    margin = (min(gaps) if gaps else sympy.Integer(1)) / 4
    knots: dict = {}  # t -> {dim: slope change}
    for dim in dims:
        ys = [v.get(dim, sympy.Integer(0)) for v in vectors]
        start_slope, bias, changes = _piecewise_linear(codes, ys, margin)
        block.b_out[dim] = block.b_out.get(dim, 0) + bias
        for t, change in ([(codes[0] - margin, start_slope)] if start_slope != 0 else []) + changes:
            knots.setdefault(t, {})
            knots[t][dim] = knots[t].get(dim, 0) + change
    block.b_out = {d: v for d, v in block.b_out.items() if v != 0}
    for t in sorted(knots):
        changes = {d: v for d, v in knots[t].items() if v != 0}
        if not changes:
            continue
        unit = block.units
        block.units += 1
        for dim, coeff in code_read.coeffs.items():
            block.W_in[(dim, unit)] = coeff
        if code_read.bias - t != 0:
            block.b_in[unit] = code_read.bias - t
        for dim, v in changes.items():
            block.W_out[(unit, dim)] = v
    return block


def _piecewise_linear(codes, ys, margin):
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


def _evaluate(graph, nid, env, base):
    """The node's value given its frontier's values, computing fused steps on the way."""
    if nid in env:
        return env[nid]
    attrs = graph.nodes[nid]
    if attrs[REALIZE] == "const":
        return attrs[VALUES][0]
    node = attrs[NODE]
    args = tuple(_evaluate(graph, a.id, env, base) for a in node.args)
    env[nid] = apply_op(node.op, args, base)
    return env[nid]
