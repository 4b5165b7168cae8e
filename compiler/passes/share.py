"""Pass 5: sums of computed values written straight into one dimension.

A sum whose terms are computed by sublayers (attention outputs, MLP outputs) and read by nothing
else needs no dimension per term: the residual stream is itself a sum, so every term's sublayer
can add its share into one dimension, and whoever reads the sum reads one dimension instead of
several, which saves a weight per term in every reader.

A sum here is a `root`: a linear derived value (sums, differences, multiples by constants) that
is not itself a term of a bigger linear value. Its terms are found by expanding the linear
values under it that have no other reader. A term can share the root's dimension when it is a
numerical attention or MLP value whose only reader is the value that expanded it.

A value of the sum that others read too can still host it, in its own dimension, when all those
other readers read before any term is written: the sum then needs no dimension at all.

Adds to each sharing term: share = (root id, coefficient): its sublayer writes
coefficient * (value - default) into the root's dimension. Adds to the root: shared_terms, the
ids of those terms (at least two, or one with a host), and share_host = (host id, scale) when a
host's dimension holds the sum (as root / scale).
"""
from __future__ import annotations

from dataclasses import replace

import sympy

from dsl.core import Map
from dsl.semantics import num
from compiler.ir.attrs import (
    ENCODING, LAST_READ, NODE, READY, REALIZE, SHARE, SHARED_TERMS, SHARE_HOST, SLOT, VALUES,
)
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR

LINEAR = {"add", "sub", "neg", "mul", "div"}


@compiler_pass(reads={NODE, ENCODING, REALIZE, VALUES, READY, SLOT, LAST_READ},
               adds={SHARE, SHARED_TERMS, SHARE_HOST})
def share_sums(ir: CompileIR) -> CompileIR:
    graph = ir.graph.copy()
    output = ir.program.output.id

    def only_reader(nid):
        readers = list(graph.successors(nid))
        return readers[0] if len(readers) == 1 and nid != output else None

    def linear(nid):
        attrs = graph.nodes[nid]
        return (attrs.get(REALIZE) == "derived" and attrs[ENCODING] == "numerical"
                and isinstance(attrs[NODE], Map) and attrs[NODE].op in LINEAR)

    def expand(nid) -> dict:
        """{term id: coefficient} of a linear value, through linear values only it reads."""
        node = graph.nodes[nid][NODE]
        parts = []
        for arg in node.args:
            if graph.nodes[arg.id][REALIZE] == "const":
                parts.append(None)
            elif linear(arg.id) and only_reader(arg.id) == nid:
                parts.append(expand(arg.id))
            else:
                parts.append({arg.id: sympy.Integer(1)})
                chain[arg.id] = nid
        constant = lambda i: num(graph.nodes[node.args[i].id][VALUES][0])
        if node.op == "add":
            return _combine(parts[0], 1, parts[1], 1)
        if node.op == "sub":
            return _combine(parts[0], 1, parts[1], -1)
        if node.op == "neg":
            return _combine(parts[0], -1, None, 0)
        if node.op == "mul":
            return _combine(parts[1], constant(0), None, 0) if parts[0] is None else \
                _combine(parts[0], constant(1), None, 0)
        return _combine(parts[0], 1 / constant(1), None, 0)  # div by a constant

    def read_slot(reader):
        """The last sublayer at which `reader` reads its inputs, or None when that is not simple."""
        attrs = graph.nodes[reader]
        if attrs[REALIZE] in ("attention", "width", "mlp"):
            return attrs[SLOT]
        return attrs[LAST_READ] if attrs[REALIZE] == "derived" else None

    hosting: set[int] = set()
    for root in sorted(graph.nodes):
        if not linear(root):
            continue
        reader = only_reader(root)
        if reader is not None and linear(reader):
            continue  # a term of a bigger sum: that sum is the root
        chain: dict[int, int] = {}  # leaf -> the linear value that reads it
        leaves = {t: c for t, c in expand(root).items() if c != 0 and graph.nodes[t][ENCODING] == "numerical"}
        terms = {t: c for t, c in leaves.items() if graph.nodes[t][REALIZE] in ("attention", "mlp")
                 and only_reader(t) == chain[t] and SHARE not in graph.nodes[t]}
        # Two MLPs in one layer would share the layer's output bias on that dimension, so a
        # proof could not tell their shares apart: one MLP term per layer.
        seen_slots = set()
        for term in sorted(terms):
            if graph.nodes[term][REALIZE] == "mlp":
                if graph.nodes[term][SLOT] in seen_slots:
                    del terms[term]
                seen_slots.add(graph.nodes[term][SLOT])
        host = _host(graph, leaves, terms, chain, read_slot, hosting, output) if terms else None
        if host is None and len(terms) < 2:
            continue
        scale = leaves[host] if host is not None else 1  # the dimension holds root / scale
        for term, coefficient in terms.items():
            graph.nodes[term][SHARE] = (root, coefficient / scale)
        graph.nodes[root][SHARED_TERMS] = sorted(terms)
        if host is not None:
            graph.nodes[root][SHARE_HOST] = (host, scale)
            hosting.add(host)
    return replace(ir, graph=graph)


def _host(graph, leaves, terms, chain, read_slot, hosting, output):
    """A value of the sum, other than its terms, whose own dimension can hold the sum: one whose
    other readers all read before any term is written (a sublayer reads its input before it
    writes), so they still see it alone. Then the sum needs no dimension of its own."""
    first_write = min(graph.nodes[t][SLOT] for t in terms)
    for leaf in sorted(leaves):
        attrs = graph.nodes[leaf]
        if leaf in terms or leaf in hosting or leaf == output or SHARE in attrs \
                or attrs[REALIZE] not in ("embed", "attention", "mlp") or attrs.get(READY, 0) >= first_write:
            continue
        slots = [read_slot(r) for r in graph.successors(leaf) if r != chain[leaf]]
        if all(slot is not None and slot <= first_write for slot in slots):
            return leaf
    return None


def _combine(a, ca, b, cb) -> dict:
    out: dict = {}
    for part, factor in ((a, ca), (b, cb)):
        for nid, c in (part or {}).items():
            out[nid] = out.get(nid, 0) + c * factor
    return out
