"""Small programs through the same passes: every aggregate mode, compiled against the interpreter."""
import random

import pytest
import torch

from compiler.api import compile_file, load_compiled
from dsl.semantics import evaluate

LAYOUT = 'layout base 10, msb_first: "<bos>" a[3] "+" b[3] "=" => sum[4] "<eos>"\n'

PROGRAMS = {
    "running mean, floored": """
        let m = mean(select(indices, indices, k <= q), digit(tokens))
        output digit_token(m // 1)""",
    "decayed sum picks the digit one back": """
        let s = sum(select(indices, indices, q - 2 <= k), digit(tokens), decay=10)
        output digit_token((s * 10) // 1 % 10)""",
    "plain sum counts big digits": """
        let big = digit(tokens) >= 5
        output digit_token(sum(select(indices, indices, true), big) % 10)""",
    "last plus sign, distance from it": """
        let plus_at = last(select(tokens, indices, k == "+"), indices, default=0)
        output digit_token((indices - plus_at) % 10)""",
    "first nonzero digit": """
        let nonzero = digit(tokens) != 0
        output digit_token(first(select(nonzero, indices, k), digit(tokens)))""",
    "previous token, categorical": """
        let previous: categorical = shift(tokens, 1, default="<bos>")
        output previous""",
    "conditional over two aggregates": """
        let a_digit = shift(digit(tokens), 4)
        let here = digit(tokens)
        output digit_token(max(a_digit, here) if here > 4 else min(a_digit, here))""",
}


def _random_sequences(layout, count, seed):
    rng = random.Random(seed)
    vocab = layout.vocab
    return [[layout.begin] + [rng.choice(vocab) for _ in range(layout.n_ctx - 1)] for _ in range(count)]


@pytest.mark.parametrize("name", sorted(PROGRAMS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_program_matches_interpreter_everywhere(name, dtype, tmp_path):
    path = tmp_path / "p.rasp"
    path.write_text(LAYOUT + PROGRAMS[name])
    ir, stats, _ = compile_file(path, dtype=dtype)
    _assert_matches_interpreter(ir, seed=len(name))


def _assert_matches_interpreter(ir, seed, count=60):
    """The model's next-token choice equals the program's output at every position."""
    model = load_compiled(ir)
    layout = ir.program.layout
    sequences = _random_sequences(layout, count, seed)
    ids = torch.tensor([[layout.vocab.index(t) for t in s] for s in sequences])
    with torch.no_grad():
        predicted = model(ids).argmax(-1)
    for row, tokens in enumerate(sequences):
        want = evaluate(ir.program, tokens).output
        assert [layout.vocab[i] for i in predicted[row].tolist()] == want, tokens


def test_selector_width_counts_digits_so_far(tmp_path):
    path = tmp_path / "w.rasp"
    path.write_text(LAYOUT + """
        let digits_so_far = selector_width(select(tokens, indices, k != "+" and k != "=" and k != "<bos>"))
        output digit_token(digits_so_far % 10)""")
    for dtype in ("float64", "float32"):
        ir, _, _ = compile_file(path, dtype=dtype)
        _assert_matches_interpreter(ir, seed=3)


def test_nearest_readout_needs_no_mlp(tmp_path):
    path = tmp_path / "r.rasp"
    digits = ", ".join(f'"{d}": {d}' for d in range(10))
    path.write_text(LAYOUT + f"""
        let pair_mean = mean(select(indices, indices, k <= q and q - 1 <= k), digit(tokens))
        output nearest(pair_mean + 1/4, {{{digits}, "=": 100}})""")
    for dtype in ("float64", "float32"):
        ir, stats, _ = compile_file(path, dtype=dtype)
        assert stats["per_layer"][-1]["d_mlp"] == 0  # the readout lives in the unembedding
        _assert_matches_interpreter(ir, seed=5)


def test_nearest_tie_is_a_compile_error(tmp_path):
    from dsl.errors import AdderError
    path = tmp_path / "tie.rasp"
    path.write_text(LAYOUT + 'let m = mean(select(indices, indices, q - 1 <= k), digit(tokens))\n'
                    'output nearest_digit(m)\n')
    with pytest.raises(AdderError, match="equally near"):
        compile_file(path)
