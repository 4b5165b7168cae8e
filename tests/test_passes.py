"""Each pass on add10: the attributes it promises are there and right."""
import sympy
import torch

from compiler.passes.build_graph import build_graph
from compiler.passes.encodings import choose_encodings
from compiler.passes.value_sets import infer_value_sets
from dsl.resolve import load_program
from tests.conftest import ADD10


def _by_label(ir, label):
    return next(a for _, a in ir.graph.nodes(data=True) if a["label"] == label)


def test_build_graph_is_a_dag_of_the_nodes_the_output_needs(add10_ir):
    program = load_program(ADD10)
    ir = build_graph(program)
    assert program.output.id in ir.graph
    labels = {a["label"] for _, a in ir.graph.nodes(data=True)}
    assert {"value", "pair", "generates", "propagates", "carry", "total"} <= labels
    assert all(a["span"].line > 0 for _, a in ir.graph.nodes(data=True))
    roles = set().union(*(d["roles"] for _, _, d in ir.graph.edges(data=True)))
    assert roles == {"arg", "key", "query", "value"}


def test_value_sets_are_exact():
    ir = infer_value_sets(build_graph(load_program(ADD10)))
    assert _by_label(ir, "pair")["values"] == tuple(sympy.Integer(i) for i in range(19))
    assert _by_label(ir, "carry")["values"] == (False, True)
    assert _by_label(ir, "total")["values"] == tuple(sympy.Integer(i) for i in range(20))
    assert _by_label(ir, "value")["source"] == "token"
    assert _by_label(ir, "carry")["max_width"] == 11  # the window of places below p, at most 10 + 1
    indices = next(a for _, a in ir.graph.nodes(data=True) if a["node"].kind == "indices")
    assert indices["per_position"] == [sympy.Integer(i) for i in range(34)]


def test_encodings_choose_scalars_and_free_derived_values():
    ir = choose_encodings(infer_value_sets(build_graph(load_program(ADD10))))
    assert _by_label(ir, "pair")["realize"] == "derived"  # a sum: read through its inputs' weights
    assert _by_label(ir, "total")["realize"] == "derived"
    assert _by_label(ir, "generates")["encoding"] == "numerical"
    assert _by_label(ir, "carry")["realize"] == "attention"
    output = ir.graph.nodes[ir.program.output.id]
    assert (output["encoding"], output["realize"]) == ("categorical", "readout")  # in the unembedding
    assert (_by_label(ir, "total % 10")["encoding"], _by_label(ir, "total % 10")["realize"]) == ("numerical", "mlp")
    indices = next(a for _, a in ir.graph.nodes(data=True) if a["node"].kind == "indices")
    assert indices["encoding"] == "numerical"  # every select on positions is relative: no one-hot


def test_schedule_is_as_shallow_as_the_dependencies(add10_ir):
    assert add10_ir.n_layers == 2
    assert _by_label(add10_ir, "generates")["slot"] == 2
    assert _by_label(add10_ir, "carry")["slot"] == 3
    digit = _by_label(add10_ir, "total % 10")
    assert digit["slot"] == 4 and digit["last_read"] == 5  # read by the unembedding


def test_allocation_gives_disjoint_dimensions(add10_ir):
    # Disjoint except where a value takes over its dead input's dimension, or a sum lives in the
    # dimension of one of its values (both checked below).
    dims = [d for entry in add10_ir.residual_map if "updates" not in entry
            and not any(t.get("host") for t in entry.get("sum_of", [])) for d in entry["dims"]]
    assert len(dims) == len(set(dims)) == add10_ir.d_model
    assert set(dims) == set(range(add10_ir.d_model))
    assert all(e.get("written_by") == "sum" for e in add10_ir.residual_map if e["node"] in ("pair", "total"))


