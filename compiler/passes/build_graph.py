"""Pass 1: the program graph.

Adds: one graph node per core node the output depends on, with attributes
  node (the core node), label (its name or kind#id), span (its source position);
and one edge per user, with attribute `roles`: a set of "arg", "key", "query", "value".
"""
from __future__ import annotations

import networkx as nx

from dsl.core import Aggregate, Map, Program, SelectorWidth, needed_by
from compiler.ir.attrs import LABEL, NODE, ROLES, SPAN
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR


@compiler_pass(adds={NODE, LABEL, SPAN}, sets_ir={"options"})
def build_graph(program: Program, options: dict | None = None) -> CompileIR:
    graph = nx.DiGraph()
    needed = needed_by(program.output)
    for node in program.nodes:
        if node.id not in needed:
            continue
        graph.add_node(node.id, node=node, label=_label(node, program), span=node.span)
        for source, role in _uses(node):
            if graph.has_edge(source.id, node.id):
                graph.edges[source.id, node.id][ROLES].add(role)
            else:
                graph.add_edge(source.id, node.id, roles={role})
    assert nx.is_directed_acyclic_graph(graph)
    return CompileIR(program, graph, dict(options or {}))


def _label(node, program) -> str:
    """A let's name, or else the expression as written (what a reader recognises in a report)."""
    if node.names:
        return node.names[0]
    if node.kind in ("tokens", "indices"):
        return node.kind
    span = node.span
    lines = program.sources.get(span.file, "").splitlines()
    if span.end_line == span.line and 1 <= span.line <= len(lines):
        text = lines[span.line - 1][span.column - 1:span.end_column - 1]
        return text if len(text) <= 48 else text[:45] + "..."
    return node.label


def _uses(node):
    if isinstance(node, Map):
        return [(a, "arg") for a in node.args]
    if isinstance(node, (Aggregate, SelectorWidth)):
        uses = []
        for term in node.selector.terms:
            uses += [(term.keys, "key"), (term.queries, "query")]
        if isinstance(node, Aggregate):
            uses.append((node.value, "value"))
        return uses
    return []
