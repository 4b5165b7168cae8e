"""Pass 10: store the unembedding as the token embedding, transposed and scaled, when it is one.

A readout that scores candidate c by slope(c) * x reads x from the dimension where the embedding
wrote each token's own value. When every unembedding weight is the same multiple s of the
embedding weight at the transposed place (W_U = s * W_E^T, zeros included), the model stores
W_E once and one number s: weight tying as GPT-2 and nanoGPT do, with a logit scale, which may
be negative, as T5-style tied heads scale theirs. The logits are identical, so nothing else
changes; tying is skipped when it would not save a weight.

Sets ir.weights.tied_scale (sympy) when tied; lowering then stores unembed.logit_scale instead
of unembed.W_U. W_U's provenance is kept: lowering traces the scale to every node the W_U entries
served, and each W_E entry to its embedded node and the readout it now also is.
"""
from __future__ import annotations

from dataclasses import replace

from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR


@compiler_pass(reads_ir={"weights"}, sets_ir={"weights"})
def tie_unembedding(ir: CompileIR) -> CompileIR:
    w = ir.weights
    unembed = {key: v for key, v in w.W_U.items() if v != 0}
    embed = {(d, t): v for (t, d), v in w.W_E.items() if v != 0}  # transposed: (dim, token)
    if len(unembed) < 2 or set(unembed) != set(embed):
        return ir
    ratios = {unembed[key] / embed[key] for key in unembed}
    if len(ratios) != 1:
        return ir
    return replace(ir, weights=replace(w, tied_scale=ratios.pop()))
