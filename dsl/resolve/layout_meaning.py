"""The layout declaration and the meaning, checked against each other where that is cheap."""
from __future__ import annotations

import difflib
import itertools
import math
from dataclasses import replace

from dsl import ast
from dsl import meaning as meaning_rules
from dsl.ast import children
from dsl.layout import DIGIT_ORDERS, SIGNED, Layout, Meaning, Requirement, build_layout
from dsl.limits import MAX_MEANING_BITS, MAX_POSITIONS, show_count, show_number
from dsl.resolve.names import MEANING_HINT, REQUIRE_HINT


class LayoutAndMeaning:
    """The resolver's layout and meaning declarations."""

    def layout_decl(self, st: ast.LayoutDecl):
        if self.layout is not None:
            raise self.error("the program already has a layout", st.span,
                             f"a program has one layout; the first one is at {self.layout_span}")
        base = 10 if st.base is None else self.int_constant(st.base, "the base")
        entries, positions = [], 0
        for item in st.prompt + st.answer:
            if isinstance(item, ast.LayoutLiteral):
                entries.append(("literal", item.span, item.token))
                positions += 1
            else:
                width = self.int_constant(item.width, "a field width")
                positions += max(width, 0)
                if positions > MAX_POSITIONS:
                    self.too_many_positions(item, width, positions)
                order, signed = self.field_options(item)
                positions += signed
                entries.append(("field", item.span, item.name, width, order, signed))
        n_prompt = len(st.prompt)
        self.layout = build_layout(base, st.order or "msb_first", entries[:n_prompt], entries[n_prompt:],
                                   st.span, self.sources.get(st.span.file),
                                   base_span=st.base.span if st.base is not None else None)
        self.layout_span = st.span
        self.answer_span = st.answer[0].span

    def field_options(self, item: ast.LayoutField) -> tuple[str | None, bool]:
        """A field's own digit order (`sum[N + 1, lsb_first]`) and whether it is signed
        (`diff[N, signed]`), each checked where it is written."""
        order, signed = None, False
        for text, span in item.options:
            if text == SIGNED and not signed:
                signed = True
            elif text in DIGIT_ORDERS and order is None:
                order = text
            elif text == SIGNED or text in DIGIT_ORDERS:
                raise self.error(f"field '{item.name}' says '{text}' twice" if text == SIGNED or text == order
                                 else f"field '{item.name}' has two digit orders", span,
                                 f"write at most one digit order and one 'signed', e.g. {item.name}[..., lsb_first, signed]")
            else:
                close = difflib.get_close_matches(text, DIGIT_ORDERS + (SIGNED,), n=1, cutoff=0.5)
                raise self.error(f"'{text}' is not a digit order or 'signed'", span,
                                 (f"did you mean '{close[0]}'? " if close else "")
                                 + f"a field's own order is msb_first or lsb_first, e.g. {item.name}[..., lsb_first]; "
                                 f"an answer field may be signed, e.g. {item.name}[..., signed]")
        return order, signed

    def too_many_positions(self, item: ast.LayoutField, width: int, positions: int):
        """The error for a layout longer than MAX_POSITIONS, at the field that takes it past the limit."""
        source = self.sources.get(item.span.file, "")
        w = item.width.span
        written = source.splitlines()[w.line - 1][w.column - 1:w.end_column - 1] \
            if source and w.end_line == w.line else ""
        size = show_number(width)
        what = f"{written} = {size}" if written and written != size else size
        raise self.error(f"field '{item.name}' is {what} digits wide: too large, a sequence has at most "
                         f"{MAX_POSITIONS:,} positions (this layout has {show_count(positions)} up to here)",
                         item.span, "choose smaller widths; every width adds its digits to the positions a model "
                                    "reads and writes")

    def require_layout(self, span) -> Layout:
        if self.layout is None:
            if self.pending_layout is not None:
                hint = f"move the layout (at {self.pending_layout.span}) above this line"
            else:
                hint = 'declare it first, e.g. layout base 10, msb_first: "<bos>" a[N] "+" b[N] "=" => sum[N + 1] "<eos>"'
            raise self.error("this needs the layout, which is not declared yet", span, hint)
        return self.layout

    def meaning_decl(self, st: ast.MeaningDecl):
        layout = self.require_layout(st.span)
        if self.meaning_decl_st is not None:
            raise self.error("the program already has a meaning", st.span,
                             f"a program has one meaning; the first one is at {self.meaning_decl_st.span}")
        if st.field != layout.answer.name:
            raise self.error(f"a meaning defines the answer field '{layout.answer.name}', not '{st.field}'",
                             self.name_span(st, st.field), f"write: meaning {layout.answer.name} = ...")
        operand_names = {f.name for f in layout.operands}
        expression = self.meaning_expression(st.value, operand_names, MEANING_HINT)
        source = self.sources.get(st.span.file, "")
        text = source.splitlines()[expression.span.line - 1][expression.span.column - 1:expression.span.end_column - 1] \
            if source and expression.span.line == expression.span.end_line else "<expression>"
        problem = meaning_rules.check(expression)
        if problem:
            raise self.error(f"a meaning is an integer expression over the operands; it cannot contain {problem}",
                             expression.span, MEANING_HINT)
        constants = dict(self.constants)
        operand_bits = {f.name: (layout.base ** f.width - 1).bit_length() for f in layout.operands}
        try:
            meaning_rules.bit_bound(expression, operand_bits, constants, MAX_MEANING_BITS)
        except meaning_rules.TooLarge as err:
            raise self.error(f"this part of the meaning can need {show_count(err.bits)} bits for the largest "
                             f"operands; at most {MAX_MEANING_BITS:,} are supported", err.expression.span,
                             "a meaning computes the answer, which has at most as many digits as the answer "
                             "field: use smaller powers and products") from None
        self.meaning = Meaning(st.field, text, expression, constants)
        self.meaning_decl_st = st  # its widths are checked once every requirement is known

    def require_decl(self, st: ast.RequireDecl):
        """`require a >= b`: a condition over the operands that the program's inputs meet."""
        layout = self.require_layout(st.span)
        condition = self.meaning_expression(st.condition, {f.name for f in layout.operands}, REQUIRE_HINT)
        problem = meaning_rules.check(condition)
        if problem:
            raise self.error(f"a requirement is a condition over the operands; it cannot contain {problem}",
                             condition.span, REQUIRE_HINT)
        if not _is_condition(condition):
            raise self.error("a requirement must be a condition (a comparison, or several joined with "
                             "and, or, not), not a number", condition.span, REQUIRE_HINT)
        operand_bits = {f.name: (layout.base ** f.width - 1).bit_length() for f in layout.operands}
        try:
            meaning_rules.bit_bound(condition, operand_bits, dict(self.constants), MAX_MEANING_BITS)
        except meaning_rules.TooLarge as err:
            raise self.error(f"this part of the requirement can need {show_count(err.bits)} bits for the largest "
                             f"operands; at most {MAX_MEANING_BITS:,} are supported", err.expression.span,
                             REQUIRE_HINT) from None
        self.requirements.append((st, Requirement(self.source_text(condition), condition, dict(self.constants),
                                                  f"{st.span.file.rsplit('/', 1)[-1]}:{st.span.line}")))

    def finish_layout(self):
        """Once every statement is read: the requirements join the layout, some input must meet
        them all, and the meaning must fit the answer on the inputs that do."""
        if self.layout is None:
            return
        if self.requirements:
            self.layout = replace(self.layout, requires=tuple(r for _, r in self.requirements))
            self.check_satisfiable()
        if self.meaning_decl_st is not None:
            self.check_answer_width(self.meaning_decl_st)

    def check_satisfiable(self):
        """Some input must meet every requirement: each operand at its smallest, largest and a few
        values between, in every combination, then seeded random inputs. A requirement no input
        meets leaves nothing to verify or prove."""
        layout = self.layout
        tried = 0
        for operands in _candidate_inputs(layout):
            tried += 1
            if layout.admits(operands):
                return
        alone = next((st for st, requirement in self.requirements
                      if not any(requirement.holds(o) for o in _candidate_inputs(layout))), None)
        st = alone or self.requirements[-1][0]
        what = "this requirement" if alone else (
            "this requirement together with the one(s) at line(s) "
            + ", ".join(str(s.span.line) for s, _ in self.requirements[:-1]))
        raise self.error(f"no input of the layout meets {what} (none of {tried:,} tried, each operand "
                         f"at 0, 1, its largest and values between, and random ones, does)",
                         st.condition.span, "a requirement narrows the inputs, e.g. require a >= b; check that "
                         "it can hold with the operands' widths, and that several requirements do not contradict")

    def source_text(self, expression) -> str:
        source = self.sources.get(expression.span.file, "")
        if source and expression.span.line == expression.span.end_line:
            line = source.splitlines()[expression.span.line - 1]
            return line[expression.span.column - 1:expression.span.end_column - 1]
        return "<expression>"

    def check_answer_width(self, st: ast.MeaningDecl):
        """The answer field must hold every answer: try the meaning where operands are smallest and largest.

        A corner that does not fit is a certain error, with an input to show for it; answers that
        overflow only between corners are left to `adderc verify`.
        """
        layout, meaning = self.layout, self.meaning
        operands, answer = layout.operands, layout.answer
        if len(operands) > 8 or _has_variable_power(st.value, {f.name for f in operands}):
            return  # too many corners, or a power of an operand, too large to evaluate
        limit = layout.base ** answer.width
        for corner in itertools.product(*[(0, layout.base ** f.width - 1) for f in operands]):
            values = dict(zip((f.name for f in operands), corner))
            if not layout.admits(values):
                continue  # outside the requirements the answer is unspecified
            try:
                value = meaning.expected(values)
            except (ValueError, ArithmeticError):
                continue  # no answer at this input: the verifier reports it
            at = ", ".join(f"{name} = {show_number(v)}" for name, v in values.items())
            if value < 0 and not answer.signed:
                raise self.error(f"the meaning of '{answer.name}' can be negative ({show_number(value)} at {at}), but an answer "
                                 "field holds digits", st.value.span,
                                 f"declare the answer signed, e.g. => {answer.name}[{answer.width}, signed], or add an "
                                 "offset that keeps it at 0 or more, as examples/sub.rasp does with a - b + 10 ** N")
            if abs(value) >= limit:
                needed = _digit_count(abs(value), layout.base)
                error = self.error(f"the layout's widths do not add up: '{answer.name}' has {answer.width} "
                                   f"digit(s), but its meaning can be {show_number(value)} ({at}), which needs "
                                   f"{needed}",
                                   self.answer_span,
                                   f"make '{answer.name}' {needed} digits wide, or change the meaning")
                error.notes.append(f"the meaning is at {st.span}: meaning {st.field} = {meaning.text}")
                raise error

    def meaning_expression(self, e, operand_names, hint):
        """A meaning's or a requirement's expression with every call of a def written out, its
        names checked, and each range's ends constant."""
        expression = inline_defs(e, {}, self.defs, self.error)
        self.check_meaning_names(expression, operand_names, hint)
        return expression

    def check_meaning_names(self, e, operand_names, hint=MEANING_HINT, bound=frozenset()):
        what = "a requirement" if hint is REQUIRE_HINT else "a meaning"
        if isinstance(e, ast.Name):
            if e.name not in operand_names and e.name not in self.constants and e.name not in bound:
                layout = self.layout
                if layout is not None and e.name == layout.answer.name:
                    raise self.error(f"'{e.name}' is the answer field; {what} is over the operands "
                                     f"{sorted(operand_names)} and constants", e.span, hint)
                raise self.error(f"{what} may use operand fields {sorted(operand_names)} and constants; "
                                 f"'{e.name}' is neither", e.span, hint)
        if isinstance(e, ast.RangeCall):
            if e.variable in operand_names or e.variable in self.constants:
                raise self.error(f"the place variable '{e.variable}' of {e.function}(...) is already the name of "
                                 f"{'an operand' if e.variable in operand_names else 'a const'}", e.span,
                                 "give it a name of its own, e.g. p")
            for end in (e.low, e.high):
                name = next((n for n in _names(end) if n.name not in self.constants), None)
                if name is not None:
                    raise self.error(f"the ends of the range of {e.function}(...) must be made of constants; "
                                     f"'{name.name}' is not a const", name.span,
                                     "a range runs over places, e.g. sum(p in 0..N-1: ...) with const N")
            for end in (e.low, e.high):
                value = meaning_rules.evaluate(end, {}, dict(self.constants))
                if getattr(value, "denominator", 1) != 1 or isinstance(value, float):
                    raise self.error(f"the ends of a range are whole numbers; this one is {value}", end.span,
                                     "write the range with whole numbers, e.g. 0..N-1, or (N - 1) // 2")
            low, high = meaning_rules.range_of(e, dict(self.constants))
            if high - low + 1 > MAX_RANGE:
                raise self.error(f"{e.function}(...) runs over {high - low + 1:,} numbers; at most {MAX_RANGE:,} "
                                 f"are supported", e.span, "a range of places has as many numbers as a field has digits")
            self.check_meaning_names(e.body, operand_names, hint, bound | {e.variable})
            return
        for child in children(e):
            self.check_meaning_names(child, operand_names, hint, bound)


