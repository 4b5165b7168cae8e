"""Random programs that type-check by construction, from one seed.

A plain `random.Random(seed)` drives a grammar walk: the same seed gives the same program text on
every machine and Python version, so a campaign's failures are found again from their seed alone
(hypothesis is not used: its shrinking needs the oracle in-process, and a campaign runs each
program in a worker that may have to be killed).

Programs stay small so that one compiles and checks in well under a second: layouts of one to three
operands of one to three digits in base 2, 3 or 10, a handful of lets, and expressions a few levels
deep. Types are tracked (number, boolean, token, selector), so nearly every program parses and
type-checks; what remains to fail are the semantic checks (ties, division by zero for some input,
selectors that never select, ...), which must then be located errors.
"""
from __future__ import annotations

import random

NUM, BOOL, TOK, SEL = "number", "boolean", "token", "selector"
SEPARATORS = ["+", "-", "*", "|", ",", "#"]
COMPARISONS = ["==", "!=", "<", "<=", ">", ">="]


class _Layout:
    """The layout drawn for one program, and the facts expressions may name."""

    def __init__(self, rng: random.Random):
        self.base = rng.choice([2, 3, 10, 10])
        self.order = rng.choice(["msb_first", "lsb_first"])
        count = rng.choice([1, 2, 2, 2, 3])
        top_digits = {2: 6, 3: 5, 10: 3}[self.base]  # keeps most input spaces exhaustively checkable
        self.widths = {}
        for name in "abc"[:count]:
            room = top_digits - sum(self.widths.values()) - (count - len(self.widths) - 1)
            self.widths[name] = rng.randint(1, max(1, min(3, room)))
        self.answer = rng.choice(["s", "r"])
        self.answer_width = rng.randint(1, 3)
        self.end_token = rng.random() < 0.7
        self.separators = rng.sample(SEPARATORS, count - 1)
        self.use_const_width = rng.random() < 0.3
        length = 1 + sum(self.widths.values()) + (count - 1) + 1 + self.answer_width + self.end_token
        self.n_ctx = length - 1

    @property
    def literals(self) -> list[str]:
        return ["<bos>", *self.separators, "="] + (["<eos>"] if self.end_token else [])

    def text(self, rng: random.Random) -> list[str]:
        lines, width_text = [], {}
        if self.use_const_width:
            lines.append(f"const W = {self.answer_width - 1}")
            answer_width = "W + 1"
        else:
            answer_width = str(self.answer_width)
        items = ['"<bos>"']
        for index, (name, width) in enumerate(self.widths.items()):
            if index:
                items.append(f'"{self.separators[index - 1]}"')
            width_text[name] = str(width)
            items.append(f"{name}[{width}]")
        items.append('"="')
        answer = f"{self.answer}[{answer_width}]" + (' "<eos>"' if self.end_token else "")
        options = [f"base {self.base}", self.order]
        if self.order == "msb_first" and rng.random() < 0.3:
            options = options[:1]  # msb_first is the default
        rng.shuffle(options)
        lines.append(f"layout {', '.join(options)}: {' '.join(items)} => {answer}")
        return lines

    def facts(self) -> list[str]:
        names = [*self.widths, self.answer]
        return [f"{fn}({name})" for fn in ("start", "end", "width") for name in names]


