"""Right on every 10-digit pair: a torch module adds the digit pairs, Python ripples the carries."""
import torch

DIGITS = 10


class PairSum(torch.nn.Module):
    """(2, DIGITS) digits of a and b -> their sum per place; one fixed weight per operand."""

    def __init__(self):
        super().__init__()
        self.mix = torch.nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.mix.weight.fill_(1.0)

    def forward(self, digits):
        return self.mix(digits.T.to(self.mix.weight.dtype)).squeeze(-1)


def build_model():
    metadata = {"name": "digit module", "author": "adderc tests", "params": 2,
                "architecture": "one Linear(2, 1) over digit pairs", "tricks": ["carries in Python"]}
    return PairSum(), metadata


def _digits(n):
    return [n // 10 ** place % 10 for place in range(DIGITS)]


@torch.no_grad()
def add(model, a, b):
    pairs = model(torch.tensor([_digits(a), _digits(b)])).round().long().tolist()
    total, carry = 0, 0
    for place, pair in enumerate(pairs):
        carry, digit = divmod(pair + carry, 10)
        total += digit * 10 ** place
    return total + carry * 10 ** DIGITS
