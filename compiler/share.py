"""Pass 5: sums of computed values written straight into one dimension.

A sum whose terms are computed by sublayers (attention outputs, MLP outputs) and read by nothing
else needs no dimension per term: the residual stream is itself a sum, so every term's sublayer
can add its share into one dimension, and whoever reads the sum reads one dimension instead of
several, which saves a weight per term in every reader.

A sum here is a `root`: a linear derived value (sums, differences, multiples by constants) that
is not itself a term of a bigger linear value. Its terms are found by expanding the linear
values under it that have no other reader. A term can share the root's dimension when it is a
numerical attention or MLP value whose only reader is the value that expanded it.

Adds to each sharing term: share = (root id, coefficient): its sublayer writes
coefficient * (value - default) into the root's dimension. Adds to the root: shared_terms, the
ids of those terms (at least two; one term alone gains nothing).
"""
from __future__ import annotations

from dataclasses import replace

import sympy

from dsl.core import Map
from dsl.semantics import num
from compiler.ir import CompileIR

LINEAR = {"add", "sub", "neg", "mul", "div"}


def share_sums(ir: CompileIR) -> CompileIR:
    graph = ir.graph.copy()
    output = ir.program.output.id

    def only_reader(nid):
        readers = list(graph.successors(nid))
        return readers[0] if len(readers) == 1 and nid != output else None

    def linear(nid):
        attrs = graph.nodes[nid]
        return (attrs.get("realize") == "derived" and attrs["encoding"] == "numerical"
                and isinstance(attrs["node"], Map) and attrs["node"].op in LINEAR)

    def expand(nid) -> dict:
        """{term id: coefficient} of a linear value, through linear values only it reads."""
        node = graph.nodes[nid]["node"]
        parts = []
        for arg in node.args:
            if graph.nodes[arg.id]["realize"] == "const":
                parts.append(None)
            elif linear(arg.id) and only_reader(arg.id) == nid:
                parts.append(expand(arg.id))
            else:
                parts.append({arg.id: sympy.Integer(1)} if only_reader(arg.id) == nid else {})
        constant = lambda i: num(graph.nodes[node.args[i].id]["values"][0])
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

    for root in sorted(graph.nodes):
        if not linear(root):
            continue
        reader = only_reader(root)
        if reader is not None and linear(reader):
            continue  # a term of a bigger sum: that sum is the root
        terms = {t: c for t, c in expand(root).items() if c != 0 and graph.nodes[t]["encoding"] == "numerical"
                 and graph.nodes[t]["realize"] in ("attention", "mlp")}
        # Two MLPs in one layer would share the layer's output bias on that dimension, so a
        # proof could not tell their shares apart: one MLP term per layer.
        seen_slots = set()
        for term in sorted(terms):
            if graph.nodes[term]["realize"] == "mlp":
                if graph.nodes[term]["slot"] in seen_slots:
                    del terms[term]
                seen_slots.add(graph.nodes[term]["slot"])
        if len(terms) < 2:
            continue
        for term, coefficient in terms.items():
            graph.nodes[term]["share"] = (root, coefficient)
        graph.nodes[root]["shared_terms"] = sorted(terms)
    return replace(ir, graph=graph)


def _combine(a, ca, b, cb) -> dict:
    out: dict = {}
    for part, factor in ((a, ca), (b, cb)):
        for nid, c in (part or {}).items():
            out[nid] = out.get(nid, 0) + c * factor
    return out
