"""The sequence layout: vocabulary, where each operand sits, and how answers are written.

A layout is plain data once built, so a model file can carry it and the command line, the
verifier and the exports can all speak of "a + b" rather than raw token lists.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsl.errors import AdderError, Span
from dsl.meaning import evaluate as evaluate_meaning

DIGIT_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
DIGIT_ORDERS = ("msb_first", "lsb_first")
SIGNED = "signed"
# A signed answer field writes one of these before its digits; "+" for zero.
SIGN_TOKENS = ("+", "-")


@dataclass(frozen=True)
class Field:
    name: str
    width: int
    start: int  # position of its first token
    is_answer: bool = False
    order: str = "msb_first"  # the field's own digit order: the layout's unless the field overrides it
    signed: bool = False  # a sign token at `start`, then `width` digits of the magnitude

    @property
    def length(self) -> int:
        """Tokens it takes: its digits, and its sign if it has one."""
        return self.width + self.signed

    @property
    def end(self) -> int:
        """Position of its last token."""
        return self.start + self.length - 1


@dataclass(frozen=True)
class Layout:
    base: int
    order: str  # "msb_first" or "lsb_first": the default digit order of every field
    # ("literal", token), ("field", name, width), ("field", name, width, order) where a field
    # overrides the default order, or ("field", name, width, order, "signed") for a signed answer,
    # in sequence order
    items: tuple[tuple[str, Any], ...]
    answer_index: int  # index into items where the answer part begins
    # `require a >= b`: the inputs the program is specified on (every one when empty). Not part of
    # the model file's layout: it comes with the program, whose sources the model file embeds.
    requires: tuple["Requirement", ...] = field(default=(), compare=False)

    def admits(self, operands: dict[str, int]) -> bool:
        """Whether an input meets every requirement."""
        return all(r.holds(operands) for r in self.requires)

    def admits_tensor(self, operands: dict):
        """Per row of int64 operand tensors, whether it meets every requirement (None: all do)."""
        mask = None
        for r in self.requires:
            part = r.holds_tensor(operands)
            mask = part if mask is None else mask & part
        return mask

    # ----- derived facts
    @property
    def digits(self) -> list[str]:
        return list(DIGIT_ALPHABET[: self.base])

    @property
    def literals(self) -> list[str]:
        seen = []
        for item in self.items:
            if item[0] == "literal" and item[1] not in seen:
                seen.append(item[1])
        return seen

    @property
    def vocab(self) -> list[str]:
        signs = [t for t in SIGN_TOKENS if t not in self.literals] if self.answer.signed else []
        return self.digits + self.literals + signs

    @property
    def begin(self) -> str:
        return self.items[0][1]

    @property
    def end_token(self) -> str | None:
        """The token written after the answer, or None: then decoding stops after the answer's
        last digit, which the layout's width fixes."""
        return self.items[-1][1] if self.items[-1][0] == "literal" else None

    @property
    def fields(self) -> dict[str, Field]:
        result, position = {}, 0
        for index, item in enumerate(self.items):
            if item[0] == "literal":
                position += 1
            else:
                result[item[1]] = Field(item[1], item[2], position, index >= self.answer_index,
                                        self.item_order(item), self.item_signed(item))
                position += item[2] + self.item_signed(item)
        return result

    @property
    def operands(self) -> list[Field]:
        return [f for f in self.fields.values() if not f.is_answer]

    @property
    def answer(self) -> Field:
        return next(f for f in self.fields.values() if f.is_answer)

    @property
    def sequence_length(self) -> int:
        """Tokens in a whole sequence, end token (if any) included."""
        return sum(1 if item[0] == "literal" else item[2] + self.item_signed(item) for item in self.items)

    @property
    def prompt_length(self) -> int:
        return self.answer.start

    @property
    def n_ctx(self) -> int:
        """Longest input a model sees: the last token (the end token, or the answer's last digit)
        is produced but never fed back."""
        return self.sequence_length - 1

    def item_order(self, item) -> str:
        """The digit order of a field item: its own, or the layout's default."""
        return item[3] if len(item) > 3 else self.order

    @staticmethod
    def item_signed(item) -> bool:
        """Whether a field item is a signed answer."""
        return len(item) > 4 and item[4] == SIGNED

    @property
    def mixed_orders(self) -> bool:
        """Whether the fields are not all written in one digit order."""
        return len({f.order for f in self.fields.values()}) > 1

    # ----- conversions
    def digits_of(self, value: int, width: int, order: str | None = None) -> list[str]:
        """`value` as `width` digits in `order` (the layout's default when None)."""
        if value < 0 or value >= self.base ** width:
            raise ValueError(f"{value} does not fit in {width} base-{self.base} digits")
        out = []
        for _ in range(width):
            out.append(DIGIT_ALPHABET[value % self.base])
            value //= self.base
        return out if (order or self.order) == "lsb_first" else out[::-1]

    def value_of(self, digits: list[str], order: str | None = None) -> int:
        ordered = digits if (order or self.order) == "msb_first" else digits[::-1]
        value = 0
        for token in ordered:
            value = value * self.base + DIGIT_ALPHABET.index(token)
        return value

    def prompt_tokens(self, operands: dict[str, int]) -> list[str]:
        tokens = []
        for item in self.items[: self.answer_index]:
            if item[0] == "literal":
                tokens.append(item[1])
            else:
                tokens.extend(self.digits_of(operands[item[1]], item[2], self.item_order(item)))
        return tokens

    def operands_in(self, tokens: list[str]) -> dict[str, int]:
        """The operand values a prompt's tokens hold."""
        return {f.name: self.value_of(tokens[f.start:f.start + f.width], f.order) for f in self.operands}

    def answer_tokens(self, value: int) -> list[str]:
        """What follows the prompt: the answer's sign (if it is signed) and digits, and the end
        token, if the layout has one."""
        tokens = []
        for item in self.items[self.answer_index:]:
            if item[0] == "literal":
                tokens.append(item[1])
            elif self.item_signed(item):
                tokens += [SIGN_TOKENS[value < 0]] + self.digits_of(abs(value), item[2], self.item_order(item))
            else:
                tokens += self.digits_of(value, item[2], self.item_order(item))
        return tokens

    def answer_value(self, tokens: list[str]) -> int:
        """The answer written by the answer field's tokens (its sign included)."""
        answer = self.answer
        if not answer.signed:
            return self.value_of(tokens, answer.order)
        if tokens[0] not in SIGN_TOKENS:
            raise ValueError(f"{tokens[0]!r} is not a sign")
        magnitude = self.value_of(tokens[1:], answer.order)
        return -magnitude if tokens[0] == "-" else magnitude

    def answer_fits(self, value: int) -> bool:
        """Whether the answer field can write `value`."""
        top = self.base ** self.answer.width
        return -top < value < top if self.answer.signed else 0 <= value < top

    def written_answer(self, tokens: list[str]) -> str:
        """What a decoder prints for an answer's tokens: the digits, without the end token."""
        return "".join(tokens[:-1] if self.end_token is not None else tokens)

    def tokenize(self, text: str) -> list[str]:
        """Split user text into vocabulary tokens, longest match first; the begin token is added."""
        vocab = sorted(self.vocab, key=len, reverse=True)
        tokens, i = [], 0
        text = text.strip()
        while i < len(text):
            if text[i].isspace():
                i += 1
                continue
            match = next((t for t in vocab if text.startswith(t, i)), None)
            if match is None:
                raise ValueError(f"character {text[i]!r} at column {i + 1} is not in the vocabulary")
            tokens.append(match)
            i += len(match)
        if not tokens or tokens[0] != self.begin:
            tokens.insert(0, self.begin)
        return tokens

    def to_dict(self) -> dict:
        return {"base": self.base, "order": self.order, "answer_index": self.answer_index,
                "items": [list(item) for item in self.items]}

    @staticmethod
    def from_dict(data: dict) -> "Layout":
        return Layout(int(data["base"]), str(data["order"]),
                      tuple(tuple(item) for item in data["items"]), int(data["answer_index"]))


