"""Text to syntax tree: lark parses with `grammar.lark`, a Transformer builds typed nodes."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from dsl import ast
from dsl.errors import AdderError, Span
from dsl.limits import MAX_NESTING, MAX_TOKENS
from dsl.to_ast import ToAst

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")

# lark names terminals; users should read what they would type.
_TERMINAL_WORDS = {
    "NAME": "a name", "INT": "a number", "STRING": "a string", "COMPARE": "a comparison",
    "ENCODING": "'categorical' or 'numerical'", "DIGIT_ORDER": "'msb_first' or 'lsb_first'",
    "$END": "the end of the file",
}
# Whole families of terminals are named by what they make up, so that a hint reads "expected an
# expression" rather than a list of every token an expression can start with.
_STATEMENT_STARTS = ("CONST", "LET", "DEF", "IMPORT", "LAYOUT", "MEANING", "REQUIRE", "OUTPUT")
_EXPRESSION_STARTS = {"NAME", "INT", "STRING", "LPAR", "MINUS", "NOT", "TRUE", "FALSE", "LBRACE"}
_OPERATOR_LITERALS = {"+", "-", "*", "/", "//", "%", "**", "&", "and", "or", "if"}
_CLOSERS = {"RPAR": "(", "RSQB": "[", "RBRACE": "{"}
NEW_STATEMENT = "a new statement ('const', 'let', 'def', 'import', 'layout', 'meaning', 'require' or 'output')"


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR_PATH.read_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


@lru_cache(maxsize=1)
def _literals() -> dict[str, str]:
    """Terminal name -> the fixed text it matches (for terminals that match one text only)."""
    return {t.name: t.pattern.value for t in _parser().terminals if t.pattern.type == "str"}


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _expected_words(expected: set[str]) -> str:
    names, literals = set(expected), _literals()
    operators = {n for n in names if n in ("COMPARE", "POW") or literals.get(n) in _OPERATOR_LITERALS}
    groups = []
    if len(names & {"NAME", "INT", "STRING", "LPAR"}) >= 3:
        groups.append("an expression")
        names -= _EXPRESSION_STARTS
    if len(operators) >= 3:
        groups.append("an operator")
        # after a name, '(' would make it a call and '=' a keyword argument: true, but noise here
        # and after `f(x`, 'in' would make it a sum over a range (meanings only): noise too
        names -= operators | {"LPAR", "EQUAL", "IN"}
    if len(names & set(_STATEMENT_STARTS)) >= 3:
        groups.append(NEW_STATEMENT)
        names -= set(_STATEMENT_STARTS)
    end = "$END" in names
    names.discard("$END")
    words = []
    for name in sorted(names):
        if name in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[name])
        elif name in literals:
            words.append(f"'{literals[name]}'")
        elif not name.startswith("__"):
            words.append(f"'{name.lower()}'")
    words = sorted(set(words)) + groups + (["the end of the file"] if end else [])
    return "expected " + _join(words) if words else ""


def _after_last_token(source: str, path: str) -> Span:
    """Where an unfinished program stops: just after its last non-blank character."""
    text = source.rstrip()
    lines = text.splitlines() or [""]
    return Span(path, len(lines), len(lines[-1]) + 1)


def _last_token(item) -> Token | None:
    """The last token in a value on lark's parser stack (a token, or a subtree of them)."""
    while isinstance(item, Tree):
        children = [c for c in item.children if c is not None]
        if not children:
            return None
        item = children[-1]
    return item if isinstance(item, Token) else None


