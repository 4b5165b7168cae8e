"""How a sublayer reads a program value out of the residual stream: always a linear map plus bias.

Stored values are read off their dimensions; constants are pure biases; derived values are
composed from their inputs' reads, which is why they need no dimension of their own.
"""
from __future__ import annotations

import sympy

from dsl.semantics import apply_op, num
from compiler.ir.attrs import (
    DIMS, ENCODING, LABEL, NODE, REALIZE, SHARE, SHARED_TERMS, SHARE_HOST, STORED_AS, VALUES,
)
from compiler.ir.compile_ir import Affine


class Reads:
    """Memoised reads for one compiled graph."""

    def __init__(self, graph, base: int):
        self.graph = graph
        self.base = base
        self._numeric: dict[int, Affine] = {}
        self._categorical: dict[int, dict] = {}

    def attrs(self, nid):
        return self.graph.nodes[nid]

    def numeric(self, nid) -> Affine:
        return self._resolve_shares(self._term_numeric(nid))

    def _term_numeric(self, nid) -> Affine:
        """Like numeric, but a value that shares a dimension with other terms of a sum reads as
        ("term", id) (see compiler.passes.share): only the whole sum has a dimension to read."""
        if nid not in self._numeric:
            self._numeric[nid] = self._build_numeric(nid)
        return self._numeric[nid]

    def _resolve_shares(self, read: Affine) -> Affine:
        terms = {key: c for key, c in read.coeffs.items() if isinstance(key, tuple)}
        if not terms:
            return read
        out = Affine({d: c for d, c in read.coeffs.items() if not isinstance(d, tuple)}, read.bias)
        by_root: dict[int, dict] = {}
        for (_, term), c in terms.items():
            root, coefficient = self.attrs(term)[SHARE]
            by_root.setdefault(root, {})[term] = c / coefficient
        for root, ratios in by_root.items():
            ratio = set(ratios.values())
            if set(ratios) != set(self.attrs(root)[SHARED_TERMS]) or len(ratio) != 1:
                raise AssertionError(f"'{self.attrs(root)[LABEL]}' is read in part: its terms share a dimension")
            dim, factor = self.attrs(root)[DIMS][0], ratio.pop()
            if SHARE_HOST in self.attrs(root):
                # The host's own read already brings the dimension in, at the same factor.
                if out.coeffs.get(dim) != factor:
                    raise AssertionError(f"'{self.attrs(root)[LABEL]}' is read without its host")
                continue
            out = out + Affine({dim: factor})
        return out

    def categorical(self, nid) -> dict:
        """value -> Affine that is 1 where the node holds that value and 0 elsewhere."""
        if nid not in self._categorical:
            self._categorical[nid] = self._build_categorical(nid)
        return self._categorical[nid]

    # ----- numeric
    def _build_numeric(self, nid) -> Affine:
        a = self.attrs(nid)
        realize = a[REALIZE]
        if realize == "const":
            return Affine.constant(num(a[VALUES][0]))
        if a[ENCODING] == "categorical" and realize != "derived":
            total = Affine()
            for value, indicator in self.categorical(nid).items():
                total = total + indicator.scale(num(value))
            return total
        where = ("term", nid) if SHARE in a else a.get(DIMS, [None])[0]
        if realize == "mlp" and STORED_AS in a:
            slope, bias = a[STORED_AS]
            return Affine({where: slope}, bias)
        if realize in ("embed", "mlp", "width"):
            return Affine({where: sympy.Integer(1)})
        if realize == "attention":
            return Affine({where: sympy.Integer(1)}, num(a[NODE].default))
        if realize == "derived":
            return self._derived_numeric(nid)
        raise AssertionError(f"{a[LABEL]} ({realize}) has no read")

    def _derived_numeric(self, nid) -> Affine:
        a = self.attrs(nid)
        node = a[NODE]
        variable = [arg for arg in node.args if self.attrs(arg.id)[REALIZE] != "const"]
        if len(variable) == 1 and self._single_input_table(variable[0].id):
            x = variable[0].id
            return self._table_read(nid, x, lambda out: num(out))
        reads = [self._term_numeric(arg.id) for arg in node.args]
        const = lambda i: num(self.attrs(node.args[i].id)[VALUES][0])
        if node.op == "add":
            return reads[0] + reads[1]
        if node.op == "sub":
            return reads[0] + reads[1].scale(-1)
        if node.op == "neg":
            return reads[0].scale(-1)
        if node.op == "mul":
            if self.attrs(node.args[0].id)[REALIZE] == "const":
                return reads[1].scale(const(0))
            return reads[0].scale(const(1))
        if node.op == "div":
            return reads[0].scale(1 / const(1))
        raise AssertionError(f"{a[LABEL]}: op {node.op} is not affine")

    def _single_input_table(self, x) -> bool:
        ax = self.attrs(x)
        return ax[ENCODING] == "categorical" or len(ax[VALUES]) <= 2

    def _apply(self, nid, x, value):
        node = self.attrs(nid)[NODE]
        args = tuple(value if arg.id == x else self.attrs(arg.id)[VALUES][0] for arg in node.args)
        return apply_op(node.op, args, self.base)

    def _table_read(self, nid, x, convert) -> Affine:
        """A function of one value x, read linearly: through x's one-hot, or exactly through a
        two-valued x (any function of two points is affine)."""
        ax = self.attrs(x)
        if ax[ENCODING] == "categorical":
            total = Affine()
            for value, indicator in self.categorical(x).items():
                total = total + indicator.scale(convert(self._apply(nid, x, value)))
            return total
        values = ax[VALUES]
        y0 = convert(self._apply(nid, x, values[0]))
        if len(values) == 1:
            return Affine.constant(y0)
        y1 = convert(self._apply(nid, x, values[1]))
        slope = (y1 - y0) / (num(values[1]) - num(values[0]))
        return self._term_numeric(x).scale(slope) + Affine.constant(y0 - slope * num(values[0]))

    # ----- categorical
    def _build_categorical(self, nid) -> dict:
        a = self.attrs(nid)
        realize = a[REALIZE]
        values = a[VALUES]
        if realize == "const":
            return {values[0]: Affine.constant(1)}
        if a[ENCODING] == "categorical" and realize in ("embed", "mlp", "width"):
            return {v: Affine({d: sympy.Integer(1)}) for v, d in zip(values, a[DIMS])}
        if a[ENCODING] == "categorical" and realize == "attention":
            # Nothing selected leaves the dimensions at zero, which reads as the default.
            default = a[NODE].default
            reads = {v: Affine({d: sympy.Integer(1)}) for v, d in zip(values, a[DIMS]) if v != default}
            rest = Affine.constant(1)
            for r in reads.values():
                rest = rest + r.scale(-1)
            reads[default] = rest
            return reads
        if realize == "derived":
            node = a[NODE]
            x = next(arg.id for arg in node.args if self.attrs(arg.id)[REALIZE] != "const")
            return {v: self._table_read(nid, x, lambda out, v=v: sympy.Integer(int(out == v))) for v in values}
        # A numerical value with few values, read as indicators of each value.
        if len(values) <= 2:
            x = self.numeric(nid)
            if len(values) == 1:
                return {values[0]: Affine.constant(1)}
            v0, v1 = num(values[0]), num(values[1])
            upper = x.scale(1 / (v1 - v0)) + Affine.constant(-v0 / (v1 - v0))
            return {values[0]: upper.scale(-1) + Affine.constant(1), values[1]: upper}
        raise AssertionError(f"{a[LABEL]} is numerical with {len(values)} values; no one-hot read")