def test_weights_are_exact_and_traceable(add10_ir):
    w = add10_ir.weights
    carry = next(h for layer in w.layers for h in layer.heads if h.label == "carry")
    assert carry.mode == "first" and carry.slope == -carry.constants["G"] and carry.sink is not None
    assert carry.window == 10  # "q - k < LOOKBACK" is a sliding window, not a table
    # Selection lifts a key over the others only as far as the window reaches, not the whole
    # context: a smaller M keeps the score error a key's input error causes (times M) small.
    G = carry.constants["G"]
    assert carry.constants["M"] == G * carry.window + 2 * G
    shift = next(h for layer in w.layers for h in layer.heads if h.label == "shift(value, ALIGN)")
    M = shift.constants["M"]
    assert (shift.curvature, shift.slope, shift.center) == (-M, 0, 11)  # -M (d + 11)^2 peaks 11 back
    assert not shift.W_Q and not shift.W_K
    for layer in w.layers:
        for head in layer.heads:
            for table in (head.W_Q, head.W_K, head.W_V, head.W_O):
                assert all(isinstance(v, sympy.Basic) and v != 0 for v in table.values())
    traced = w.provenance["W_E"]
    assert set(traced) == set(w.W_E)  # every embedding entry is traced, under its pruned index
    assert {n for ids in traced.values() for n in ids} <= {e["id"] for e in add10_ir.residual_map}


def test_lowering_uses_transformerlens_names_and_shapes(add10_ir):
    config, state = add10_ir.lowered
    d = config["d_model"]
    assert state["embed.W_E"].shape == (14, d)
    assert state["pos_embed.W_pos"].shape == (34, d)
    for l in range(config["n_layers"]):
        H, e = config["n_heads"][l], config["d_head"][l]
        assert state[f"blocks.{l}.attn.W_Q"].shape == (H, d, e)
        assert state[f"blocks.{l}.attn.W_O"].shape == (H, e, d)
        assert state[f"blocks.{l}.mlp.W_in"].shape == (d, config["d_mlp"][l])
    assert state["unembed.W_U"].shape == (d, 14)
    assert all(t.dtype == torch.float64 for t in state.values())


def test_terms_of_a_sum_share_one_dimension(add10_ir):
    # total = shift(pair, LOOKBACK) + carry: both terms are computed by heads and read by nothing
    # else, so both heads write into one dimension and the MLP for 'total % 10' reads only it.
    graph = add10_ir.graph
    total = next(n for n, a in graph.nodes(data=True) if a["label"] == "total")
    terms = graph.nodes[total]["shared_terms"]
    assert sorted(graph.nodes[t]["label"] for t in terms) == ["carry", "shift(pair, LOOKBACK)"]
    entry = next(e for e in add10_ir.residual_map if e["id"] == total)
    assert entry["written_by"] == "sum" and len(entry["sum_of"]) == 2
    assert all(graph.nodes[t]["dims"] == graph.nodes[total]["dims"] for t in terms)
    modulo = next(m for layer in add10_ir.weights.layers for m in layer.mlps if m.label == "total % 10")
    assert {d for d, _ in modulo.W_in} == set(entry["dims"])


def test_an_mlp_of_one_dead_input_updates_its_dimension_in_place(add10_ir):
    # 'total % 10' reads only 'total', which nothing reads afterwards: its MLP adds
    # (total % 10) - total to total's dimension instead of copying total into a new one.
    entry = next(e for e in add10_ir.residual_map if e["node"] == "total % 10")
    total = next(e for e in add10_ir.residual_map if e["node"] == "total")
    assert entry["updates"] == "total" and entry["dims"] == total["dims"]
    modulo = next(m for layer in add10_ir.weights.layers for m in layer.mlps if m.label == "total % 10")
    assert modulo.units == 2 and not modulo.b_out  # the two kinks of the wrap, nothing to copy


