"""Random programs aimed at the MLP realisation (compiler.ir.forms, passes.weights.ridges and
passes.weights.branches), from one seed.

Each program has one or two digit operands of 1-3 digits, so its input space is small enough to
check exhaustively, and builds its answer from shifted copies of the digit value combined the ways
those passes take apart: conditionals on position flags and on token-derived booleans (nested,
repeated, contradictory, negated), branches that are constants, booleans, fractions or negative,
min/max/abs and comparisons of affine forms, differences of inputs next to the inputs themselves,
and shared sub-expressions. The output is `nearest_digit` or a categorical `digit_token`.
"""
from __future__ import annotations

import random


class _Gen:
    def __init__(self, rng: random.Random, max_digits: int, depth: int, shifts: int | None):
        self.rng = rng
        self.depth = depth
        self.n = rng.choice([1, 1, 2, 2, 3][:2 * max_digits - 1])
        self.two = rng.random() < 0.7
        # positions: <bos> 0, a 1..n, ["+" n+1, b n+2..2n+1], "=", s ...
        self.eq = (2 * self.n + 2) if self.two else (self.n + 1)
        self.first = self.eq + 1
        offsets = list(range(1, self.eq + 1))
        self.offsets = offsets if shifts is None else rng.sample(offsets, min(shifts, len(offsets)))
        self.lets: list[str] = []
        self.nums: list[str] = []
        self.bools: list[str] = []

    def shift(self) -> str:
        return f"shift(value, {self.rng.choice(self.offsets)})"

    def position(self) -> str:
        r = self.rng
        p = r.choice(["start(s)", "end(s)", "start(s) + 1", str(r.randint(self.first - 1, self.first + self.n))])
        return f"indices {r.choice(['==', '!=', '>=', '<', '<=', '>'])} {p}"

    def constant(self) -> str:
        r = self.rng
        return r.choice([str(r.randint(0, 9)), f"-{r.randint(1, 5)}", f"{r.randint(1, 8)}/{r.randint(2, 4)}", "0"])

    def leaf(self) -> str:
        r = self.rng
        pool = ["value", self.shift(), self.shift(), self.constant()] + self.nums * 2
        return r.choice(pool)

    def boolean(self, depth: int) -> str:
        r = self.rng
        roll = r.random()
        if self.bools and roll < 0.25:
            return r.choice(self.bools)
        if roll < 0.45:
            return self.position()
        if roll < 0.6:
            return f"value {r.choice(['>', '<=', '==', '!='])} {r.randint(0, 9)}"
        if roll < 0.75 or depth <= 0:
            return f"{self.affine(1)} {r.choice(['>', '>=', '<', '<=', '==', '!='])} {self.affine(1)}"
        if roll < 0.85:
            return f"not ({self.boolean(depth - 1)})"
        return f"({self.boolean(depth - 1)}) {r.choice(['and', 'or'])} ({self.boolean(depth - 1)})"

    def affine(self, depth: int) -> str:
        r = self.rng
        if depth <= 0 or r.random() < 0.4:
            return self.leaf()
        a, b = self.affine(depth - 1), self.affine(depth - 1)
        roll = r.random()
        if roll < 0.35:
            return f"({a} - {b})"
        if roll < 0.6:
            return f"({a} + {b})"
        if roll < 0.75:
            return f"({a}) / {r.randint(2, 3)}"
        if roll < 0.9:
            return f"{r.choice([-2, -1, 2, 3])} * ({a})"
        return f"-({a})"

    def numeric(self, depth: int) -> str:
        r = self.rng
        roll = r.random()
        if depth <= 0 or roll < 0.15:
            return self.affine(1)
        if roll < 0.5:
            return self.chain(depth)
        if roll < 0.62:
            return f"{r.choice(['min', 'max'])}({self.numeric(depth - 1)}, {self.numeric(depth - 1)})"
        if roll < 0.7:
            return f"abs({self.numeric(depth - 1)})"
        if roll < 0.8:
            return f"({self.affine(1)}) * ({self.boolean(1)})"
        if roll < 0.9:
            return f"({self.numeric(depth - 1)} {r.choice(['+', '-'])} {self.numeric(depth - 1)})"
        return f"({self.boolean(1)})"

    def branch(self, depth: int) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.2:
            return self.constant()
        if roll < 0.3:
            return f"({self.boolean(0)})"
        if roll < 0.8 or depth <= 1:
            return self.affine(2)
        return self.numeric(depth - 1)

    def chain(self, depth: int) -> str:
        r = self.rng
        length = r.randint(1, 4)
        conds = []
        for _ in range(length):
            if conds and r.random() < 0.15:
                c = r.choice(conds)  # the same condition twice
            elif conds and r.random() < 0.1:
                c = f"not ({r.choice(conds)})"
            else:
                c = self.boolean(1)
            conds.append(c)
        text = self.branch(depth)
        for c in reversed(conds):
            text = f"({self.branch(depth)} if {c} else {text})"
        return text

    def program(self) -> str:
        r = self.rng
        n = self.n
        layout = f'"<bos>" a[{n}] "+" b[{n}] "="' if self.two else f'"<bos>" a[{n}] "="'
        lines = [f"const N = {n}",
                 f'layout base 10, msb_first: {layout} => s[N] "<eos>"',
                 "let value = digit(tokens)"]
        for i in range(r.randint(0, 3)):
            if r.random() < 0.6:
                name = f"x{i}"
                lines.append(f"let {name} = {self.shift() if r.random() < 0.6 else self.affine(2)}")
                self.nums.append(name)
            else:
                name = f"c{i}"
                lines.append(f"let {name} = {self.boolean(1)}")
                self.bools.append(name)
        body = self.numeric(self.depth)
        if r.random() < 0.3:
            lines.append(f"let e = {body}")
            body = r.choice(["e", "e + e", "(e if value > 3 else -e)", "max(e, 0) - min(e, 0)"])
        roll = r.random()
        if roll < 0.55:
            out = f"nearest_digit({body})"
        elif roll < 0.85:
            out = f"digit_token(({body}) // 1 % 10)"
        else:
            out = f"digit_token(min(max(({body}) // 1, 0), 9))"
        lines.append(f'output "<eos>" if indices == end(s) else {out}')
        return "\n".join(lines) + "\n"


def mlp_program(seed: int, max_digits: int = 3, depth: int = 3, shifts: int | None = None) -> str:
    """A program from its seed: operands of at most `max_digits` digits, the answer expression
    `depth` levels deep, reading at most `shifts` distinct shifts of the digit value (any, if
    None): each is one more ten-valued MLP input, and an MLP's table grows tenfold with it."""
    return _Gen(random.Random(seed), max_digits, depth, shifts).program()
