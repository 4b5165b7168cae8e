"""Expressions: operators, conditionals and literals, and select predicates (over k, q and constants)."""
from __future__ import annotations

import sympy

from dsl import ast
from dsl.core import Const, Node, Select
from dsl.limits import MAX_EXPANSION
from dsl.resolve.names import BINARY_OPS, COMPARE_OPS, ELEMENTWISE_BUILTINS, LAYOUT_BUILTINS, SIGNATURES, describe


class Expressions:
    """The resolver's expressions, each made into a core node (dispatched by syntax node type)."""

    def expr(self, e: ast.Expr, scope: dict) -> Node:
        self.work += 1
        if self.work > MAX_EXPANSION:
            inside = f" (expanding {' -> '.join(self.def_stack)})" if self.def_stack else ""
            raise self.error(f"the program grows past {MAX_EXPANSION:,} expressions when its defs are written "
                             f"out at every call{inside}", e.span,
                             "defs are expanded where they are called: a def that calls another def twice, "
                             "level after level, doubles at each level; compute shared values once with let")
        method = getattr(self, "expr_" + type(e).__name__)
        return method(e, scope)

    def expr_Number(self, e, scope):
        return self.builder.const(sympy.Integer(e.value), e.span)

    def expr_String(self, e, scope):
        self.token_literals.append((e.value, e.span))
        return self.builder.const(e.value, e.span)

    def expr_Boolean(self, e, scope):
        return self.builder.const(e.value, e.span)

    def expr_BinOp(self, e, scope):
        left, right = self.expr(e.left, scope), self.expr(e.right, scope)
        if e.op == "&":
            for side, node, written in (("left", left, e.left), ("right", right, e.right)):
                if node.type != "selector":
                    raise self.error(f"'&' combines selectors, but its {side} side is {describe(node.type)}",
                                     written.span, "use 'and' for booleans")
            return self.builder.select(left.terms + right.terms, e.span)
        return self.elementwise(BINARY_OPS[e.op], (left, right), e.span, (e.left.span, e.right.span))

    def expr_UnaryOp(self, e, scope):
        return self.elementwise(e.op, (self.expr(e.operand, scope),), e.span, (e.operand.span,))

    def expr_Compare(self, e, scope):
        return self.compare_chain(e, [self.expr(x, scope) for x in e.operands])

    def compare_chain(self, e, operands):
        """a < b <= c is (a < b) and (b <= c), each comparison typed at its own operands."""
        result = None
        for i, op in enumerate(e.ops):
            part = self.elementwise(COMPARE_OPS[op], (operands[i], operands[i + 1]), e.span,
                                    (e.operands[i].span, e.operands[i + 1].span))
            result = part if result is None else self.elementwise("and", (result, part), e.span)
        return result

    def expr_IfElse(self, e, scope):
        args = (self.expr(e.condition, scope), self.expr(e.then, scope), self.expr(e.otherwise, scope))
        return self.elementwise("if_else", args, e.span, (e.condition.span, e.then.span, e.otherwise.span))

    def expr_RangeCall(self, e, scope):
        raise self.error(f"{e.function}(p in ...: ...) runs over numbers, for a meaning or a requirement; "
                         "a program works over positions", e.span,
                         "in a program, sum(select(...), value) adds the values of the keys a query selects")

    def expr_Mapping(self, e, scope):
        raise self.error("a map of candidates only goes in nearest(value, {...})", e.span,
                         f"for example {SIGNATURES['nearest']}")

    def selector_arg(self, arg, scope) -> Select:
        node = self.expr(arg, scope)
        if node.type != "selector":
            raise self.error(f"expected a selector, but this is {describe(node.type)}", arg.span,
                             "build one with select(keys, queries, predicate)")
        return node

    def sequence_arg(self, arg, scope, what) -> Node:
        node = self.expr(arg, scope)
        if node.type == "selector":
            raise self.error(f"{what} must be a sequence, not a selector", arg.span,
                             "a selector only says which keys each query reads; aggregate it to get values, "
                             "e.g. first(sel, values)")
        return node

    def predicate(self, e, pred_scope, scope):
        """A predicate sees only k, q and constants: it is compiled to a table, not evaluated per position."""
        if isinstance(e, ast.Name) and e.name in pred_scope:
            return pred_scope[e.name]
        if isinstance(e, ast.Name):
            node = self.expr(e, scope)
            if not isinstance(node, Const):
                raise self.error(f"a select predicate may only use k, q and constants; '{e.name}' is a sequence",
                                 e.span, "select on that sequence instead: select(keys, queries, ...)")
            return node
        if isinstance(e, (ast.Number, ast.String, ast.Boolean)):
            return self.expr(e, scope)
        if isinstance(e, ast.BinOp) and e.op != "&":
            return self.elementwise(BINARY_OPS[e.op], (self.predicate(e.left, pred_scope, scope),
                                                       self.predicate(e.right, pred_scope, scope)), e.span,
                                    (e.left.span, e.right.span))
        if isinstance(e, ast.UnaryOp):
            return self.elementwise(e.op, (self.predicate(e.operand, pred_scope, scope),), e.span, (e.operand.span,))
        if isinstance(e, ast.Compare):
            return self.compare_chain(e, [self.predicate(x, pred_scope, scope) for x in e.operands])
        if isinstance(e, ast.IfElse):
            return self.elementwise("if_else", (self.predicate(e.condition, pred_scope, scope),
                                                self.predicate(e.then, pred_scope, scope),
                                                self.predicate(e.otherwise, pred_scope, scope)), e.span,
                                    (e.condition.span, e.then.span, e.otherwise.span))
        if isinstance(e, ast.Call) and e.function in ELEMENTWISE_BUILTINS:
            self.check_arity(e, ELEMENTWISE_BUILTINS[e.function], ())
            return self.elementwise(e.function, tuple(self.predicate(a, pred_scope, scope) for a in e.args), e.span,
                                    tuple(a.span for a in e.args))
        if isinstance(e, ast.Call) and e.function in LAYOUT_BUILTINS:
            return self.layout_fact(e)
        raise self.error("this is not allowed in a select predicate", e.span,
                         "a predicate is an expression over k, q and constants, e.g. k == q - 1")
