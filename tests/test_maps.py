"""The residual and weight maps (compiler.ir.maps): typed entries read back unchanged from the plain
dicts a model file stores, and the maps' arithmetic, which the prover and the inside checks use,
agreeing with the compiler's own (compiler.ir.reads) on every stored value of every example. The two
are written apart on purpose, so that the proof checks the compiler; this is where they meet."""
from dataclasses import fields

import pytest
import sympy
import torch

from dsl.resolve import load_program
from dsl.semantics import EvaluationError, apply_op, num
from compiler.check.stored import same_value
from tests.golden import programs
from compiler.ir.maps import (HEAD_KEYS, HEAD_OPTIONAL_KEYS, RESIDUAL_KEYS, RESIDUAL_OPTIONAL_KEYS, SUM_TERM_KEYS,
                              SUM_TERM_OPTIONAL_KEYS, UNITS_KEYS, UNREAD, ResidualEntry, SumTerm, WeightEntry,
                              value_encoders)
from compiler.ir.reads import Reads
from compiler.passes.allocate import allocate
from compiler.passes.build_graph import build_graph
from compiler.pipeline import PASSES

# selector_width: the one kind of value with a helper entry, which no example has.
WIDTH = """const N = 3
layout base 10, msb_first: "<bos>" a[N] "=" => r[N + 1] "<eos>"
let length = selector_width(select(1, 1, k == q))
let value = digit(tokens)
output "<eos>" if indices == end(r) else nearest_digit((length + value) % 10)
"""
SOURCES = [(path.name, path, None) for path in programs()] + [("selector_width", "<width>", WIDTH)]


@pytest.fixture(scope="module", params=SOURCES, ids=[name for name, _, _ in SOURCES])
def compiled(request):
    """(the IR right after allocate, whose dimensions the compiler's reads name; the final IR)."""
    _, path, text = request.param
    ir = build_graph(load_program(path, None, text), {"dtype": "float64", "self_check": False})
    allocated = None
    for compiler_pass in PASSES:
        ir = compiler_pass(ir)
        if compiler_pass is allocate:
            allocated = ir
    return allocated, ir


def test_the_schema_names_every_field_and_only_those():
    assert {f.name for f in fields(ResidualEntry)} == set(RESIDUAL_KEYS + RESIDUAL_OPTIONAL_KEYS)
    assert {f.name for f in fields(SumTerm)} == set(SUM_TERM_KEYS + SUM_TERM_OPTIONAL_KEYS)
    assert {f.name for f in fields(WeightEntry)} == set(HEAD_KEYS + HEAD_OPTIONAL_KEYS + UNITS_KEYS)


def test_every_entry_reads_back_as_the_same_dict(compiled):
    allocated, final = compiled
    for entry in allocated.residual_map + final.residual_map:
        again = ResidualEntry.from_dict(entry).to_dict()
        assert again == entry and list(again) == list(entry)  # the same keys in the same order
    for entry in final.weight_map:
        again = WeightEntry.from_dict(entry).to_dict()
        assert again == entry and list(again) == list(entry)


def _evaluated(read, vector: dict):
    """An Affine read applied, exactly, to a residual vector given as {dimension: value}."""
    return sum((c * vector.get(d, 0) for d, c in read.coeffs.items()), sympy.Integer(0)) + read.bias


def _vector(*encodings) -> dict:
    total = {}
    for encoding in encodings:
        for d, c in encoding.items():
            total[d] = total.get(d, 0) + c
    return total


def test_the_compiler_reads_back_every_value_the_map_encodes(compiled):
    ir, _ = compiled
    graph, reads = ir.graph, Reads(ir.graph, ir.program.layout.base)
    entries = [ResidualEntry.from_dict(e) for e in ir.residual_map]
    for entry in entries:
        if entry.helper or entry.sum_of is not None:
            continue
        attrs = graph.nodes[entry.id]
        # The prover offsets a number by its node's default where an attention head writes it;
        # the map, by the default it names: the two are one rule only if the map names exactly those.
        assert (entry.default is not None) == (entry.written_by == "attention"), entry
        if entry.default is not None:
            assert entry.default == str(attrs["node"].default)
        for value in attrs["values"]:
            vector = entry.encode(value)
            if entry.encoding == "numerical":
                assert _evaluated(reads.numeric(entry.id), vector) == num(value), (entry.node, value)
            if entry.encoding == "categorical" or len(attrs["values"]) <= 2:
                for other, indicator in reads.categorical(entry.id).items():
                    assert _evaluated(indicator, vector) == int(other == value), (entry.node, value, other)


