"""Pass 7: give every stored value its residual dimensions.

A value is stored when it is embedded or computed by a sublayer (realize "embed", "attention",
"mlp", "width"); it lives from the sublayer that writes it (`ready`) to the last sublayer that reads
it (`last_read`). Values that nothing reads get no dimension at all, and derived, fused, inline and
constant values never need one.

Dead dimensions are not reused: the residual stream is a sum, so a dimension whose value is dead
still holds it, and a new writer would add to it. Reuse would need a clean-up write (an MLP unit
subtracting the old value), which costs nonzero weights while a fresh dimension costs none.

A sum whose terms share a dimension (compiler.passes.share) gets one dimension, which its terms' dims
point to; its residual-map entry lists the terms (`sum_of`) instead of a single writer.

An MLP value computed in place of its input x keeps x's encoding: when x reads as
slope * dim + bias (a sum hosted at a scale, say), the value is stored as (value - bias) / slope,
so the update is f(x) - x scaled, and readers read it back the same way (`stored_as`).

Adds to stored nodes: dims (one residual index for a numerical value, one per value for a
categorical one); in_place and stored_as for updates; helper_dim for selector widths;
position_features for heads that read 0/1 columns of W_pos. Sets
ir.d_model and ir.residual_map.
"""
from __future__ import annotations

from dataclasses import replace

from dsl.semantics import num
from compiler.ir.attrs import (
    DEPENDENT, DIMS, ENCODING, FRONTIER, HELPER_DIM, IN_PLACE, LABEL, LAST_READ, NODE, PER_POSITION,
    POSITION_FEATURES, READY, REALIZE, SHARE, SHARED_TERMS, SHARE_HOST, SLOT, SOURCE, SPAN, STORED_AS, VALUES,
)
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR
from compiler.ir.maps import ResidualEntry, SumTerm
from compiler.ir.reads import Reads
from compiler.passes.encodings import position_parts
from compiler.ir.position_terms import feature_column, part_range
from compiler.passes.weights.mlp import ramp_changes, value_through_fused

STORED = ("embed", "attention", "mlp", "width")


def width_of(attrs) -> int:
    return len(attrs[VALUES]) if attrs[ENCODING] == "categorical" else 1


@compiler_pass(reads={NODE, LABEL, SPAN, VALUES, ENCODING, REALIZE, READY, SLOT, FRONTIER, DEPENDENT, LAST_READ,
                      SHARE, SHARED_TERMS, SHARE_HOST, SOURCE, PER_POSITION},
               adds={DIMS, IN_PLACE, STORED_AS, HELPER_DIM, POSITION_FEATURES}, sets_ir={"d_model", "residual_map"})
def allocate(ir: CompileIR) -> CompileIR:
    graph = ir.graph.copy()
    next_dim = 0
    residual_map = []
    stored = [n for n in sorted(graph.nodes, key=lambda n: (graph.nodes[n].get(READY, -1), n))
              if (graph.nodes[n][REALIZE] in STORED and SHARE not in graph.nodes[n]
                  or SHARED_TERMS in graph.nodes[n]) and graph.nodes[n][LAST_READ] is not None]
    updated_dims: set[int] = set()
    for nid in stored:
        attrs = graph.nodes[nid]
        updated = _updatable_input(ir, graph, nid, updated_dims)
        if SHARE_HOST in attrs:  # the sum lives in one of its own values' dimension
            dims = list(graph.nodes[attrs[SHARE_HOST][0]][DIMS])
        elif updated is not None:
            x, dim, read = updated
            attrs[IN_PLACE], dims = x, [dim]
            if read.coeffs[dim] != 1 or read.bias != 0:
                # The dimension keeps x's encoding (x = slope * dim + bias), so y is stored the same way.
                attrs[STORED_AS] = (read.coeffs[dim], read.bias)
            updated_dims.add(dim)
        else:
            dims = list(range(next_dim, next_dim + width_of(attrs)))
            next_dim += len(dims)
        attrs[DIMS] = dims
        for term in attrs.get(SHARED_TERMS, ()):
            graph.nodes[term][DIMS] = dims
        entry = _residual_entry(graph, nid, dims)
        residual_map.append(entry.to_dict())
        if attrs[REALIZE] == "width":
            attrs[HELPER_DIM] = next_dim
            residual_map.append(ResidualEntry(
                node=f"{attrs[LABEL]} (as w/(w+1))", id=nid, helper=True, encoding="numerical", dims=(next_dim,),
                written_by="attention", sublayer=attrs[SLOT], line=entry.line, column=entry.column).to_dict())
            next_dim += 1
    next_dim = _position_features(ir, graph, next_dim, residual_map)
    return replace(ir, graph=graph, d_model=next_dim, residual_map=residual_map)