def build_layout(base: int, order: str, prompt: list, answer: list, span: Span, source: str | None,
                 base_span: Span | None = None) -> Layout:
    """Check a layout declaration; `prompt` and `answer` hold (kind, span, ...) entries."""
    def fail(message, where=span, hint=None):
        raise AdderError(message, where, source, hint)

    if not 2 <= base <= len(DIGIT_ALPHABET):
        fail(f"base must be between 2 and {len(DIGIT_ALPHABET)}, got {base}", base_span or span,
             f"digits are written 0-9 then a-z, so a base needs 2 to {len(DIGIT_ALPHABET)} of them")
    digits = set(DIGIT_ALPHABET[:base])
    items, names = [], set()
    for index, (kind, where, *rest) in enumerate(prompt + answer):
        if kind == "literal":
            token = rest[0]
            if not token:
                fail("a layout token cannot be empty", where, 'write the separator, e.g. "+"')
            if token in digits:
                fail(f"layout token {token!r} is also a base-{base} digit", where,
                     "separators must differ from digits")
            items.append(("literal", token))
        else:
            name, width, *options = rest
            own_order = options[:1]
            signed = len(options) > 1 and options[1] in (True, SIGNED)
            if name in names:
                fail(f"field '{name}' appears twice in the layout", where, "give each field its own name")
            if not isinstance(width, int) or width < 1:
                fail(f"field '{name}' must have a positive whole width, got {width}", where,
                     "a field holds at least one digit")
            names.add(name)
            if own_order and own_order[0] is not None and own_order[0] not in DIGIT_ORDERS:
                fail(f"'{own_order[0]}' is not a digit order", where,
                     "after a field's width write msb_first or lsb_first, e.g. sum[N + 1, lsb_first]")
            if signed and index < len(prompt):
                fail(f"operand field '{name}' cannot be signed: only the answer may carry a sign", where,
                     "operands are digits only; write the sign into the answer, e.g. => diff[N, signed]")
            # A field that repeats the default stores nothing, so it reads as any other field.
            own = own_order[0] if own_order and own_order[0] not in (None, order) else None
            if signed:
                items.append(("field", name, width, own or order, SIGNED))
            else:
                items.append(("field", name, width) if own is None else ("field", name, width, own))
    if not prompt or prompt[0][0] != "literal":
        fail("a layout starts with its begin token, e.g. \"<bos>\"", prompt[0][1] if prompt else span,
             'put a token string first: layout ...: "<bos>" a[N] ...')
    answer_fields = [a for a in answer if a[0] == "field"]
    if len(answer_fields) != 1 or answer[0][0] != "field":
        extra = answer[0] if answer[0][0] != "field" else answer_fields[1]
        fail("the answer part (after '=>') must be exactly one field, optionally followed by an end token",
             extra[1], hint='for example: => sum[N + 1] "<eos>"')
    if len(answer) > 2 or answer[-1][0] != "literal" and len(answer) != 1:
        fail("the answer field may be followed by one end token, e.g. \"<eos>\", and nothing else",
             answer[-1][1], hint='for example: => sum[N + 1] "<eos>", or => sum[N + 1] for a fixed-length answer')
    if not any(p[0] == "field" for p in prompt):
        fail("the prompt part of a layout needs at least one operand field",
             hint='for example: "<bos>" a[N] "+" b[N] "="')
    return Layout(base, order, tuple(items), len(prompt))


