"""Pass 6: one head for two shifts of the same value at neighbouring offsets in one sum.

`r * shift(v, c) + shift(v, c + 1)` is one head, not two, when both shifts write into the same
sum's dimension (compiler.passes.share). Its score is a parabola over the distance whose top lies
between the two keys, tilted so that their scores differ by ln(r): the softmax gives them the
weights r/(r+1) and 1/(r+1), every other key at least the usual gap less, and the output
weight (r + 1) times the second coefficient restores the sum. Both coefficients must have the
same sign (a softmax weight is positive). Like a single shift without a sink, it needs position
0 to hold the default: before the keys exist the parabola's nearest key is position 0.

Adds to the first (nearer) shift: paired_with = (the other shift's id, ratio r); to the other:
paired_into = the first shift's id. The other gets no head of its own.
"""
from __future__ import annotations

from dataclasses import replace

from compiler.passes.encodings import lone_offset
from compiler.ir.attrs import (
    AT_ZERO, ENCODING, MAX_WIDTH, NODE, PAIRED_INTO, PAIRED_WITH, REALIZE, SHARE, SHARED_TERMS,
    VALUES,
)
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR


@compiler_pass(reads={NODE, ENCODING, REALIZE, VALUES, MAX_WIDTH, AT_ZERO, SHARE, SHARED_TERMS},
               adds={PAIRED_WITH, PAIRED_INTO})
def pair_offset_heads(ir: CompileIR) -> CompileIR:
    graph = ir.graph.copy()
    layout = ir.program.layout
    for root in sorted(graph.nodes):
        by_value: dict = {}  # (value id, default) -> {offset: term id}
        for term in graph.nodes[root].get(SHARED_TERMS, []):
            offset = lone_offset(graph, term, layout.n_ctx, layout.base)
            if offset is not None and graph.nodes[term][ENCODING] == "numerical":
                node = graph.nodes[term][NODE]
                by_value.setdefault((node.value.id, str(node.default)), {})[offset] = term
        for offsets in by_value.values():
            for c in sorted(offsets):
                near, far = offsets.get(c), offsets.get(c + 1)
                if near is None or far is None or PAIRED_INTO in graph.nodes[near]:
                    continue
                ratio = graph.nodes[near][SHARE][1] / graph.nodes[far][SHARE][1]
                if ratio <= 0:
                    continue
                graph.nodes[near][PAIRED_WITH] = (far, ratio)
                graph.nodes[far][PAIRED_INTO] = near
    return replace(ir, graph=graph)

