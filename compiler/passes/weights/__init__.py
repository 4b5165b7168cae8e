"""Pass 8, weight building: embeddings, attention heads, MLP blocks and the readout, each exact (sympy)."""