class _Expressions:
    """Expressions of each type (number, boolean, token, selector) over the names defined so far."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.layout = _Layout(self.rng)
        self.names: dict[str, str] = {}  # let or const name -> type
        self.consts: list[str] = []
        self.defs: list[tuple[str, int]] = []  # (name, arity); every def takes and gives numbers
        self.lines: list[str] = []

    # ----- leaves
    def small_int(self) -> str:
        return str(self.rng.choice([0, 1, 1, 2, 2, 3, 4, 5, self.layout.base - 1, self.layout.base]))

    def offset(self) -> str:
        """A shift distance: a constant below the context."""
        r = self.rng.random()
        if r < 0.2 and self.consts:
            return self.rng.choice(self.consts)
        if r < 0.35:
            order = list(self.layout.widths) + [self.layout.answer]
            a, b = sorted(self.rng.sample(order, 2), key=order.index)  # b later: a distance back
            return f"start({b}) - start({a})" if self.rng.random() < 0.5 else f"end({b}) - end({a})"
        return str(self.rng.randint(0, min(4, self.layout.n_ctx - 1)))

    def named(self, type_name: str) -> list[str]:
        return [n for n, t in self.names.items() if t == type_name]

    # ----- expressions
    def number(self, depth: int) -> str:
        rng = self.rng
        pool = self.named(NUM)
        if depth <= 0 or rng.random() < 0.25:
            leaves = ["digit(tokens)", "digit(tokens)", "indices", self.small_int()] + pool * 2 + self.consts
            return rng.choice(leaves)
        choice = rng.choices(
            ["shift", "add", "sub", "scale", "mod", "floordiv", "minmax", "abs", "cond", "agg", "width",
             "bool", "call", "product", "power"],
            [10, 8, 5, 4, 6, 3, 3, 2, 3, 8, 2, 2, 3 if self.defs else 0, 1, 1])[0]
        d = depth - 1
        if choice == "shift":
            default = f", default={self.small_int()}" if rng.random() < 0.2 else ""
            return f"shift({self.number(d)}, {self.offset()}{default})"
        if choice == "add":
            return f"{self.number(d)} + {self.number(d)}"
        if choice == "sub":
            return f"{self.number(d)} - {self._atom_number(d)}"
        if choice == "scale":
            return f"{rng.choice(['2', '3', str(self.layout.base)])} * {self._atom_number(d)}"
        if choice == "mod":
            return f"{self._atom_number(d)} % {rng.choice(['2', '3', str(self.layout.base)])}"
        if choice == "floordiv":
            return f"{self._atom_number(d)} // {rng.choice(['2', '3', str(self.layout.base)])}"
        if choice == "minmax":
            return f"{rng.choice(['min', 'max'])}({self.number(d)}, {self.number(d)})"
        if choice == "abs":
            return f"abs({self.number(d)} - {self.number(d)})"
        if choice == "cond":
            return f"({self.number(d)} if {self.boolean(d)} else {self.number(d)})"
        if choice == "agg":
            return self.aggregate(d)
        if choice == "width":
            return f"selector_width({self.selector(d)})"
        if choice == "bool":
            return f"({self.boolean(d)})"
        if choice == "call":
            name, arity = rng.choice(self.defs)
            return f"{name}({', '.join(self.number(d) for _ in range(arity))})"
        if choice == "product":
            return f"{self._atom_number(0)} * {self._atom_number(0)}"
        return f"{self._atom_number(0)} ** 2"

    def _atom_number(self, depth: int) -> str:
        text = self.number(depth)
        return text if text.replace("_", "").isalnum() else f"({text})"

    def aggregate(self, depth: int) -> str:
        rng = self.rng
        mode = rng.choices(["first", "last", "mean", "sum"], [4, 3, 2, 2])[0]
        selector, value = self.selector(depth), self.number(depth)
        extra = ""
        if mode == "sum":
            extra = f", decay={rng.choice(['2', '10', '1/2'])}" if rng.random() < 0.3 else ""
        elif rng.random() < 0.3:
            extra = f", default={self.small_int()}"
        return f"{mode}({selector}, {value}{extra})"

    def boolean(self, depth: int) -> str:
        rng = self.rng
        pool = self.named(BOOL)
        if depth <= 0 or rng.random() < 0.2:
            leaves = [f"tokens == \"{rng.choice(self.layout.literals)}\"", "is_digit(tokens)",
                      f"digit(tokens) {rng.choice(COMPARISONS)} {self.small_int()}",
                      f"indices {rng.choice(COMPARISONS)} {rng.choice(self.layout.facts())}"] + pool * 2
            return rng.choice(leaves)
        d = depth - 1
        choice = rng.choices(["compare", "chain", "not", "and", "or", "token"], [8, 1, 2, 2, 2, 1])[0]
        if choice == "compare":
            right = self.small_int() if rng.random() < 0.6 else self.number(d)
            return f"{self.number(d)} {rng.choice(COMPARISONS)} {right}"
        if choice == "chain":
            return f"0 < {self.number(d)} <= {self.small_int()}"
        if choice == "not":
            return f"not ({self.boolean(d)})"
        if choice == "token":
            return f"{self.token(d)} {rng.choice(['==', '!='])} \"{rng.choice(self.layout.literals[:-1])}\""
        return f"({self.boolean(d)}) {choice} ({self.boolean(d)})"

    def token(self, depth: int) -> str:
        rng = self.rng
        pool = self.named(TOK)
        if depth <= 0 or rng.random() < 0.3:
            return rng.choice(["tokens"] + pool)
        d = depth - 1
        choice = rng.choice(["shift", "first", "digit_token", "cond"])
        if choice == "shift":
            return f"shift({self.token(d)}, {self.offset()}, default=\"<bos>\")"
        if choice == "first":
            return f"{rng.choice(['first', 'last'])}({self.selector(d)}, {self.token(d)}, default=\"<bos>\")"
        if choice == "digit_token":
            return f"digit_token({self._atom_number(d)} % {self.layout.base})"
        return f"(\"{rng.choice(self.layout.literals)}\" if {self.boolean(d)} else {self.token(d)})"

    def selector(self, depth: int) -> str:
        rng = self.rng
        pool = self.named(SEL)
        if pool and rng.random() < 0.4:
            chosen = rng.choice(pool)
            return f"{chosen} & {self.select(depth)}" if rng.random() < 0.4 else chosen
        text = self.select(depth)
        return f"{text} & {self.select(depth)}" if rng.random() < 0.25 else text

    def select(self, depth: int) -> str:
        rng = self.rng
        kinds = rng.choices([(NUM, NUM), ("indices", "indices"), (BOOL, NUM), (TOK, NUM), (NUM, BOOL)],
                            [2, 6, 3, 1, 1])[0]
        sides = []
        for kind in kinds:
            if kind == "indices" or kind == NUM and rng.random() < 0.5:
                sides.append(("indices", NUM))
            elif kind == NUM:
                sides.append((self.number(depth - 1), NUM))
            elif kind == BOOL:
                sides.append((self.boolean(depth - 1), BOOL))
            else:
                sides.append(("tokens", TOK))
        (keys, key_type), (queries, query_type) = sides
        return f"select({keys}, {queries}, {self.predicate(key_type, query_type, keys == queries == 'indices')})"

    def predicate(self, key_type: str, query_type: str, positions: bool) -> str:
        rng = self.rng
        c = str(rng.randint(0, 3))
        if positions:
            options = [f"q - k <= {c}", f"k == q - {c}", f"q - k < {rng.randint(1, 4)}", "k == q", "k < q",
                       f"k >= {rng.choice(self.layout.facts())}", f"q >= {rng.choice(self.layout.facts())} and k == q - {c}",
                       f"k == q - 1 or k == q - {rng.randint(2, 3)}", f"q - k >= {rng.randint(1, 2)}", "k <= q"]
        elif key_type == BOOL:
            options = ["k", "not k"] + (["k == q", "k and q"] if query_type == BOOL else [])
        elif key_type == TOK:
            options = [f"k == \"{rng.choice(self.layout.literals[:-1])}\"", "k != \"<bos>\""]
        elif query_type == BOOL:
            options = [f"k >= {c}", f"k == {c}", "q"]
        else:
            options = ["k == q", "k <= q", f"k >= {c}", f"k % 2 == {rng.randint(0, 1)}", f"k + {c} > q",
                       f"abs(k - q) <= {c}"]
        return rng.choice(options)



class ProgramGenerator(_Expressions):
    """One program: a layout, consts, defs, lets (numbers, booleans, tokens, selectors), an output."""

    def const(self, index: int):
        rng = self.rng
        name = f"C{index}"
        facts = self.layout.facts()
        value = rng.choice([str(rng.randint(0, 4)), f"{rng.choice(facts)} - {rng.choice(facts)}",
                            f"{rng.choice(facts)} - 1", f"{rng.randint(1, 3)} * {rng.randint(0, 2)} + 1"])
        self.lines.append(f"const {name} = {value}")
        self.consts.append(name)
        self.names[name] = NUM

    def define(self, index: int):
        rng = self.rng
        name, arity = f"f{index}", rng.choice([1, 1, 2])
        params = ["x", "y"][:arity]
        saved = self.names
        self.names = {p: NUM for p in params}  # a def's body sees its parameters (and the consts)
        self.names.update({c: NUM for c in self.consts})
        if rng.random() < 0.4:
            inner = self.number(1)
            self.names["t"] = NUM
            body = f"{{\n  let t = {inner}\n  {self.number(2)}\n}}"
        else:
            body = f"= {self.number(2)}"
        self.names = saved
        self.lines.append(f"def {name}({', '.join(params)}) {body}")
        self.defs.append((name, arity))

    def let(self, index: int):
        rng = self.rng
        kind = rng.choices([NUM, BOOL, SEL, TOK], [6, 3, 3, 1])[0]
        name = f"v{index}"
        depth = rng.randint(1, 3)
        text = {NUM: self.number, BOOL: self.boolean, SEL: self.selector, TOK: self.token}[kind](depth)
        annotation = ""
        if kind == NUM and rng.random() < 0.1:
            annotation = ": categorical"
        self.lines.append(f"let {name}{annotation} = {text}")
        self.names[name] = kind

    def output(self) -> str:
        rng = self.rng
        base = self.layout.base
        x = self.number(rng.randint(1, 3))
        lets = [n for n in self.named(NUM) if n not in self.consts]
        if lets and rng.random() < 0.6:  # read the lets, or the compiler drops them unread
            x = rng.choice([lets[-1], f"{rng.choice(lets)} + {lets[-1]}", f"{x} + {lets[-1]}"])
        readout = rng.choices(
            [f"nearest_digit(({x}) % {base})",
             f"digit_token(({x}) % {base})", f"nearest_digit({x})", self._nearest_map(x), self.token(2)],
            [6, 2, 2, 1, 1])[0]
        if self.layout.end_token and rng.random() < 0.85:
            return f"output \"<eos>\" if indices == end({self.layout.answer}) else {readout}"
        return f"output {readout}"

    def _nearest_map(self, x: str) -> str:
        digits = "0123456789"[: self.layout.base]
        chosen = self.rng.sample(digits, min(len(digits), self.rng.randint(2, 3)))
        values = sorted(self.rng.sample(range(-2, 12), len(chosen)))
        return f"nearest({x}, {{{', '.join(f'{chr(34)}{t}{chr(34)}: {v}' for t, v in zip(chosen, values))}}})"

    def meaning(self) -> str | None:
        """Only when the answer field is wide enough for the sum of the operands; else a wide
        enough meaning would be a guess, and a wrong one is just another located error."""
        base, widths = self.layout.base, self.layout.widths
        total = sum(base ** w - 1 for w in widths.values())
        if total < base ** self.layout.answer_width:
            return f"meaning {self.layout.answer} = {' + '.join(widths)}"
        return None

    def program(self) -> str:
        rng = self.rng
        self.lines = ["# fuzz program"]
        self.lines += self.layout.text(rng)
        if rng.random() < 0.2 and (meaning := self.meaning()):
            self.lines.append(meaning)
        for i in range(rng.choice([0, 0, 1, 2])):
            self.const(i)
        for i in range(rng.choice([0, 0, 0, 1, 2])):
            self.define(i)
        for i in range(rng.randint(1, 5)):
            self.let(i)
        self.lines.append(self.output())
        return "\n".join(self.lines) + "\n"


def random_program(seed: int) -> str:
    """The program text for one seed."""
    return ProgramGenerator(seed).program()
