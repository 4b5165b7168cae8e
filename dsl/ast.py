"""Typed syntax tree. Every node carries the span of the text it came from."""
from __future__ import annotations

from dataclasses import dataclass, field

from dsl.errors import Span


@dataclass(frozen=True)
class Expr:
    span: Span


@dataclass(frozen=True)
class Number(Expr):
    value: int


@dataclass(frozen=True)
class String(Expr):
    value: str


@dataclass(frozen=True)
class Boolean(Expr):
    value: bool


@dataclass(frozen=True)
class Name(Expr):
    name: str


@dataclass(frozen=True)
class Call(Expr):
    function: str
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr], ...] = ()


@dataclass(frozen=True)
class RangeCall(Expr):
    """sum(p in 0..N-1: body) or product(...): the body for p from low to high, both included."""
    function: str
    variable: str
    low: Expr
    high: Expr
    body: Expr


@dataclass(frozen=True)
class Mapping(Expr):
    """{"token": value, ...}: the candidates of a readout."""

    items: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True)
class BinOp(Expr):
    op: str  # + - * / // % ** & and or
    left: Expr
    right: Expr


@dataclass(frozen=True)
class UnaryOp(Expr):
    op: str  # neg, not
    operand: Expr


@dataclass(frozen=True)
class Compare(Expr):
    """A chain `a < b <= c`, meaning `a < b and b <= c`, as in Python."""

    operands: tuple[Expr, ...]
    ops: tuple[str, ...]


@dataclass(frozen=True)
class IfElse(Expr):
    condition: Expr
    then: Expr
    otherwise: Expr


@dataclass(frozen=True)
class Statement:
    span: Span


@dataclass(frozen=True)
class ConstDecl(Statement):
    name: str
    value: Expr


@dataclass(frozen=True)
class LetDecl(Statement):
    name: str
    encoding: str | None  # "categorical", "numerical" or None: let the compiler choose
    value: Expr


@dataclass(frozen=True)
class DefDecl(Statement):
    name: str
    params: tuple[str, ...]
    lets: tuple[LetDecl, ...]
    body: Expr


@dataclass(frozen=True)
class ImportDecl(Statement):
    path: str


@dataclass(frozen=True)
class OutputDecl(Statement):
    value: Expr


@dataclass(frozen=True)
class MeaningDecl(Statement):
    field: str
    value: Expr


@dataclass(frozen=True)
class RequireDecl(Statement):
    condition: Expr


@dataclass(frozen=True)
class LayoutLiteral:
    span: Span
    token: str


@dataclass(frozen=True)
class LayoutField:
    span: Span
    name: str
    width: Expr
    # What follows the width, as written (checked by the resolver): the field's own digit order,
    # `signed`, or both, each with where it is written.
    options: tuple[tuple[str, Span], ...] = ()


@dataclass(frozen=True)
class LayoutDecl(Statement):
    base: Expr | None
    order: str | None
    prompt: tuple[LayoutLiteral | LayoutField, ...]
    answer: tuple[LayoutLiteral | LayoutField, ...]


@dataclass(frozen=True)
class Module:
    """One parsed file."""

    path: str
    source: str
    statements: tuple[Statement, ...] = field(default_factory=tuple)


def children(e: Expr) -> tuple:
    """The expressions directly inside `e`, in the order written (a call's keyword values last)."""
    if isinstance(e, BinOp):
        return (e.left, e.right)
    if isinstance(e, UnaryOp):
        return (e.operand,)
    if isinstance(e, Compare):
        return e.operands
    if isinstance(e, IfElse):
        return (e.condition, e.then, e.otherwise)
    if isinstance(e, Call):
        return e.args + tuple(v for _, v in e.kwargs)
    if isinstance(e, RangeCall):
        return (e.low, e.high, e.body)
    return ()
