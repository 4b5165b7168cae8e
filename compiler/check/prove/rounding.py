"""The rounding of every operation the emitted model performs, bounded in the dtype it runs in.

The error model is the standard one for IEEE-754 arithmetic with round-to-nearest (Higham,
"Accuracy and Stability of Numerical Algorithms", chapter 3): with unit roundoff u (2^-24 for
float32, 2^-53 for float64),
- one operation (an addition, a product, a division, a cast) is off by at most u times the
  magnitude of its exact result;
- a sum of k terms, in any order and with or without fused multiply-adds, is off by at most
  gamma_k = k u / (1 - k u) times the sum of the terms' magnitudes. That covers every dot product
  and matrix product whatever the kernel's blocking; terms that are exactly zero add nothing and
  are not counted;
- a result in the subnormal range may instead be off by the smallest subnormal number, once per
  operation (an absolute term, added to every bound below);
- exp is taken to be within 2 ulp (4u relative): torch's CPU softmax computes it with its
  exp_u20 kernels, documented to 2 ulp (elsewhere Sleef's u10 routines, 1 ulp); the softmax is
  exp, a sum and a division, so each weight is within gamma_{k+6} of its exact value relative
  to itself, k the number of entries.
The proof's own arithmetic runs in float64 on the same weights, so every bound uses u plus
float64's unit roundoff: what the proof computed and what the model computes may each be off.
"""
from __future__ import annotations

import torch

from compiler.check.prove.state import CannotProve

UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}
# Results below the smallest normal number lose relative accuracy (gradual underflow): each
# operation may then be off by up to the smallest subnormal instead.
SMALLEST_SUBNORMAL = {"float32": 2.0 ** -149, "float64": 2.0 ** -1074}


class NoRoundingBound(CannotProve):
    """A sum too long for the error model (k u >= 1): nothing can be said about its rounding."""


class Rounding:
    """The rounding bounds of one dtype."""

    def __init__(self, dtype: str):
        self.dtype = dtype
        self.u = UNIT_ROUNDOFF[dtype] + UNIT_ROUNDOFF["float64"]
        self.tiny = SMALLEST_SUBNORMAL[dtype] + SMALLEST_SUBNORMAL["float64"]

    def gamma(self, k):
        """gamma_k for a number or a tensor of term counts."""
        ku = k * self.u
        if torch.as_tensor(ku).numel() and float(torch.as_tensor(ku).max()) >= 0.5:
            raise NoRoundingBound(f"a sum of {int(torch.as_tensor(k).max())} terms is too long to bound its "
                                  f"{self.dtype} rounding")
        return ku / (1 - ku)

    def matmul(self, x_abs: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None = None,
               terms: torch.Tensor | None = None) -> torch.Tensor:
        """The rounding of x @ W + b, per output entry, where x_abs bounds |x| entrywise
        ([..., n] against W [n, m]): gamma_k times the terms' magnitudes, k the column's
        nonzero terms (the bias one more), or `terms` where the model's sum has more (other
        units of the layer writing the same dimension)."""
        magnitude = x_abs @ W.abs()
        if b is not None:
            magnitude = magnitude + b.abs()
        if terms is None:
            terms = (W != 0).sum(0) + (0 if b is None else (b != 0))
        terms = terms.to(torch.float64)
        return self.gamma(terms) * magnitude + 2 * terms * self.tiny  # a product and an addition per term

    def signed_sum(self, reach: torch.Tensor, W: torch.Tensor, b: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
        """The rounding of h @ W + b where 0 <= h <= reach (ReLU outputs), per output entry."""
        positive = reach @ W.clamp(min=0) + b.clamp(min=0)
        negative = reach @ (-W).clamp(min=0) + (-b).clamp(min=0)
        return self.sum_bound(positive, negative, terms)

    def affine_sum(self, x: torch.Tensor, error: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
                   terms: torch.Tensor | None = None, product: torch.Tensor | None = None) -> torch.Tensor:
        """The rounding of x~ @ W + b where |x~ - x| <= error entrywise, per output entry (with
        `terms` where the model's sum has more terms than W's nonzero entries; `product` is
        x @ W where the caller has it). The positive terms of x @ W add up to (|x| @ |W| +
        x @ W) / 2, the negative ones to (|x| @ |W| - x @ W) / 2."""
        magnitude = x.abs() @ W.abs()
        signed = x @ W if product is None else product
        spread = error @ W.abs()
        positive = (magnitude + signed) / 2 + spread + b.clamp(min=0)
        negative = (magnitude - signed) / 2 + spread + (-b).clamp(min=0)
        if terms is None:
            terms = (W != 0).sum(0) + (b != 0)
        return self.sum_bound(positive.clamp(min=0), negative.clamp(min=0), torch.as_tensor(terms).to(torch.float64))

    def sum_bound(self, positive: torch.Tensor, negative: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
        """The rounding of a sum of `terms` products whose positive ones add up to at most
        `positive` and negative ones to at most `negative` in magnitude: tighter than gamma_k
        times all magnitudes when terms cancel. Each of the k - 1 additions rounds against a
        partial sum, and no partial sum exceeds the larger of the two totals (each computed one
        off by at most gamma_k times all magnitudes); each product rounds against itself."""
        magnitude = positive + negative
        gamma = self.gamma(terms)
        partial = torch.maximum(positive, negative) + gamma * magnitude
        return (self.u * (terms - 1).clamp(min=0) * partial + self.u * (1 + gamma) * magnitude
                + 2 * terms * self.tiny)

    def softmax_relative(self, entries: int) -> float:
        """How far each softmax weight over `entries` scores may be from its exact value, relative
        to it: exp (4u), the sum of the entries, the division (softmax_absolute adds the part
        that underflow may lose)."""
        return float(self.gamma(entries + 6))

    def softmax_absolute(self, entries: int) -> float:
        """What each softmax weight may lose beyond softmax_relative: an exp, a division and the
        sum's additions that land in the subnormal range."""
        return (entries + 6) * self.tiny

    def single(self, magnitude):
        """One operation whose exact result is at most `magnitude`: a residual addition, a cast."""
        return self.u * magnitude + self.tiny


def written_magnitude(state, dims) -> float:
    """The most any of `dims` can hold, from every value written into it (a sum's terms add up),
    each with room for its error (under a quarter of a step): what a residual addition into them
    rounds against."""
    cache = state.written_magnitudes
    worst = 0.0
    for d in dims:
        if d not in cache:
            total = 0.0
            for writer in state.dim_owner.get(d, []):
                if writer.helper:  # positional columns and width helpers hold values in [0, 1]
                    total += 1.0
                    continue
                total += max((abs(float(state.encoders[writer.nid](v).get(d, 0))) for v in state.values(writer.nid)),
                             default=0.0) + 0.25
            cache[d] = total
        worst = max(worst, cache[d])
    return worst


def residual_rounding(state, dims) -> float:
    """The rounding of adding a sublayer's output into the residual stream at `dims`."""
    return state.rounding.single(written_magnitude(state, dims))
