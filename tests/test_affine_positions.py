"""Select terms on positions that pair each query with one key on a line k = alpha*q + beta (a
reversal: k + q == c) are recognised by compiler.ir.position_terms.affine_match, checked on every
pair of positions; a relation off one line is refused (issue #12)."""
from fractions import Fraction

import pytest

from compiler.api import compile_file
from compiler.check.program import program_from_payload
from compiler.check.prove import prove
from compiler.check.verify import verify
from compiler.ir.position_terms import affine_match, pattern, split_positions
from compiler.model.file import load_model, save_model
from compiler.passes import encodings
from compiler.passes.weights import attention
from tests.conftest import ROOT
from compiler.ir.attrs import NODE
from dsl.core import Aggregate
from tests.test_position_terms import _b, _c, _op, K, Q


def _sum_is(c):
    return _b("eq", _op("add", K, Q), _c(c))


@pytest.mark.parametrize("n, width", [(4, 4), (10, 10), (3, 7), (6, 2)])
def test_a_reversal_of_a_field_is_a_line_of_slope_minus_one(n, width):
    # "<bos>" a[n] "=" r[n] "<eos>"-like: the query at start(r) - 1 + i reads a's digit n - i,
    # i.e. k + q == end(a) + start(r) - 1, with a field a at 1..n and the answer after "=".
    end_a = n
    start_r = n + 2
    positions = tuple(range(2 * n + width))
    match = affine_match(_sum_is(end_a + start_r - 1), positions, positions, 10)
    assert match is not None
    assert (match.alpha, match.beta) == (Fraction(-1), Fraction(end_a + start_r - 1))
    holds = pattern(_sum_is(end_a + start_r - 1), positions, positions, 10)
    for q, row in enumerate(holds):
        for k, held in enumerate(row):
            in_part = match.query_positions is None or q in match.query_positions
            assert held == (in_part and k == match.alpha * q + match.beta)
    # The distance split cannot express it: this is what the line adds.
    assert split_positions(_sum_is(end_a + start_r - 1), positions, positions, 10) is None


def test_values_affine_in_the_position_give_the_line_in_positions():
    # place numbers 11 - p on the key side and p - 5 on the query side, k == q:
    # 11 - k == q - 5, so k = 16 - q.
    positions = range(14)
    match = affine_match(_b("eq", K, Q), tuple(11 - p for p in positions),
                         tuple(p - 5 for p in positions), 10)
    assert (match.alpha, match.beta) == (Fraction(-1), Fraction(16))
    assert match.query_positions == frozenset(range(8, 14))


def test_a_look_back_is_a_line_of_slope_one():
    positions = tuple(range(9))
    match = affine_match(_b("eq", K, _op("sub", Q, _c(2))), positions, positions, 10)
    assert (match.alpha, match.beta) == (1, -2) and match.query_positions == frozenset(range(2, 9))


@pytest.mark.parametrize("predicate", [
    _b("le", _op("add", K, Q), _c(9)),  # many keys per query
    _b("eq", _op("mul", K, _c(2)), _op("mod", Q, _c(3))),  # one key per query, off any line
    _b("or", _sum_is(9), _sum_is(12)),  # two lines
])
def test_a_relation_off_one_line_is_refused(predicate):
    positions = tuple(range(12))
    assert affine_match(predicate, positions, positions, 10) is None


def test_a_term_that_never_selects_is_refused():
    positions = tuple(range(5))
    assert affine_match(_sum_is(100), positions, positions, 10) is None


# ----- the compiled reversal: a parabola in the positions, not a match over one-hot positions

MIRROR = """const N = {n}
layout base 10, msb_first: "<bos>" a[N] "=" => r[N] "<eos>"
meaning r = {meaning}
let value = digit(tokens)
let mirror = select(indices, indices, k + q == end(a) + start(r) - 1)
output "<eos>" if indices == end(r) else nearest_digit(mean(mirror, value))
"""


def _mirror(tmp_path, n):
    digits = [f"a // {10 ** i} % 10 * {10 ** (n - 1 - i)}" for i in range(n)]
    path = tmp_path / f"mirror{n}.rasp"
    path.write_text(MIRROR.format(n=n, meaning=" + ".join(digits)))
    return path