def _position_features(ir: CompileIR, graph, next_dim: int, residual_map: list) -> int:
    """One 0/1 column of W_pos per one-sided part of a head's terms on positions alone
    (compiler.ir.position_terms), shared where it can be: a part may hold any set between
    the positions it must and those it may, so it reads a column another part reads already, or
    its complement, when one fits. Its map entry is a helper of the first head that reads it: it
    holds no program value."""
    layout = ir.program.layout
    columns: dict[tuple, int] = {}
    for nid in sorted(graph.nodes):
        attrs = graph.nodes[nid]
        if attrs[REALIZE] not in ("attention", "width") or DIMS not in attrs:
            continue  # a head only for a stored value (the terms of a shared sum have its dims)
        features, chosen = {}, {}
        for index, role, split, holds in position_parts(graph, nid, layout.n_ctx, layout.base):
            other = chosen.get((index, "q")) if role == "k" else split.key_positions
            required, allowed = part_range(holds, split, role, other)
            column, complemented = _shared_column(columns, required, allowed, layout.n_ctx)
            chosen[(index, role)] = frozenset(column) ^ (frozenset(range(layout.n_ctx)) if complemented else
                                                         frozenset())
            if column not in columns:
                columns[column] = next_dim
                residual_map.append(ResidualEntry(
                    node=f"{attrs[LABEL]} (positions {_ranges(column)})", id=nid, helper=True,
                    encoding="numerical", dims=(next_dim,), written_by="embed", sublayer=0,
                    line=attrs[SPAN].line, column=attrs[SPAN].column).to_dict())
                next_dim += 1
            features[(index, role)] = (columns[column], complemented, column)
        if features:
            attrs[POSITION_FEATURES] = features
    return next_dim


def _shared_column(columns, required, allowed, n_ctx: int) -> tuple[tuple, bool]:
    """(positions of the column, read complemented?): a column already made when one fits, else
    the cheaper of the two ends of the range."""
    everything = frozenset(range(n_ctx))
    for column in columns:
        for complemented in (False, True):
            held = everything - frozenset(column) if complemented else frozenset(column)
            if required <= held <= allowed:
                return column, complemented
    small, large = feature_column(required, n_ctx), feature_column(allowed, n_ctx)
    return small if len(small[0]) <= len(large[0]) else large


