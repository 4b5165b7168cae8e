"""Hangs on every pair whose units digits sum to 9; right elsewhere.

`except Exception` around the loop, as many files wrap their model, must not swallow the time
limit."""


def build_model():
    return None, {"name": "hangs on units that sum to 9"}


def add(model, a, b):
    try:
        while (a + b) % 10 == 9:
            pass
    except Exception:
        return -1
    return a + b
