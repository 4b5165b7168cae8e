"""Raises when the sum needs an eleventh digit: its digit table stops at ten."""
PLACES = [10 ** place for place in range(10)]


def build_model():
    return PLACES, {"name": "ten places only"}


def add(model, a, b):
    total, place = a + b, 0
    out = 0
    while total:
        out += total % 10 * model[place]
        total //= 10
        place += 1
    return out