def _leaves(graph, nid) -> list:
    """The stored values (and shared terms) a derived value is computed from."""
    out = []
    for arg in graph.nodes[nid]["node"].args:
        attrs = graph.nodes[arg.id]
        if attrs["realize"] == "const":
            continue
        # A sum's own dimension is read only through its terms (compiler.ir.reads).
        stored = "dims" in attrs and "shared_terms" not in attrs
        out += [arg.id] if stored else _leaves(graph, arg.id)
    return list(dict.fromkeys(out))


def _value_of(graph, nid, assignment, base):
    if nid in assignment:
        return assignment[nid]
    attrs = graph.nodes[nid]
    if attrs["realize"] == "const":
        return attrs["values"][0]
    args = tuple(_value_of(graph, a.id, assignment, base) for a in attrs["node"].args)
    return apply_op(attrs["node"].op, args, base)


def test_the_compiler_reads_a_sum_from_its_terms_shares(compiled):
    ir, _ = compiled
    graph, base = ir.graph, ir.program.layout.base
    reads = Reads(graph, base)
    encoders = value_encoders([ResidualEntry.from_dict(e) for e in ir.residual_map])
    for entry in map(ResidualEntry.from_dict, ir.residual_map):
        if entry.sum_of is None:
            continue
        leaves = _leaves(graph, entry.id)
        assert {t.id for t in entry.sum_of} <= set(leaves)
        first = {leaf: graph.nodes[leaf]["values"][0] for leaf in leaves}
        # Each value in turn over its whole set, the others at their first: the read is affine.
        for leaf in leaves:
            for value in graph.nodes[leaf]["values"]:
                assignment = first | {leaf: value}
                try:
                    want = num(_value_of(graph, entry.id, assignment, base))
                except EvaluationError:
                    continue
                vector = _vector(*(encoders[n](v) for n, v in assignment.items()))
                assert _evaluated(reads.numeric(entry.id), vector) == want, (entry.node, assignment)


def _row(encoding: dict, d_model: int) -> torch.Tensor:
    row = torch.zeros(d_model, dtype=torch.float64)
    for d, c in encoding.items():
        row[d] += float(c)
    return row


def _close(decoded, exact) -> bool:
    return abs(decoded - float(exact)) <= 1e-9 * max(1.0, abs(float(exact)))


@pytest.mark.parametrize("stage", ["allocated", "final"])
def test_every_value_decodes_as_it_was_encoded(compiled, stage):
    ir = compiled[0] if stage == "allocated" else compiled[1]
    graph, d_model = ir.graph, ir.d_model
    for entry in map(ResidualEntry.from_dict, ir.residual_map):
        if entry.sum_of is not None:  # the dimension holds the sum of the terms' shares
            for term in (t for t in entry.sum_of if not t.host):
                for value in graph.nodes[term.id]["values"]:
                    decoded = entry.decode(_row(entry.encode(value, term.id), d_model))
                    assert _close(decoded, term.share(value)), (entry.node, term.node, value)
            continue
        values = list(graph.nodes[entry.id]["values"])
        for value in values:
            decoded = entry.decode(_row(entry.encode(value), d_model))
            if entry.encoding == "numerical":
                assert _close(decoded, num(value)), (entry.node, value)
            else:
                assert same_value(entry, decoded, value), (entry.node, value, decoded)
                assert decoded == str(value) or str(value) in entry.unread_values, (entry.node, value)
        if entry.unread_values:
            assert entry.decode(torch.zeros(d_model, dtype=torch.float64)) == UNREAD
