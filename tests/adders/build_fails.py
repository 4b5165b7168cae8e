"""build_model() cannot find its weights."""
from pathlib import Path


def build_model():
    weights = Path(__file__).with_name("no_such_weights.pt").read_bytes()
    return weights, {"name": "lost weights"}


def add(model, a, b):
    return a + b
