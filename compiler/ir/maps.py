"""The residual map and the weight map, typed: what each residual dimension and each head or block
of hidden units holds, and the one rule for writing a value into its dimensions and reading it back.

The model file keeps the maps as plain dicts (`to_dict`), so a file stays plain data that any reader
can check before trusting it (compiler.model.schema); readers parse the entries back (`from_dict`).

`ResidualEntry.encode` and `decode` are the arithmetic of the prover and of the inside checks. They
are written from the map alone, apart from compiler.ir.reads (how the compiler's own sublayers read a
value), so that a proof checks the compiler instead of repeating it; tests/test_maps.py checks that
the two agree on every example.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy
import torch

from dsl.semantics import num

RESIDUAL_KEYS = ("node", "id", "encoding", "dims", "written_by", "sublayer", "line", "column")
RESIDUAL_OPTIONAL_KEYS = ("helper", "sum_of", "updates", "stored_as", "values", "unread_values", "default")
SUM_TERM_KEYS = ("id", "node", "coefficient", "default", "written_by", "sublayer")
SUM_TERM_OPTIONAL_KEYS = ("host",)
HEAD_KEYS = ("block", "head", "mode", "node", "id", "line", "column")
HEAD_OPTIONAL_KEYS = ("also",)
UNITS_KEYS = ("block", "units", "node", "id", "line", "column")

# What an all-zero one-hot decodes as when some of the value's dimensions were pruned: the value is
# the default (nothing selected) or one whose dimension nothing reads, and the state cannot tell which.
UNREAD = "(the default or a value nothing reads)"


def number_of(text: str):
    """A numerical value as the maps write it (a number, or True/False)."""
    return sympy.Integer(text == "True") if text in ("True", "False") else sympy.Rational(text)


@dataclass(frozen=True)
class SumTerm:
    """A term of a sum whose terms share one dimension: its sublayer adds
    coefficient * (value - default) there. A host is a value stored in that dimension before the
    terms are added; it has an entry of its own too."""

    id: int
    node: str
    coefficient: str
    default: str
    written_by: str
    sublayer: int
    host: bool = False

    def share(self, value) -> sympy.Rational:
        return number_of(self.coefficient) * (num(value) - number_of(self.default))

    def to_dict(self) -> dict:
        out = {"id": self.id, "node": self.node, "coefficient": self.coefficient, "default": self.default,
               "written_by": self.written_by, "sublayer": self.sublayer}
        if self.host:
            out["host"] = True
        return out

    @staticmethod
    def from_dict(data: dict) -> "SumTerm":
        return SumTerm(**{key: data[key] for key in SUM_TERM_KEYS + SUM_TERM_OPTIONAL_KEYS if key in data})


@dataclass(frozen=True)
class ResidualEntry:
    """The residual dimensions of one stored program value, from the sublayer that writes it on.

    A numerical value has one dimension, holding (value - default - bias) / slope: the default is
    an attention value's (nothing selected writes zero), stored_as the (slope, bias) of a value an
    MLP computed in place of its input. A categorical value has one dimension per value (a one-hot);
    values whose dimension nothing read were pruned (`unread_values`). A sum (`sum_of`) holds its
    terms' shares; a helper holds a selector width w as w / (w + 1), the fraction its head averages.
    Numbers are kept as the text the map writes them in, so that a file reads back unchanged.
    """

    node: str
    id: int
    encoding: str  # "numerical" or "categorical"
    dims: tuple[int, ...]
    written_by: str  # the value's realize ("embed", "attention", "mlp", "width"), or "sum"
    sublayer: int  # the sublayer that writes it; 0 is the embedding
    line: int
    column: int
    helper: bool = False
    sum_of: tuple[SumTerm, ...] | None = None
    updates: str | None = None  # the label of the value whose dimension this one takes over
    stored_as: tuple[str, str] | None = None  # (slope, bias)
    values: tuple[str, ...] | None = None  # a categorical value's values, one per dimension
    unread_values: tuple[str, ...] = field(default=())
    default: str | None = None

    # ----- the plain form the model file stores
    def to_dict(self) -> dict:
        # The keys in the order the compiler has always written them, so a model file's bytes stay the same.
        out = {"node": self.node, "id": self.id} | ({"helper": True} if self.helper else {})
        out |= {"encoding": self.encoding, "dims": list(self.dims), "written_by": self.written_by,
                "sublayer": self.sublayer, "line": self.line, "column": self.column}
        if self.sum_of is not None:
            out["sum_of"] = [term.to_dict() for term in self.sum_of]
        if self.updates is not None:
            out["updates"] = self.updates
        if self.stored_as is not None:
            out["stored_as"] = list(self.stored_as)
        if self.values is not None:
            out["values"] = list(self.values)
        if self.default is not None:
            out["default"] = self.default
        if self.unread_values:
            out["unread_values"] = list(self.unread_values)
        return out

    @staticmethod
    def from_dict(data: dict) -> "ResidualEntry":
        fields = {key: data[key] for key in RESIDUAL_KEYS + RESIDUAL_OPTIONAL_KEYS if key in data}
        fields["dims"] = tuple(data["dims"])
        if "sum_of" in data:
            fields["sum_of"] = tuple(SumTerm.from_dict(term) for term in data["sum_of"])
        for key in ("stored_as", "values", "unread_values"):
            if key in data:
                fields[key] = tuple(data[key])
        return ResidualEntry(**fields)

    # ----- the numbers of the encoding
    @property
    def slope_and_bias(self) -> tuple[sympy.Rational, sympy.Rational]:
        slope, bias = self.stored_as or ("1", "0")
        return number_of(slope), number_of(bias)

    @property
    def offset(self) -> sympy.Rational:
        """What a numerical dimension at zero stands for: the default, which "nothing selected" yields."""
        return number_of(self.default) if self.default is not None else sympy.Integer(0)

    def term(self, term_id: int) -> SumTerm:
        return next(t for t in self.sum_of if t.id == term_id)

    # ----- value -> residual vector
    def encode(self, value, term: int | None = None) -> dict[int, sympy.Rational]:
        """The exact residual vector holding `value`, as {dimension: coefficient} (the dimensions
        not named hold zero). For a sum, `value` is the value of its term `term` (a node id), and
        the vector that term's share; values sharing a dimension add up."""
        if self.sum_of is not None:
            return {self.dims[0]: self.term(term).share(value)}
        if self.helper:
            width = num(value)
            return {self.dims[0]: width / (width + 1)}
        if self.encoding == "numerical":
            slope, bias = self.slope_and_bias
            return {self.dims[0]: (num(value) - self.offset - bias) / slope}
        text = str(value)
        if text in self.values:
            return {self.dims[self.values.index(text)]: sympy.Integer(1)}
        return {}  # a value whose dimension was pruned (or an aggregate's default) leaves all at zero

    # ----- residual vector -> value
    def decode(self, row: torch.Tensor):
        """The value one position's residual vector (d_model numbers) holds; see decode_all."""
        return self.decode_all(torch.as_tensor(row)[None])[0]

    def decode_all(self, state: torch.Tensor) -> list:
        """The value at every position of one sequence (state: [positions, d_model]).

        Numerical values come back as floats; categorical ones as the value (text) whose dimension
        is largest, or the default when an aggregate selected nothing (all near zero), or UNREAD
        when that could also be a value whose dimension was pruned. A sum's dimension comes back
        as the sum of its terms' shares, which is all it holds.
        """
        column = state[:, self.dims[0]]
        if self.sum_of is not None:
            return [float(x) for x in column]
        if self.helper:
            return [float(x) / (1 - float(x)) for x in column]
        if self.encoding == "numerical":
            offset = float(self.offset)
            slope, bias = (float(x) for x in self.slope_and_bias)
            return [slope * float(x) + bias + offset for x in column]
        out = []
        for row in state[:, list(self.dims)]:
            if float(row.max()) < 0.5 and self.unread_values:
                out.append(UNREAD)
            elif float(row.max()) < 0.5 and self.default is not None:
                out.append(self.default)
            else:
                out.append(self.values[int(row.argmax())])
        return out