def test_a_sum_can_live_in_the_dimension_of_one_of_its_values(add10_ir):
    # pair = value + shift(value, ALIGN): the head that computes the shift reads value in layer 0
    # before it writes, so it can add its output into value's own dimension, and the MLPs that
    # test pair read one dimension.
    value = next(e for e in add10_ir.residual_map if e["node"] == "value")
    pair = next(e for e in add10_ir.residual_map if e["node"] == "pair")
    assert pair["dims"] == value["dims"] and pair["written_by"] == "sum"
    assert [t["node"] for t in pair["sum_of"] if t.get("host")] == ["value"]
    for block in add10_ir.weights.layers[0].mlps:
        assert {d for d, _ in block.W_in} == set(value["dims"]), block.label


def _lsb(tmp_path=None, body=None):
    from compiler.api import compile_file
    from tests.conftest import ROOT
    if body is None:
        return compile_file(ROOT / "examples" / "add_lsb.rasp")[0]
    path = tmp_path / "p.rasp"
    path.write_text('layout base 10, lsb_first: "<bos>" a[3] "+" b[3] "=" => s[4]\n'
                    "let v = digit(tokens)\n" + body + "\n")
    return compile_file(path)[0]


def test_a_number_mixed_with_functions_of_itself_is_one_mlp_updating_it_in_place():
    ir = _lsb()
    wrapped, step = _by_label(ir, "wrapped"), _by_label(ir, "x >= 95")
    assert wrapped["realize"] == "mlp" and step["realize"] == "fused"
    # x lives in the embedding's dimension as value - x, so the update keeps that encoding.
    assert wrapped["stored_as"] == (-1, 0) and wrapped["dims"] == _by_label(ir, "value")["dims"]
    (mlp,) = ir.weights.layers[0].mlps
    assert mlp.units == 2  # the step alone: x itself stays where it is


def test_neighbouring_shifts_in_one_sum_share_a_head():
    ir = _lsb()
    near = _by_label(ir, "shift(value, A_BACK)")
    far_id, ratio = near["paired_with"]
    assert ratio == 10 and ir.graph.nodes[far_id]["label"] == "shift(value, A_BACK + 1)"
    assert ir.graph.nodes[far_id]["paired_into"] is not None
    (head_a, head_b) = ir.weights.layers[0].heads
    # The nearer key scores ln(10) above the further one: -M e^2 + ln(10) e about the centre
    # e = d + 21.5, halfway between the keys 21 and 22 back.
    assert head_a.center == sympy.Rational(43, 2) and head_a.slope == sympy.log(10)
    assert head_a.sink is None and list(head_a.W_O.values()) == [-11]


def test_shifts_with_opposite_signs_are_not_paired(tmp_path):
    ir = _lsb(tmp_path, "let x = 10 * shift(v, 4) - shift(v, 5) + shift(v, 2)\n"
                        "output nearest_digit((x + 90) // 20)")
    assert not any("paired_with" in a for _, a in ir.graph.nodes(data=True))
    assert len(ir.weights.layers[0].heads) == 3


def test_the_unembedding_is_tied_to_the_embedding_when_it_is_a_multiple_of_it():
    ir = _lsb()
    config, state = ir.lowered
    assert config["tied_unembed"] and "unembed.W_U" not in state
    assert float(state["unembed.logit_scale"]) == -0.2  # readout slope 2c * (-1/10) over value c
    from compiler.model.transformer import unembedding_matrix
    W_U = unembedding_matrix(state)
    assert torch.equal(W_U, state["embed.W_E"].T * -0.2)


def test_heads_reading_the_same_value_share_its_projection():
    config, state = _lsb().lowered
    assert config["n_heads"] == [2] and config["n_kv_heads"] == [1]
    assert state["blocks.0.attn.W_V"].shape[0] == 1 and state["blocks.0.attn.W_Q"].shape[0] == 2


def test_an_affine_function_of_an_embedded_value_reads_its_column(tmp_path):
    ir = _lsb(tmp_path, "let x = 10 * v + shift(v, 3)\noutput nearest_digit(x // 11)")
    assert _by_label(ir, "10 * v")["realize"] == "derived"
    columns = {d for (_, d) in ir.weights.W_E}
    assert len(columns) == 1  # v's column alone; 10 * v is read through it
