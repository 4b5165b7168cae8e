"""The unembedding must give the right token a logit margin larger than the errors can erase."""
from __future__ import annotations

import math

import torch

from compiler.check.prove.state import CannotProve, Miss, ProofState, position_note
from compiler.ir.slots import unembedding_slot
from compiler.model.transformer import unembedding_matrix


def check_unembedding(state: ProofState):
    output = state.ir.program.output.id
    W_U, b_U = unembedding_matrix(state.weights), state.weights["unembed.b_U"]
    vocab = state.layout.vocab
    reads = (W_U.abs().sum(1) > 0).nonzero()[:, 0].tolist()
    at = unembedding_slot(state.config["n_layers"])
    stored = sorted(n for n, helper in state.owners(reads, at) if not helper)
    smallest = math.inf
    read_errors = state.error_column(1, at)[:, 0]
    # Both logits of a comparison are read off the same residual vector, so its errors move their
    # gap by at most |W_U[:, right] - W_U[:, other]| times them: far less than each logit's own
    # error when the two columns are alike (neighbouring candidates of a numeric readout).
    pair_error = torch.einsum("dro,d->ro", (W_U[:, :, None] - W_U[:, None, :]).abs(), read_errors)
    # A tied unembedding is W_E^T times logit_scale, a product the model rounds in its dtype.
    tied = "unembed.logit_scale" in state.weights
    positions = state.answer_positions(stored)
    for position in positions:
        combos = state.combos(stored, position, output)
        X = state.vectors(stored, combos, position)
        logits = X @ W_U + b_U
        rounded = state.rounding.affine_sum(X, read_errors, W_U, b_U)
        if tied:  # each entry of W_U is itself a rounded product: one more u on every term
            rounded = rounded + state.rounding.u * ((X.abs() + read_errors) @ W_U.abs())
        codes, table = state.values_over(output, combos, position)
        right = torch.tensor([vocab.index(table[c]) for c in codes.tolist()])
        chosen = logits.gather(1, right[:, None])[:, 0]
        others = logits.scatter(1, right[:, None], -math.inf).amax(dim=1)
        if bool((chosen - others <= 0).any()):
            i = int((chosen - others).argmin())
            written = vocab[int(logits[i].argmax())]
            raise Miss(f"the output gives {written!r} where {table[codes[i]]!r} was expected (logit gap "
                       f"{float(chosen[i] - others[i]):.3g}), on {state.describe(combos[i])}"
                       f"{position_note(positions, position)}{state.at(output)}")
        # each logit's own rounding, and the pair's share of the input errors
        gaps = (chosen[:, None] - logits - rounded.gather(1, right[:, None]) - rounded - pair_error[right])
        gaps = gaps.scatter(1, right[:, None], math.inf).amin(dim=1)
        smallest = min(smallest, float(gaps.min()))
    if smallest <= 0:
        raise CannotProve(f"the output's logit margin may be erased by errors (margin {smallest:.3g} "
                          f"after them){state.at(output)}")
    state.margins["smallest logit margin after errors"] = smallest
