"""The unembedding: W_U and b_U, from the output's one-hot or, for a nearest-candidate readout,
from the number it reads. Each entry is traced to the node it serves: a readout's candidate
logits to its nearest node, each chain level's lift to its if_else, every other token's logit to the output."""
from __future__ import annotations

import sympy

from dsl.semantics import num
from compiler.ir.attrs import REALIZE, VALUES
from compiler.ir.compile_ir import Affine, CompileIR
from compiler.ir.reads import Reads
from compiler.ir.weights import Weights
from compiler.passes.encodings import readout_parts


def build_unembedding(ir: CompileIR, reads: Reads, weights: Weights):
    vocab = ir.program.layout.vocab
    output = ir.program.output.id
    if ir.graph.nodes[output][REALIZE] == "readout":
        return _readout(ir, reads, weights)
    for token, indicator in reads.categorical(output).items():
        column = vocab.index(token)
        for dim, coeff in indicator.coeffs.items():
            weights.W_U[(dim, column)] = coeff
            weights.trace("W_U", (dim, column), (output,))
        if indicator.bias != 0:
            weights.b_U[column] = indicator.bias
            weights.trace("b_U", column, (output,))


def _readout(ir: CompileIR, reads: Reads, weights: Weights):
    """logit(c) = 2*c*x - c*c + shift = x*x - (x - c)**2 + shift: the nearest candidate scores
    highest. Tokens that are not candidates get a constant logit below every winning score; each
    level of a condition chain gets a logit that beats every candidate and every level inside it
    exactly when its condition selects it. The shift is free (argmax ignores it), so it is chosen to leave the most biases at zero."""
    vocab = ir.program.layout.vocab
    output = ir.program.output.id
    node, lifts = readout_parts(ir.graph, output)
    x = reads.numeric(node.args[0].id)
    candidates = node.args[1].value
    xs = [num(v) for v in ir.graph.nodes[node.args[0].id][VALUES]]
    worst_winner = min(max(2 * c * v - c * c for _, c in candidates) for v in xs)
    # A lifted token must win wherever x may really be: its values, each off by up to a quarter
    # of the distance between candidates (the readout itself holds to half of it). The best
    # candidate's score is convex in x, so the ends of those intervals bound it.
    reach = _quarter_spacing([c for _, c in candidates])
    best_possible = max(max(2 * c * v - c * c for _, c in candidates) for x_v in xs for v in (x_v - reach, x_v + reach))
    biases = {candidate: 2 * c * x.bias - c * c for candidate, c in candidates}
    chain = {lift.token for lift in lifts}
    others = [t for t in vocab if t not in biases and t not in chain]
    shift, floor = _readout_shift(biases, worst_winner, len(others))
    for candidate, c in candidates:
        column = vocab.index(candidate)
        for dim, coeff in x.coeffs.items():
            weights.W_U[(dim, column)] = 2 * c * coeff
            weights.trace("W_U", (dim, column), (node.id,))
        if biases[candidate] + shift != 0:
            weights.b_U[column] = biases[candidate] + shift
            weights.trace("b_U", column, (node.id,))
    for other in others:
        if floor != 0:
            weights.b_U[vocab.index(other)] = floor
            weights.trace("b_U", vocab.index(other), (output,))
    # Innermost first: each level's token must beat every candidate and every level inside it.
    lift = best_possible + shift - floor
    for level in reversed(lifts):
        lift = lift + 1
        _lift_token(ir, reads, weights, level, lift, floor)


def _lift_token(ir: CompileIR, reads: Reads, weights: Weights, level, lift, floor):
    """The token's logit is floor + lift * selected, selected = cond (or 1 - cond): an affine read."""
    chosen = reads.numeric(level.condition.id)
    values = [num(v) for v in ir.graph.nodes[level.condition.id][VALUES]]
    if len(values) == 2:
        low, high = values
        chosen = chosen.scale(1 / (high - low)) + Affine.constant(-low / (high - low))
    if not level.when:
        chosen = chosen.scale(-1) + Affine.constant(1)
    column = ir.program.layout.vocab.index(level.token)
    for dim, coeff in chosen.coeffs.items():
        weights.W_U[(dim, column)] = weights.W_U.get((dim, column), 0) + lift * coeff
        weights.trace("W_U", (dim, column), (level.node.id,))
    if floor + lift * chosen.bias != 0:
        weights.b_U[column] = floor + lift * chosen.bias
        weights.trace("b_U", column, (level.node.id,))


def _quarter_spacing(numbers) -> object:
    numbers = sorted(set(numbers))
    """A quarter of the smallest distance between two of the numbers (0 for a single one)."""
    return sympy.sympify(min((b - a for a, b in zip(numbers, numbers[1:])), default=0)) / 4


def _readout_shift(biases: dict, worst_winner, n_others: int):
    """(shift added to every candidate, logit of every other token) with the fewest nonzero
    biases, keeping every other token at least 1 below the weakest winning score."""
    options = [(0, worst_winner - 1)]  # others below the winners as they are
    for s in {1 - worst_winner} | {-b for b in biases.values() if -b >= 1 - worst_winner}:
        options.append((s, 0))  # candidates lifted so the others can stay at zero
    cost = lambda option: sum(b + option[0] != 0 for b in biases.values()) + (option[1] != 0) * n_others
    return min(options, key=lambda option: (cost(option), option != options[0], abs(option[0])))
