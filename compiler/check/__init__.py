"""Checking a compiled model: sampled verification, the prover, outside adders, the pytest helper."""
