"""The adderc program language: grammar, parser, typed syntax tree, and sympy semantics."""