def _names(e):
    """Every name in an expression."""
    if isinstance(e, ast.Name):
        yield e
    for child in children(e):
        yield from _names(child)


# The most numbers one sum(p in LOW..HIGH: ...) of a meaning runs over.
MAX_RANGE = 100_000


def inline_defs(e, env: dict, defs: dict, error, depth: int = 0):
    """`e` with each call of a def replaced by its body, the arguments in place of its parameters
    (and its lets in place of their names): a meaning is evaluated as one expression."""
    if depth > 64:
        raise error("defs call each other more than 64 deep inside a meaning", e.span,
                    "write the meaning with fewer nested defs")
    rec = lambda x: inline_defs(x, env, defs, error, depth)
    if isinstance(e, ast.Name):
        return env.get(e.name, e)
    if isinstance(e, ast.Call) and e.function in defs:
        definition = defs[e.function]
        if e.kwargs or len(e.args) != len(definition.params):
            raise error(f"def '{e.function}' takes {len(definition.params)} argument(s) "
                        f"({', '.join(definition.params)}), given {len(e.args) + len(e.kwargs)}", e.span,
                        f"call it as {e.function}({', '.join(definition.params)})")
        inner = {name: rec(arg) for name, arg in zip(definition.params, e.args)}
        for let in definition.lets:
            inner[let.name] = inline_defs(let.value, inner, defs, error, depth + 1)
        return inline_defs(definition.body, inner, defs, error, depth + 1)
    if isinstance(e, ast.RangeCall):
        inner = {k: v for k, v in env.items() if k != e.variable}  # the place variable hides a parameter
        return replace(e, low=rec(e.low), high=rec(e.high), body=inline_defs(e.body, inner, defs, error, depth))
    if isinstance(e, ast.BinOp):
        return replace(e, left=rec(e.left), right=rec(e.right))
    if isinstance(e, ast.UnaryOp):
        return replace(e, operand=rec(e.operand))
    if isinstance(e, ast.Compare):
        return replace(e, operands=tuple(rec(x) for x in e.operands))
    if isinstance(e, ast.IfElse):
        return replace(e, condition=rec(e.condition), then=rec(e.then), otherwise=rec(e.otherwise))
    if isinstance(e, ast.Call):
        return replace(e, args=tuple(rec(a) for a in e.args), kwargs=tuple((k, rec(v)) for k, v in e.kwargs))
    return e



