"""Wrong only when a carry must cross LOOKAHEAD or more places whose digits sum to 9.

Its carry lookahead looks at most LOOKAHEAD places down for the place the carry comes from, and
assumes no carry when it finds none: a carry running up a chain of 9s longer than that is lost.
Random pairs almost never hold such a chain; the carry strata hold it by construction."""
LOOKAHEAD = 6


def build_model():
    return {"base": 10, "lookahead": LOOKAHEAD}, {"name": "short lookahead", "author": "adderc tests",
                                                  "params": 0, "architecture": "plain Python"}


def add(model, a, b):
    base, window = model["base"], model["lookahead"]
    da, db = [], []
    while a or b:
        da.append(a % base)
        db.append(b % base)
        a, b = a // base, b // base
    pairs = [x + y for x, y in zip(da, db)]
    total = 0
    for place in range(len(pairs) + 1):
        carry = 0
        for below in range(place - 1, max(place - 1 - window, -1), -1):
            if pairs[below] != base - 1:  # the nearest place that does not pass a carry on
                carry = int(pairs[below] >= base)
                break
        digit = ((pairs[place] if place < len(pairs) else 0) + carry) % base
        total += digit * base ** place
    return total
