"""Pass 8: every weight as an exact sympy value, each block tagged with the program node it serves.

Weights are sparse ({index tuple: value}, compiler.ir.weights); only the lowering pass makes dense
tensors. Adds ir.weights: the embeddings, one `LayerWeights` per layer (a head per attention node,
a block of hidden units per MLP node) and the unembedding (compiler.passes.weights.readout).
"""
from __future__ import annotations

from dataclasses import replace

import sympy

from dsl.core import Program
from dsl.semantics import evaluate_node, num
from compiler.ir.attrs import (
    AT_ZERO, DEPENDENT, DIMS, FUSED, ENCODING, FRONTIER, HELPER_DIM, IN_PLACE, LABEL, LAYER, MAX_WIDTH, NODE,
    PAIRED_INTO, PAIRED_WITH, PER_POSITION, POSITION_FEATURES, REALIZE, SHARE, SHARED_TERMS, SHARE_HOST, SOURCE,
    STORED_AS, VALUES,
)
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR
from compiler.ir.reads import Reads
from compiler.ir.weights import LayerWeights, Weights
from compiler.passes.weights.attention import build_head
from compiler.passes.weights.mlp import build_mlp, build_width_mlp
from compiler.passes.weights.readout import build_unembedding


@compiler_pass(reads={NODE, LABEL, SOURCE, VALUES, PER_POSITION, MAX_WIDTH, AT_ZERO, ENCODING, REALIZE, LAYER,
                      FRONTIER, FUSED, DEPENDENT, SHARE, SHARED_TERMS, SHARE_HOST, PAIRED_WITH, PAIRED_INTO, DIMS,
                      IN_PLACE, STORED_AS, HELPER_DIM, POSITION_FEATURES},
               reads_ir={"n_layers"}, sets_ir={"weights"})
def build_weights(ir: CompileIR) -> CompileIR:
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
            weights.layers[attrs[LAYER]].heads.append(build_head(ir, nid, reads))
            weights.layers[attrs[LAYER]].mlps.append(build_width_mlp(ir, nid))
        elif attrs[REALIZE] == "mlp":
            weights.layers[attrs[LAYER]].mlps.append(build_mlp(ir, nid, reads))
    build_unembedding(ir, reads, weights)
    return replace(ir, weights=weights)


def _embeddings(ir: CompileIR, weights: Weights):
    graph, program, layout = ir.graph, ir.program, ir.program.layout
    by_token = _values_over(program, graph, layout.vocab, "token")
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
            weights.trace(name, index, (nid,))
    # The 0/1 columns heads read for their terms on positions alone: each serves every such head.
    for nid in sorted(graph.nodes):
        for dim, _, positions in graph.nodes[nid].get(POSITION_FEATURES, {}).values():
            for row in positions:
                weights.W_pos[(row, dim)] = sympy.Integer(1)
                weights.trace("W_pos", (row, dim), (nid,))


def _values_over(program: Program, graph, tokens: list[str], source: str) -> dict[int, list]:
    """Evaluate every token-only node on each vocabulary token (position cannot matter to them)."""
    values: dict[int, list] = {}
    for nid in sorted(graph.nodes):
        attrs = graph.nodes[nid]
        if attrs[SOURCE] in (source, "const"):
            values[nid] = evaluate_node(attrs[NODE], values, tokens, program.layout.base, program)
    return values