def _compiled(path, tmp_path):
    ir, stats, digest = compile_file(path)
    saved = tmp_path / (path.stem + ".pt")
    save_model(saved, ir, stats, digest)
    return stats, load_model(saved)[1]


def _without_lines(monkeypatch):
    """The compiler as it was before lines: every such term a match over one-hot positions."""
    for module in (encodings, attention):
        monkeypatch.setattr(module, "position_lines", lambda *args: {})


@pytest.mark.parametrize("n", [3, 4, 10])
def test_a_reversal_is_proved_and_smaller_than_the_match(n, tmp_path, monkeypatch):
    path = _mirror(tmp_path, n)
    stats, payload = _compiled(path, tmp_path)
    # indices is read as a number: one W_pos column holds the position, no one-hot.
    assert not any(e["encoding"] == "categorical" and e["node"] == "indices" for e in payload["residual_map"])
    program = program_from_payload(payload, None)
    report = verify(payload, program, samples=3000, per_stratum=2, progress=False)
    assert report.status == "holds", report.status
    for dtype in ("float64", "float32"):
        proof = prove(payload, program, dtype)
        assert proof.status == "proved", proof.reason
    _without_lines(monkeypatch)
    table_stats, _ = _compiled(path, tmp_path)
    assert stats["nonzero_params"] < table_stats["nonzero_params"]
    n_ctx = stats["n_ctx"]
    # The match costs three weights per position; the parabola one (the position's own column).
    assert table_stats["nonzero_params"] - stats["nonzero_params"] >= 2 * n_ctx - 12


def test_the_head_has_no_weight_per_position(tmp_path):
    small, _ = _compiled(_mirror(tmp_path, 4), tmp_path)
    large, _ = _compiled(_mirror(tmp_path, 12), tmp_path)
    # Without the positional encodings (the leaderboard's count) the size does not grow with N.
    assert small["nonzero_params_leaderboard"] == large["nonzero_params_leaderboard"]


def test_a_line_whose_top_falls_on_a_query_that_selects_nothing_is_refused():
    # k + q == 8 and q >= 6: the queries 4 and 5 select nothing, but their line keys 4 and 3
    # exist, so the parabola would pick them.
    from compiler.passes.encodings import line_realised
    positions = tuple(range(12))
    match = affine_match(_b("and", _sum_is(8), _b("ge", Q, _c(6))), positions, positions, 10)
    assert match is not None and match.query_positions == frozenset({6, 7, 8})
    assert not line_realised(match, 12)
    assert line_realised(affine_match(_sum_is(8), positions, positions, 10), 12)


def _mirror_lines(path):
    """position_lines of the compiled mirror head's terms."""
    ir, _, _ = compile_file(path)
    graph, layout = ir.graph, ir.program.layout
    (nid,) = [n for n, a in graph.nodes(data=True) if isinstance(a[NODE], Aggregate)]
    terms = encodings.live_terms(graph.nodes[nid][NODE].selector, graph, layout.base)
    return encodings.position_lines(terms, graph, layout.n_ctx, layout.base)


def test_a_head_with_another_parabola_keeps_the_match(tmp_path):
    # An offset term takes the head's curvature: the reversal then stays a match.
    path = _mirror(tmp_path, 4)
    assert list(_mirror_lines(path)) == [0]
    path.write_text(path.read_text().replace(
        "let mirror = select(indices, indices, k + q == end(a) + start(r) - 1)",
        "let mirror = select(indices, indices, k + q == end(a) + start(r) - 1) & "
        "select(indices, indices, k == q - 5)"))
    assert _mirror_lines(path) == {}


def test_place_numbers_affine_in_the_position_read_the_line_too(tmp_path):
    # bench/forms/reverse/places.rasp: end(a) - indices against indices - (start(r) - 1), k == q:
    # the same line in positions, each side read back as a position through its affine map.
    path = ROOT / "bench" / "forms" / "reverse" / "places.rasp"
    stats, payload = _compiled(path, tmp_path)
    assert not any(e["encoding"] == "categorical" for e in payload["residual_map"] if e["node"] == "indices")
    program = program_from_payload(payload, None)
    assert verify(payload, program, samples=3000, per_stratum=2, progress=False).status == "holds"
    for dtype in ("float64", "float32"):
        assert prove(payload, program, dtype).status == "proved"
