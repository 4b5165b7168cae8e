"""Select terms on positions alone compile through a query part, a key part and a distance part
(compiler.ir.position_terms), not through a table over one-hots (issue #12)."""
import pytest

from compiler.api import compile_file
from compiler.check.program import program_from_payload
from compiler.check.prove import prove
from compiler.model.file import load_model, save_model
from compiler.ir.position_terms import part_range, pattern, split_positions
from dsl.core import Const, Map, Var
from dsl.errors import Span
from tests.conftest import ROOT

SPAN = Span("t", 1, 1, 1, 1)
K, Q = Var(-1, "num", SPAN, role="k"), Var(-2, "num", SPAN, role="q")


def _c(value):
    return Const(-3, "num", SPAN, value=value)


def _op(op, *args, type_="num"):
    return Map(-4, type_, SPAN, op=op, args=args)


def _b(op, *args):
    return _op(op, *args, type_="bool")


POSITIONS = tuple(range(12))


def test_a_query_dependent_look_back_is_a_query_part_and_an_offset():
    # q >= 5 and k == q - 3: the queries from 5 on, each the key 3 back.
    predicate = _b("and", _b("ge", Q, _c(5)), _b("eq", K, _op("sub", Q, _c(3))))
    split = split_positions(predicate, POSITIONS, POSITIONS, 10)
    assert split.relative == ("offset", 3)
    # One one-sided part is enough: the queries from 5 on, or the keys from 2 on (same count).
    assert (split.query_positions, split.key_positions) in (
        (frozenset(range(5, 12)), None), (None, frozenset(range(2, 9))))


def test_a_comparison_of_places_affine_in_the_position_is_a_window():
    # key place 11 - k < query place 13 - q: exactly the keys less than 2 back.
    places_k = tuple(11 - p for p in POSITIONS)
    places_q = tuple(13 - p for p in POSITIONS)
    split = split_positions(_b("lt", K, Q), places_k, places_q, 10)
    assert split == (None, None, ("window", 1))


def test_two_keys_at_the_ends_of_a_window():
    # k == q or k == q - 4, from query 4 on: the convex parabola under a window of 4.
    predicate = _b("and", _b("ge", Q, _c(4)), _b("or", _b("eq", K, Q), _b("eq", K, _op("sub", Q, _c(4)))))
    split = split_positions(predicate, POSITIONS, POSITIONS, 10)
    assert split.relative == ("ends", 4) and split.query_positions == frozenset(range(4, 12))


def test_a_pattern_no_split_reproduces_is_left_to_a_table():
    # k + q == 11 (a reversal): no distance condition holds it.
    predicate = _b("eq", _op("add", K, Q), _c(11))
    assert split_positions(predicate, POSITIONS, POSITIONS, 10) is None


def test_a_part_may_hold_any_set_its_range_allows():
    predicate = _b("and", _b("ge", Q, _c(5)), _b("eq", K, _op("sub", Q, _c(3))))
    holds = pattern(predicate, POSITIONS, POSITIONS, 10)
    split = split_positions(predicate, POSITIONS, POSITIONS, 10)
    role = "q" if split.query_positions is not None else "k"
    required, allowed = part_range(holds, split, role, None)
    assert required <= allowed
    # Queries before 3 have no key 3 back, so they may be in the set or not; 3 and 4 may not.
    if role == "q":
        assert allowed == frozenset(range(12)) - {3, 4}
    else:
        assert allowed == frozenset(range(12)) - {0, 1}


@pytest.fixture(scope="module")
def add_binary(tmp_path_factory):
    path = tmp_path_factory.mktemp("position_terms") / "add_binary.pt"
    ir, stats, digest = compile_file(ROOT / "examples" / "add_binary.rasp")
    save_model(path, ir, stats, digest)
    return stats, load_model(path)[1]


def test_add_binary_needs_no_table_and_is_proved(add_binary):
    stats, payload = add_binary
    # Its selects are all on positions (query ranges, key ranges, look-backs and a window): with
    # tables over one-hot positions it took 350 nonzero weights.
    assert stats["nonzero_params"] <= 100
    assert not any(e["encoding"] == "categorical" and e["node"] == "indices" for e in payload["residual_map"])
    program = program_from_payload(payload, None)
    for dtype in ("float64", "float32"):
        proof = prove(payload, program, dtype)
        assert proof.status == "proved", proof.reason


def test_a_wrong_positional_column_is_not_proved(add_binary):
    _, payload = add_binary
    dim = next(e["dims"][0] for e in payload["residual_map"] if e.get("helper") and e["written_by"] == "embed")
    state = {k: v.clone() for k, v in payload["state_dict"].items()}
    column = state["pos_embed.W_pos"][:, dim]
    column[:] = 1 - column  # every position the other way round
    proof = prove(dict(payload, state_dict=state), program_from_payload(payload, None))
    assert proof.status != "proved"