def value_encoders(entries: list[ResidualEntry]) -> dict[int, Callable]:
    """node id -> value -> {dimension: coefficient}, for every stored program value: a term of a
    shared sum by its share of the sum's dimension (a host by its own entry). Helpers hold no
    program value of their own and are left out."""
    encoders = {}
    for entry in entries:
        if entry.helper:
            continue
        if entry.sum_of is None:
            encoders[entry.id] = entry.encode
            continue
        for term in entry.sum_of:
            if not term.host:
                encoders[term.id] = lambda value, entry=entry, term=term.id: entry.encode(value, term)
    return encoders


@dataclass(frozen=True)
class WeightEntry:
    """Which program value one head, or one block of an MLP's hidden units, serves. A head that
    serves two values (two shifts paired into one head) names the second in `also`."""

    block: str  # "blocks.<layer>.attn" or "blocks.<layer>.mlp"
    node: str
    id: int
    line: int
    column: int
    head: int | None = None
    mode: str | None = None  # how the head attends (compiler.passes.encodings.head_mode)
    units: tuple[int, int] | None = None  # [start, end) in the layer's hidden units
    also: int | None = None

    def to_dict(self) -> dict:
        out = {"block": self.block}
        if self.head is not None:
            out |= {"head": self.head, "mode": self.mode}
        else:
            out["units"] = list(self.units)
        out |= {"node": self.node, "id": self.id, "line": self.line, "column": self.column}
        if self.also is not None:
            out["also"] = self.also
        return out

    @staticmethod
    def from_dict(data: dict) -> "WeightEntry":
        fields = {key: data[key] for key in HEAD_KEYS + HEAD_OPTIONAL_KEYS + UNITS_KEYS if key in data}
        if "units" in data:
            fields["units"] = tuple(data["units"])
        return WeightEntry(**fields)