@dataclass(frozen=True)
class Meaning:
    """`meaning sum = a + b`: what the answer field should hold, as an expression over operand values."""

    field: str
    text: str  # the expression as written, for reports
    expression: Any  # dsl.ast expression over operand names and constants
    constants: dict

    def expected(self, operands: dict[str, int]) -> int:
        try:
            value = evaluate_meaning(self.expression, operands, self.constants)
        except ZeroDivisionError:
            raise ValueError("the meaning divides by zero") from None
        if getattr(value, "denominator", 1) != 1:
            raise ValueError(f"the meaning gives {value}, not a whole number")
        return int(value)

    def expected_tensor(self, operands: dict):
        """Expected answers for int64 tensors of operands (dsl.meaning.Unsupported if not exact)."""
        return evaluate_meaning(self.expression, operands, self.constants, tensors=True)


@dataclass(frozen=True)
class Requirement:
    """`require a >= b`: a condition over operand values that every input the program is
    specified on meets."""

    text: str  # the condition as written, for reports
    expression: Any  # dsl.ast expression over operand names and constants
    constants: dict
    where: str  # file:line, for reports

    def holds(self, operands: dict[str, int]) -> bool:
        try:
            return bool(evaluate_meaning(self.expression, operands, self.constants))
        except (ZeroDivisionError, ArithmeticError):
            return False  # a condition with no value at an input does not admit it

    def holds_tensor(self, operands: dict):
        import torch
        return torch.as_tensor(evaluate_meaning(self.expression, operands, self.constants, tensors=True)).bool()
