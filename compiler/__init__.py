"""adderc: compile a program into the weights of a decoder-only transformer."""

__version__ = "0.1.0"
