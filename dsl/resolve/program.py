"""A program file to a core program: the resolver, put together from its parts, and its last checks."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from dsl import ast
from dsl.core import Aggregate, Node, Program, Select, SelectorWidth
from dsl.errors import AdderError, Span
from dsl.limits import MAX_CHAIN, MAX_OPERATIONS
from dsl.resolve.base import ResolverBase
from dsl.resolve.calls import Calls
from dsl.resolve.declarations import Declarations
from dsl.resolve.expressions import Expressions
from dsl.resolve.files import Files
from dsl.resolve.layout_meaning import LayoutAndMeaning
from dsl.resolve.scope import Scope
from dsl.resolve.op_types import OpTypes


class Resolver(Files, Declarations, LayoutAndMeaning, Scope, Expressions, OpTypes, Calls, ResolverBase):
    """Resolves one program: reads its files, and turns each statement into core nodes."""


def load_program(path: str | Path, overrides: dict[str, int] | None = None, text: str | None = None,
                 embedded: dict[str, str] | None = None) -> Program:
    """Read, parse, resolve and type-check a program file (or `text` standing for it). With
    `embedded` (plain relative name -> source), `path` is one of those names, and the program and
    its imports come from there alone: nothing is read from disk."""
    path = Path(path)
    resolver = Resolver(overrides or {})
    if embedded is not None:
        resolver.embedded, text = embedded, embedded[str(path)]
    try:
        resolver.load(path.resolve() if text is None else path, text)
    except AdderError as err:
        _note_overrides(err, resolver)
        raise
    main = str(path.resolve() if text is None else path)
    unknown = set(resolver.overrides) - resolver.used_overrides
    if unknown:
        name = sorted(unknown)[0]
        if name in resolver.declarations:
            st = resolver.declarations[name]
            kind = "def" if isinstance(st, ast.DefDecl) else "let"
            raise resolver.error(f"-D {name}: the program declares no const of that name; '{name}' is a {kind}",
                                 resolver.name_span(st, name), "-D overrides consts only" + (
                                     f"; the consts are {', '.join(resolver.constants)}" if resolver.constants else ""))
        raise AdderError(f"-D {name}: the program declares no const of that name"
                         + (f" (its consts: {', '.join(resolver.constants)})" if resolver.constants else ""),
                         hint="check the spelling; names are case-sensitive")
    end = Span(main, max(1, len(resolver.sources[main].splitlines())), 1)
    if resolver.layout is None:
        raise AdderError("the program has no layout declaration", end, resolver.sources[main],
                         'add one, e.g. layout base 10, msb_first: "<bos>" a[N] "+" b[N] "=" => sum[N + 1] "<eos>"')
    try:
        resolver.finish_layout()
    except AdderError as err:
        _note_overrides(err, resolver)
        raise
    resolver.check_token_literals()
    if resolver.output is None:
        raise AdderError("the program has no output statement", end, resolver.sources[main],
                         "end it with: output <an expression giving the next token>")
    output = resolver.output[0]
    builder = resolver.builder
    keep = _reachable([output] + [n for n, _ in resolver.globals.values()])
    nodes = [n for n in builder.nodes
             if n.id in keep and n.id not in builder.predicate_ids and n.type != "selector"]
    _check_size(nodes, resolver)
    return Program(main, resolver.sources[main], resolver.sources, dict(resolver.constants), resolver.layout,
                   output, nodes, dict(resolver.encodings), resolver.meaning)


def _check_size(nodes: list[Node], resolver: Resolver):
    """Refuse a program with more operations, or longer chains of them, than the compiler is meant for.

    Checked on the resolved program, where equal values are shared: what the compiler will build.
    """
    if len(nodes) > MAX_OPERATIONS:
        raise resolver.error(f"the program has {len(nodes):,} operations; at most {MAX_OPERATIONS:,} are "
                             f"supported (this is operation {MAX_OPERATIONS + 1:,})", nodes[MAX_OPERATIONS].span,
                             "a model's size grows with its operations; compute repeated work over positions, "
                             "with a select or sum(...), rather than writing it out")
    chain: dict[int, int] = {}
    for node in nodes:  # in topological order: every input comes before the nodes that read it
        chain[node.id] = 1 + max((chain.get(i.id, 0) for i in node.inputs()), default=0)
        if chain[node.id] > MAX_CHAIN:
            raise resolver.error(f"this value comes at the end of a chain of more than {MAX_CHAIN} operations, each "
                                 f"reading the one before; at most {MAX_CHAIN} are supported", node.span,
                                 "a long chain is usually a long sum written term by term: sum over positions "
                                 "with a select and sum(...) instead")


def _note_overrides(err: AdderError, resolver: Resolver):
    """Say so when a const named on the failing line was set with -D: the fix may be on the command line."""
    if err.span is None or not resolver.used_overrides:
        return
    lines = resolver.sources.get(err.span.file, "").splitlines()
    line = lines[err.span.line - 1] if 1 <= err.span.line <= len(lines) else ""
    for name in sorted(resolver.used_overrides):
        if re.search(rf"\b{re.escape(name)}\b", line):
            err.notes.append(f"{name} is {resolver.overrides[name]} here, set on the command line by "
                             f"-D {name}={resolver.overrides[name]}")


def _reachable(roots):
    seen, stack = set(), list(roots)
    while stack:
        node = stack.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        stack.extend(node.inputs())
        if isinstance(node, Select):
            stack.extend(t.predicate for t in node.terms)
        if isinstance(node, (Aggregate, SelectorWidth)):
            stack.append(node.selector)
    return seen


def source_digest(program: Program) -> str:
    """sha256 over every file the program read, in the order read."""
    return sources_digest(program.sources.values())


def sources_digest(texts) -> str:
    """sha256 over source texts in order: what a model file records of the program it came from."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()
