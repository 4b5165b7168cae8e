"""Pass 8: every weight as an exact sympy value, each block tagged with the program node it serves.

Weights are sparse ({index tuple: value}); only the lowering pass makes dense tensors. Adds
ir.weights: the embeddings, one `LayerWeights` per layer (a head per attention node, a block of
hidden units per MLP node) and the unembedding.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import sympy

from dsl.core import Program
from dsl.semantics import _evaluate_node, num
from compiler.ir.attrs import (
    AT_ZERO, DIMS, ENCODING, FRONTIER, HELPER_DIM, IN_PLACE, LABEL, LAYER, MAX_WIDTH, NODE,
    PAIRED_INTO, PAIRED_WITH, PER_POSITION, REALIZE, SHARE, SHARED_TERMS, SHARE_HOST, SOURCE,
    STORED_AS, VALUES,
)
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import Affine, CompileIR
from compiler.ir.reads import Reads


@dataclass
class Head:
    node: int
    label: str
    mode: str
    W_Q: dict = field(default_factory=dict)  # (residual dim, head dim) -> value
    b_Q: dict = field(default_factory=dict)  # head dim -> value
    W_K: dict = field(default_factory=dict)
    b_K: dict = field(default_factory=dict)
    W_V: dict = field(default_factory=dict)
    b_V: dict = field(default_factory=dict)
    W_O: dict = field(default_factory=dict)  # (head dim, residual dim) -> value
    sink: Any = None  # the logit of the "attend to nothing" slot, or None
    slope: Any = 0  # score += slope * e + curvature * e * e, e = d + center,
    curvature: Any = 0  # d = key position - query position
    center: Any = 0
    window: int | None = None  # keys more than this many positions back are masked
    constants: dict = field(default_factory=dict)  # the margins chosen, for reports

    def add_read(self, side: str, head_dim: int, read: Affine, factor=1):
        matrix, bias = getattr(self, "W_" + side), getattr(self, "b_" + side)
        for dim, coeff in read.coeffs.items():
            matrix[(dim, head_dim)] = matrix.get((dim, head_dim), 0) + coeff * factor
        if read.bias != 0:
            bias[head_dim] = bias.get(head_dim, 0) + read.bias * factor


@dataclass
class MLPBlock:
    node: int
    label: str
    units: int = 0
    W_in: dict = field(default_factory=dict)  # (residual dim, unit) -> value
    b_in: dict = field(default_factory=dict)
    W_out: dict = field(default_factory=dict)  # (unit, residual dim) -> value
    b_out: dict = field(default_factory=dict)  # residual dim -> value


@dataclass
class LayerWeights:
    heads: list[Head] = field(default_factory=list)
    mlps: list[MLPBlock] = field(default_factory=list)


@dataclass
class Weights:
    W_E: dict = field(default_factory=dict)  # (token, dim)
    W_pos: dict = field(default_factory=dict)  # (position, dim)
    layers: list[LayerWeights] = field(default_factory=list)
    W_U: dict = field(default_factory=dict)  # (dim, token)
    b_U: dict = field(default_factory=dict)
    tied_scale: Any = None  # W_U = tied_scale * W_E^T, stored as one number (compiler.passes.tie)
    provenance: dict = field(default_factory=dict)  # "W_E"/"W_pos"/"W_U" -> {index: node label}


@compiler_pass(reads={NODE, LABEL, SOURCE, VALUES, PER_POSITION, MAX_WIDTH, AT_ZERO, ENCODING, REALIZE, LAYER,
                      FRONTIER, SHARE, SHARED_TERMS, SHARE_HOST, PAIRED_WITH, PAIRED_INTO, DIMS, IN_PLACE,
                      STORED_AS, HELPER_DIM},
               reads_ir={"n_layers"}, sets_ir={"weights"})
def build_weights(ir: CompileIR) -> CompileIR:
    from compiler.passes.weights.attention import build_head
    from compiler.passes.weights.mlp import build_mlp

    graph, program = ir.graph, ir.program
    reads = Reads(graph, program.layout.base)
    weights = Weights(layers=[LayerWeights() for _ in range(ir.n_layers)])
    _embeddings(ir, weights)
    for nid in sorted(graph.nodes):
        attrs = graph.nodes[nid]
        if DIMS not in attrs or PAIRED_INTO in attrs:  # a paired shift is its partner's head
            continue
        if attrs[REALIZE] == "attention":
            weights.layers[attrs[LAYER]].heads.append(build_head(ir, nid, reads))
        elif attrs[REALIZE] == "width":
            from compiler.passes.weights.mlp import build_width_mlp
            weights.layers[attrs[LAYER]].heads.append(build_head(ir, nid, reads))
            weights.layers[attrs[LAYER]].mlps.append(build_width_mlp(ir, nid))
        elif attrs[REALIZE] == "mlp":
            weights.layers[attrs[LAYER]].mlps.append(build_mlp(ir, nid, reads))
    _unembedding(ir, reads, weights)
    return replace(ir, weights=weights)


def _embeddings(ir: CompileIR, weights: Weights):
    graph, program, layout = ir.graph, ir.program, ir.program.layout
    by_token = _values_over(program, graph, layout.vocab, "token")
    weights.provenance = {"W_E": {}, "W_pos": {}, "W_U": {}}
    for nid in sorted(graph.nodes):
        attrs = graph.nodes[nid]
        if attrs[REALIZE] != "embed" or DIMS not in attrs:
            continue
        if attrs[SOURCE] == "token":
            table, rows, name = weights.W_E, by_token[nid], "W_E"
        else:
            table, rows, name = weights.W_pos, attrs[PER_POSITION], "W_pos"
        for row, value in enumerate(rows):
            if attrs[ENCODING] == "categorical":
                index = (row, attrs[DIMS][attrs[VALUES].index(value)])
                table[index] = sympy.Integer(1)
            elif num(value) != 0:
                index = (row, attrs[DIMS][0])
                table[index] = num(value)
            else:
                continue
            weights.provenance[name][index] = attrs[LABEL]


def _readout(ir: CompileIR, reads: Reads, weights: Weights):
    """logit(c) = 2*c*x - c*c + shift = x*x - (x - c)**2 + shift: the nearest candidate scores
    highest. Tokens that are not candidates get a constant logit below every winning score; with a
    condition, its token gets a logit that beats every candidate exactly when the condition selects
    it. The shift is free (argmax ignores it), so it is chosen to leave the most biases at zero."""
    from compiler.passes.encodings import readout_parts
    vocab = ir.program.layout.vocab
    attrs = ir.graph.nodes[ir.program.output.id]
    node, condition, token, when = readout_parts(ir.graph, ir.program.output.id)
    x = reads.numeric(node.args[0].id)
    candidates = node.args[1].value
    label = attrs[LABEL]
    xs = [num(v) for v in ir.graph.nodes[node.args[0].id][VALUES]]
    worst_winner = min(max(2 * c * v - c * c for _, c in candidates) for v in xs)
    best_possible = max(max(2 * c * v - c * c for _, c in candidates) for v in xs)
    biases = {candidate: 2 * c * x.bias - c * c for candidate, c in candidates}
    others = [t for t in vocab if t not in biases and t != token]
    shift, floor = _readout_shift(biases, worst_winner, len(others))
    for candidate, c in candidates:
        column = vocab.index(candidate)
        for dim, coeff in x.coeffs.items():
            weights.W_U[(dim, column)] = 2 * c * coeff
            weights.provenance["W_U"][(dim, column)] = label
        if biases[candidate] + shift != 0:
            weights.b_U[column] = biases[candidate] + shift
    for other in others:
        if floor != 0:
            weights.b_U[vocab.index(other)] = floor
    if condition is not None:
        # selected = cond (or 1 - cond): an affine read; lift the token by enough to beat every candidate.
        chosen = reads.numeric(condition.id)
        values = [num(v) for v in ir.graph.nodes[condition.id][VALUES]]
        if len(values) == 2:
            low, high = values
            chosen = chosen.scale(1 / (high - low)) + Affine.constant(-low / (high - low))
        if not when:
            chosen = chosen.scale(-1) + Affine.constant(1)
        lift = best_possible + shift - floor + 1
        column = vocab.index(token)
        for dim, coeff in chosen.coeffs.items():
            weights.W_U[(dim, column)] = weights.W_U.get((dim, column), 0) + lift * coeff
            weights.provenance["W_U"][(dim, column)] = label
        if floor + lift * chosen.bias != 0:
            weights.b_U[column] = floor + lift * chosen.bias


def _readout_shift(biases: dict, worst_winner, n_others: int):
    """(shift added to every candidate, logit of every other token) with the fewest nonzero
    biases, keeping every other token at least 1 below the weakest winning score."""
    options = [(0, worst_winner - 1)]  # others below the winners as they are
    for s in {1 - worst_winner} | {-b for b in biases.values() if -b >= 1 - worst_winner}:
        options.append((s, 0))  # candidates lifted so the others can stay at zero
    cost = lambda option: sum(b + option[0] != 0 for b in biases.values()) + (option[1] != 0) * n_others
    return min(options, key=lambda option: (cost(option), option != options[0], abs(option[0])))


def _values_over(program: Program, graph, tokens: list[str], source: str) -> dict[int, list]:
    """Evaluate every token-only node on each vocabulary token (position cannot matter to them)."""
    values: dict[int, list] = {}
    for nid in sorted(graph.nodes):
        attrs = graph.nodes[nid]
        if attrs[SOURCE] in (source, "const"):
            values[nid] = _evaluate_node(attrs[NODE], values, tokens, len(tokens), program.layout.base, program)
    return values


def _unembedding(ir: CompileIR, reads: Reads, weights: Weights):
    vocab = ir.program.layout.vocab
    output = ir.program.output.id
    if ir.graph.nodes[output][REALIZE] == "readout":
        return _readout(ir, reads, weights)
    for token, indicator in reads.categorical(output).items():
        column = vocab.index(token)
        for dim, coeff in indicator.coeffs.items():
            weights.W_U[(dim, column)] = coeff
            weights.provenance["W_U"][(dim, column)] = ir.graph.nodes[output][LABEL]
        if indicator.bias != 0:
            weights.b_U[column] = indicator.bias