def _is_condition(e) -> bool:
    """Whether an expression is a truth value: a comparison, true/false, or such joined with
    and, or, not (a requirement that is a number, `require a`, is a mistake)."""
    if isinstance(e, ast.Compare):
        return True
    if isinstance(e, ast.UnaryOp) and e.op == "not":
        return _is_condition(e.operand)
    if isinstance(e, ast.BinOp) and e.op in ("and", "or"):
        return _is_condition(e.left) and _is_condition(e.right)
    if isinstance(e, ast.IfElse):
        return _is_condition(e.then) and _is_condition(e.otherwise)
    return False


def _candidate_inputs(layout: Layout):
    """Inputs to search for one that meets the requirements: per operand 0, 1, 2, its largest,
    one less, and a spread of values between (every combination while few), then random ones."""
    import random
    values = []
    for f in layout.operands:
        top = layout.base ** f.width - 1
        picks = {0, 1, 2, top, top - 1, top // 2, top // 2 + 1} | {top * i // 16 for i in range(17)}
        values.append(sorted(v for v in picks if 0 <= v <= top))
    if math.prod(len(v) for v in values) <= 20_000:
        for combination in itertools.product(*values):
            yield dict(zip((f.name for f in layout.operands), combination))
    rng = random.Random(20261204)
    for _ in range(2_000):
        yield {f.name: rng.randrange(layout.base ** f.width) for f in layout.operands}


def _digit_count(value: int, base: int) -> int:
    """Base-`base` digits of a whole number >= 0, from its size (dividing digit by digit is quadratic)."""
    count = max(1, int(value.bit_length() / math.log2(base)) - 1)
    while base ** count <= value:
        count += 1
    return count


def _has_variable_power(e, operands) -> bool:
    """Whether `e` raises something to a power that depends on an operand (too large to try)."""
    if isinstance(e, ast.BinOp) and e.op == "**" and _mentions(e.right, operands):
        return True
    return any(_has_variable_power(child, operands) for child in children(e))


def _mentions(e, names) -> bool:
    return (isinstance(e, ast.Name) and e.name in names) or any(_mentions(c, names) for c in children(e))
