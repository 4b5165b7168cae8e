"""The core program: a DAG of sequence operations after names, defs and imports are resolved.

This is what both the reference semantics (`dsl.semantics`) and the compiler consume, so the two
can never disagree about what a program is. Structurally equal nodes are shared (hash-consed),
which gives common-subexpression elimination for free.

Types: "num" (exact rationals), "bool", "token" (vocabulary strings), "selector".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsl.errors import Span


@dataclass(eq=False)
class Node:
    id: int
    type: str
    span: Span
    names: list[str] = field(default_factory=list, kw_only=True)

    @property
    def label(self) -> str:
        return self.names[0] if self.names else f"{self.kind}#{self.id}"

    @property
    def kind(self) -> str:
        return type(self).__name__.lower()

    def inputs(self) -> tuple["Node", ...]:
        return ()


@dataclass(eq=False)
class Tokens(Node):
    pass


@dataclass(eq=False)
class Indices(Node):
    pass


@dataclass(eq=False)
class Const(Node):
    value: Any


@dataclass(eq=False)
class Var(Node):
    """`k` or `q` inside a select predicate: the key's or the query's value."""

    role: str


@dataclass(eq=False)
class Map(Node):
    """An elementwise operation; `op` names an entry of `dsl.ops.OPS`."""

    op: str
    args: tuple[Node, ...]

    def inputs(self):
        return self.args


@dataclass(frozen=True)
class SelectTerm:
    keys: Node
    queries: Node
    predicate: Node  # an expression over Var("k"), Var("q") and constants


@dataclass(eq=False)
class Select(Node):
    """Key k is selected by query q when every term's predicate holds (and k <= q: models are causal)."""

    terms: tuple[SelectTerm, ...]

    def inputs(self):
        seen = []
        for term in self.terms:
            for node in (term.keys, term.queries):
                if node not in seen:
                    seen.append(node)
        return tuple(seen)


@dataclass(eq=False)
class Aggregate(Node):
    """Combine the values at the selected positions.

    mode "mean": the mean (numbers), or the common value (categorical values);
    "sum": the sum, each key's value divided by decay**(q - k) when decay is set;
    "first"/"last": the value at the earliest/latest selected position.
    With nothing selected the result is `default`.
    """

    mode: str
    selector: Select
    value: Node
    default: Any
    decay: Any = None

    def inputs(self):
        return self.selector.inputs() + (self.value,)


@dataclass(eq=False)
class SelectorWidth(Node):
    selector: Select

    def inputs(self):
        return self.selector.inputs()


@dataclass
class Program:
    """A resolved program: its nodes in topological order, the output, the layout and its meaning."""

    path: str
    source: str
    sources: dict[str, str]  # every file read, imports included, for error messages
    constants: dict[str, Any]
    layout: Any  # dsl.layout.Layout
    output: Node
    nodes: list[Node]  # topological order, sequence nodes only (no predicate internals)
    encodings: dict[int, str]  # node id -> "categorical" | "numerical", from let annotations
    meaning: Any = None  # dsl.layout.Meaning or None

    def named(self) -> dict[str, Node]:
        return {name: node for node in self.nodes for name in node.names}


def needed_by(output: Node) -> set[int]:
    """The ids of the nodes the output depends on (itself included): all that a program means."""
    seen, stack = set(), [output]
    while stack:
        node = stack.pop()
        if node.id not in seen:
            seen.add(node.id)
            stack.extend(node.inputs())
    return seen
