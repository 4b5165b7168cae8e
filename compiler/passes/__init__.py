"""The compiler passes, one to a module; compiler.pipeline lists them in order."""