def _syntax_error(err: UnexpectedInput, source: str, path: str) -> AdderError:
    """Turn lark's error into one a user can act on: what is wrong where, in words, and what fits."""
    def error(message, span, hint=None):
        return AdderError(message, span, source, hint)

    if isinstance(err, UnexpectedCharacters):
        where = Span(path, err.line, err.column)
        char = source[err.pos_in_stream] if err.pos_in_stream < len(source) else ""
        if char == '"':
            return error("this string is not closed: it needs a '\"' before the end of the line", where,
                         "a string ends on the line it starts on")
        if char == "'":
            return error("strings are written in double quotes, not '", where, 'write "+" rather than \'+\'')
        if not any(re.match(t.pattern.to_regexp(), source[err.pos_in_stream:])
                   for t in _parser().terminals if t.name not in ("WS", "COMMENT")):
            return error(f"unexpected character {char!r}: it is not part of the language", where,
                         "remove it; the operators are + - * / // % ** &, the comparisons == != < <= > >=, "
                         "and the words and, or, not")
        return error(f"unexpected character {char!r}", where, _expected_words(err.allowed or set()) or None)
    expected = set(err.expected) if isinstance(err, (UnexpectedToken, UnexpectedEOF)) else set()
    tok = getattr(err, "token", None)
    if isinstance(err, UnexpectedEOF) or (tok is not None and tok.type == "$END"):
        return error("the program ends in the middle of a statement", _after_last_token(source, path),
                     _expected_words(expected) or None)
    if not isinstance(err, UnexpectedToken):  # pragma: no cover - lark's other input errors
        return error(f"cannot parse: {err}", Span(path, err.line, err.column))
    where = Span(path, tok.line, tok.column, tok.end_line, tok.end_column)
    at_statement_level = bool(expected & set(_STATEMENT_STARTS))
    # Where only an expression fits, the lexer reads a statement keyword as a name: `let x = 1 +`
    # followed by `let y = 2` fails at `y`, but the mistake is the unfinished line before.
    before = _last_token(err.state.value_stack[-1]) if getattr(err, "state", None) and err.state.value_stack \
        else None
    if before is not None and before.type == "NAME" and str(before) in {_literals()[k] for k in _STATEMENT_STARTS}:
        return error(f"'{before}' starts a new statement, but the one before it is not finished",
                     Span(path, before.line, before.column, before.end_line, before.end_column),
                     "finish the expression before it, or remove the operator that ends it")
    if tok.type == "RBRACE" and "LET" in expected:
        return error("a def body in braces must end with the expression it gives", where,
                     "write the result after the lets, e.g. def f(x) { let y = x + 1  y * 2 }")
    if tok.type in _CLOSERS and at_statement_level:
        return error(f"unexpected {tok.value!r}: there is no '{_CLOSERS[tok.type]}' open for it to close", where,
                     "remove it, or add the opening bracket where it belongs")
    if tok.type in _STATEMENT_STARTS and "RPAR" in expected:
        return error(f"unexpected {tok.value!r}: a '(' before it is still open", where,
                     "expected ')' to close it before the next statement")
    if tok.type == "NAME" and at_statement_level and expected <= set(_STATEMENT_STARTS) | {"$END"}:
        line_before = source.splitlines()[tok.line - 1][:tok.column - 1]
        rest = source[tok.end_pos:].lstrip()
        if line_before.strip():
            return error(f"unexpected {tok.value!r} after a complete expression", where,
                         f"join them with an operator, or start {NEW_STATEMENT} here")
        if rest.startswith("=") and not rest.startswith("=="):
            return error(f"unexpected {tok.value!r}: a statement starts with a keyword", where,
                         f"to define '{tok.value}', write let {tok.value} = ... (or const {tok.value} = ...)")
        return error(f"unexpected {tok.value!r}: a statement starts with a keyword", where,
                     f"expected {NEW_STATEMENT}")
    if "ARROW" in expected and tok.type in _STATEMENT_STARTS:
        return error(f"unexpected {tok.value!r}: the layout has no '=>'", where,
                     "put '=>' between the prompt and the answer, e.g. ... \"=\" => sum[N + 1] \"<eos>\"")
    hint = _expected_words(expected) or None
    if tok.type == "EQUAL" and "COMPARE" in expected:
        hint = "to compare, write '=='"
    return error(f"unexpected {tok.value!r}", where, hint)


# Rules that group a call's arguments or a map's entries: they add a tree level, not a nesting.
_GROUPING_RULES = {"args", "kwarg", "map_item"}


def _check_nesting(tree: Tree, source: str, path: str):
    """Refuse an expression nested deeper than MAX_NESTING before anything walks it recursively
    (the tree transformer and the resolver do, and Python's stack would give out around 300)."""
    stack = [(tree, 0, tree)]
    while stack:
        node, depth, outer = stack.pop()
        if depth > MAX_NESTING:  # the caret marks the whole expression, from its start
            meta = outer.meta
            span = Span(path, meta.line, meta.column, meta.end_line, meta.end_column)
            raise AdderError(f"an expression in this statement nests more than {MAX_NESTING} operations deep", span, source,
                             "split it into lets of a few terms each, e.g. let part = ... then use part")
        for child in node.children:
            if isinstance(child, Tree):
                # the statement level (start, then a declaration) is not nesting
                nested = node.data != "start" and child.data not in _GROUPING_RULES
                stack.append((child, depth + nested, child if node.data == "start" else outer))


# A token as the lexer will see it, near enough to count them before parsing (which is far slower).
_ROUGH_TOKEN = re.compile(r'"[^"\n]*"|#[^\n]*|\w+|\S')


def _check_length(source: str, path: str):
    for count, match in enumerate(_ROUGH_TOKEN.finditer(source), 1):
        if count > MAX_TOKENS:
            line = source.count("\n", 0, match.start()) + 1
            column = match.start() - (source.rfind("\n", 0, match.start()) + 1) + 1
            raise AdderError(f"this file has more than {MAX_TOKENS:,} tokens; this is token {count:,}",
                             Span(path, line, column), source,
                             "a program is a few dozen statements: compute repeated work over positions, "
                             "with a select or sum(...), rather than writing it out")


def parse(source: str, path: str = "<string>") -> ast.Module:
    """Parse program text; every syntax error becomes an AdderError with line and column."""
    _check_length(source, path)
    try:
        tree = _parser().parse(source)
    except UnexpectedInput as err:
        raise _syntax_error(err, source, path) from None
    _check_nesting(tree, source, path)
    try:
        statements = ToAst(path).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, AdderError):
            err.orig_exc.source = source
            raise err.orig_exc from None
        raise
    return ast.Module(path, source, statements)