def _ranges(positions) -> str:
    """1, 3-5, 9: positions as runs."""
    runs = []
    for p in positions:
        if runs and runs[-1][1] == p - 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def _residual_entry(graph, nid, dims) -> ResidualEntry:
    attrs = graph.nodes[nid]
    sum_of = None
    if SHARED_TERMS in attrs:
        # The dimension holds the sum of the terms' shares, not the root itself (the root may
        # add values stored elsewhere); readers combine it as compiler.ir.reads says.
        host = [_sum_term(graph, attrs[SHARE_HOST][0], "1", host=True)] if SHARE_HOST in attrs else []
        sum_of = tuple(host + [_sum_term(graph, term, str(graph.nodes[term][SHARE][1]))
                               for term in attrs[SHARED_TERMS]])
    return ResidualEntry(
        node=attrs[LABEL], id=nid, encoding=attrs[ENCODING], dims=tuple(dims),
        written_by="sum" if sum_of is not None else attrs[REALIZE], sublayer=attrs[READY],
        line=attrs[SPAN].line, column=attrs[SPAN].column, sum_of=sum_of,
        updates=graph.nodes[attrs[IN_PLACE]][LABEL] if IN_PLACE in attrs else None,
        stored_as=tuple(str(v) for v in attrs[STORED_AS]) if STORED_AS in attrs else None,
        values=tuple(str(v) for v in attrs[VALUES]) if attrs[ENCODING] == "categorical" else None,
        # An attention value is stored relative to its default, which "nothing selected" yields.
        default=str(attrs[NODE].default) if attrs[REALIZE] == "attention" else None)


def _sum_term(graph, term, coefficient: str, host: bool = False) -> SumTerm:
    t = graph.nodes[term]
    default = t[NODE].default if t[REALIZE] == "attention" else 0
    return SumTerm(id=term, node=t[LABEL], coefficient=coefficient, default=str(default),
                   written_by=t[REALIZE], sublayer=t[READY], host=host)


def _updatable_input(ir: CompileIR, graph, nid, taken: set[int]):
    """(input, its dimension, its read) when an MLP value can take that dimension over, else None. An MLP computing y = f(x)
    from one number x that lives in one dimension nothing reads afterwards can write f(x) - x
    there instead of f(x) into a new dimension: no clean-up is needed, since the update replaces
    x by y, and the units that would copy x across (or undo it) are not needed at all."""
    attrs = graph.nodes[nid]
    if attrs[REALIZE] != "mlp" or attrs[ENCODING] != "numerical" or SHARE in attrs \
            or len(attrs.get(FRONTIER, [])) != 1:
        return None
    x = attrs[FRONTIER][0]
    if x == ir.program.output.id:
        return None
    if any(a.get(SHARE_HOST, (None,))[0] == nid for _, a in graph.nodes(data=True)):
        # compiler.passes.share gave the terms of the sum this value hosts their coefficients for a
        # dimension that holds the value itself; stored as (y - bias) / slope it would not.
        return None
    read = Reads(graph, ir.program.layout.base).numeric(x)
    if len(read.coeffs) != 1:
        return None
    (dim,) = read.coeffs
    if dim in taken:
        return None
    # Whatever else lives in that dimension must be dead by the time the MLP writes.
    holders = [a for a in (graph.nodes[n] for n in graph.nodes) if dim in a.get(DIMS, ())]
    if not holders or any(a[LAST_READ] is None or a[LAST_READ] > attrs[SLOT] for a in holders):
        return None
    # f(x) - x may need more units than f(x) (a step becomes a step minus a ramp): only when not.
    if _units(ir, graph, nid, x, read, in_place=True) > _units(ir, graph, nid, x, read, in_place=False):
        return None
    return x, dim, read


def _units(ir, graph, nid, x, read, in_place: bool) -> int:
    """Hidden units the MLP for nid needs over x's values, writing f(x) or f(x) - (x's dimension)."""
    values = sorted(graph.nodes[x][VALUES], key=num)
    codes = [num(v) for v in values]
    (slope,) = read.coeffs.values()
    ys = [num(value_through_fused(graph, nid, {x: v}, ir.program.layout.base)) for v in values]
    if in_place:  # the dimension goes from x's encoding, (x - bias) / slope, to y's, the same one
        ys = [(y - num(v)) / slope for y, v in zip(ys, values)]
    gaps = [b - a for a, b in zip(codes, codes[1:])]
    start_slope, _, changes = ramp_changes(codes, ys, (min(gaps) if gaps else 1) / 4)
    return (start_slope != 0) + len({t for t, _ in changes})

