"""Core nodes made once: structurally equal nodes are one node (common subexpressions for free)."""
from __future__ import annotations

from dsl.core import Aggregate, Const, Indices, Map, Node, Select, SelectorWidth, Tokens, Var
from dsl.resolve.names import type_of_value


class NodeBuilder:
    """Creates core nodes, sharing structurally equal ones."""

    def __init__(self):
        self.cache: dict[tuple, Node] = {}
        self.nodes: list[Node] = []
        self.predicate_ids: set[int] = set()

    def _make(self, key, factory) -> Node:
        if key in self.cache:
            return self.cache[key]
        node = factory(len(self.nodes))
        self.nodes.append(node)
        self.cache[key] = node
        return node

    def tokens(self, span):
        return self._make(("tokens",), lambda i: Tokens(i, "token", span))

    def indices(self, span):
        return self._make(("indices",), lambda i: Indices(i, "num", span))

    def const(self, value, span):
        return self._make(("const", type_of_value(value), value), lambda i: Const(i, type_of_value(value), span, value))

    def var(self, role, type_name, span):
        node = self._make(("var", role, type_name), lambda i: Var(i, type_name, span, role))
        self.predicate_ids.add(node.id)
        return node

    def map(self, op, args, type_name, span):
        node = self._make(("map", op, tuple(a.id for a in args)), lambda i: Map(i, type_name, span, op, tuple(args)))
        if any(a.id in self.predicate_ids for a in args):
            self.predicate_ids.add(node.id)
        return node

    def select(self, terms, span):
        key = ("select", tuple((t.keys.id, t.queries.id, t.predicate.id) for t in terms))
        return self._make(key, lambda i: Select(i, "selector", span, tuple(terms)))

    def aggregate(self, mode, selector, value, default, decay, type_name, span):
        key = ("aggregate", mode, selector.id, value.id, type_of_value(default), default, decay)
        return self._make(key, lambda i: Aggregate(i, type_name, span, mode, selector, value, default, decay))

    def selector_width(self, selector, span):
        return self._make(("width", selector.id), lambda i: SelectorWidth(i, "num", span, selector))
