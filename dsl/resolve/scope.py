"""Names: defining them once, finding them (in a def's scope, then globally), and expanding defs."""
from __future__ import annotations

import difflib

from dsl import ast
from dsl.ast import children
from dsl.errors import AdderError
from dsl.limits import MAX_DEF_DEPTH
from dsl.resolve.names import BUILTIN_FUNCTIONS, RESERVED_NAMES, SIGNATURES


class Scope:
    """The resolver's names: globals, def scopes, names used before their definition, def calls."""

    def define_name(self, name, st):
        self.declarations.setdefault(name, st)
        if name in self.globals or name in self.defs:
            previous = self.globals[name][1] if name in self.globals else self.defs[name].span
            raise self.error(f"'{name}' is already defined", self.name_span(st, name),
                             f"choose another name; the first definition is at {previous}")
        if name in RESERVED_NAMES:
            raise self.error(f"'{name}' is a built-in name and cannot be redefined", self.name_span(st, name),
                             f"choose another name, e.g. '{name}_'")

    def used_too_early(self, name, span, what="name"):
        """The error for a name declared further on: a cycle when its definition leads back here."""
        st = self.pending[name]
        where = self.name_span(st, name)
        current = self.current.name if self.current is not None else None
        if current is not None and st is self.current:
            return self.error(f"cyclic definition: '{name}' is defined in terms of itself", span,
                              "a value cannot depend on itself; to read its value at earlier positions, "
                              "build it from other values and use shift(...) or a select")
        chain = self._path_to(name, current, {name}) if current is not None else None
        if chain is not None:
            cycle = " -> ".join([current, name] + chain)
            return self.error(f"cyclic definition: {cycle}", span,
                              f"a value cannot depend on itself; '{name}' is defined at {where}: "
                              "compute one of them from earlier values only")
        return self.error(f"{what} '{name}' is used before its definition at {where}", span,
                          f"statements are read from top to bottom: move the definition of '{name}' above this line")

    def _path_to(self, name, target, seen) -> list[str] | None:
        """The names through which pending declaration `name` uses `target`, ending with it, or None.

        A depth-first search with its own stack: a chain of thousands of declarations is no deeper
        for it than a chain of two."""
        stack = [iter(_names_used(self.pending[name]))]
        path = [name]
        while stack:
            used = next(stack[-1], None)
            if used is None:
                stack.pop()
                path.pop()
            elif used == target:
                return path[1:] + [target]
            elif used in self.pending and used not in seen:
                seen.add(used)
                path.append(used)
                stack.append(iter(_names_used(self.pending[used])))
        return None

    def expr_Name(self, e, scope):
        if e.name in scope:
            return scope[e.name]
        if e.name in self.globals:
            return self.globals[e.name][0]
        if e.name == "tokens":
            return self.builder.tokens(e.span)
        if e.name == "indices":
            return self.builder.indices(e.span)
        if e.name in self.defs or e.name in BUILTIN_FUNCTIONS:
            shape = SIGNATURES.get(e.name) or f"{e.name}({', '.join(self.defs[e.name].params)})"
            raise self.error(f"'{e.name}' is a function; call it with (...)", e.span, f"for example {shape}")
        if e.name in ("k", "q"):
            raise self.error(f"'{e.name}' only has a meaning inside a select predicate", e.span,
                             "k is the key's value and q the query's, as in select(indices, indices, k == q - 1)")
        if e.name in self.pending:
            raise self.used_too_early(e.name, e.span)
        known = list(scope) + list(self.globals) + ["tokens", "indices"]
        close = difflib.get_close_matches(e.name, known, n=1)
        raise self.error(f"unknown name '{e.name}'", e.span, f"did you mean '{close[0]}'?" if close else
                         "define it with let or const above this line")

    def call_def(self, e, scope):
        definition = self.defs[e.function]
        shape = f"{e.function}({', '.join(definition.params)})"
        if e.kwargs:
            key, value = e.kwargs[0]
            raise self.error(f"{e.function}(...) takes positional arguments only", self.keyword_span(value.span, key),
                             f"pass them in order: {shape}, defined at {definition.span}")
        if len(e.args) != len(definition.params):
            raise self.error(f"{e.function}(...) takes {len(definition.params)} argument(s), got {len(e.args)}",
                             e.span, f"call it as {shape}; it is defined at {definition.span}")
        if e.function in self.def_stack:
            chain = self.def_stack[self.def_stack.index(e.function):]
            through = f" ({' -> '.join(chain + [e.function])})" if len(chain) > 1 else ""
            raise self.error(f"'{e.function}' calls itself{through}; defs are expanded at compile time and "
                             "cannot recurse", e.span,
                             "write the repetition out, or compute it over positions with a select or sum(...)")
        if len(self.def_stack) >= MAX_DEF_DEPTH:
            raise self.error(f"defs call each other {len(self.def_stack) + 1} deep here ({self.def_stack[0]} -> "
                             f"... -> {self.def_stack[-1]} -> {e.function}); at most {MAX_DEF_DEPTH} calls can be "
                             "open at once", e.span, "call fewer defs inside one another: give intermediate "
                                                     "results names with let")
        local = {p: self.expr(a, scope) for p, a in zip(definition.params, e.args)}
        key = (e.function, tuple(local[p].id for p in definition.params))
        if key in self.expanded:
            return self.expanded[key]
        self.def_stack.append(e.function)
        try:
            for let in definition.lets:
                if let.name in local:
                    raise self.error(f"'{let.name}' is already defined in this def", self.name_span(let, let.name),
                                     "parameters and lets of a def share one scope; choose another name")
                local[let.name] = self.let(let, local)
            result = self.expr(definition.body, local)
        except AdderError as err:
            # The body is the same at every call; which call went wrong is what the user needs.
            if err.span is not None and err.span != e.span and len(err.notes) < 4:
                err.notes.append(f"in the call {e.function}(...) at {e.span}")
            raise
        self.def_stack.pop()
        self.expanded[key] = result
        return result


def _names_used(st) -> list[str]:
    """The global names (values, consts and functions) a declaration refers to, in order."""
    if isinstance(st, ast.DefDecl):
        local = set(st.params) | {let.name for let in st.lets}
        exprs = [let.value for let in st.lets] + [st.body]
    else:
        local, exprs = set(), [st.value]
    found = []
    stack = list(reversed(exprs))
    while stack:
        e = stack.pop()
        if isinstance(e, ast.Name) and e.name not in local:
            found.append(e.name)
        elif isinstance(e, ast.Call) and e.function not in local:
            found.append(e.function)
        if isinstance(e, ast.Mapping):
            stack.extend(reversed([v for _, v in e.items]))
        stack.extend(reversed(children(e)))
    return found
