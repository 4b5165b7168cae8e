"""For users' own test suites: keep compiled models under regression tests.

    from compiler.check.testing import assert_model_matches_program

    def test_my_adder():
        assert_model_matches_program("model.pt", "examples/add10.rasp", samples=20_000,
                                     max_nonzero=1000, max_layers=2)
"""
from __future__ import annotations

from compiler.model.file import load_model
from compiler.stats import model_stats
from compiler.check.program import program_from_payload
from compiler.check.verify import summary, verify


def assert_model_matches_program(model_path, program_path=None, *, samples: int = 10_000,
                                 seed: int = 20261122, per_stratum: int = 5, max_nonzero: int | None = None,
                                 max_dense: int | None = None, max_layers: int | None = None,
                                 max_d_model: int | None = None) -> dict:
    """Fail (AssertionError with the verifier's summary) unless the model equals its program on every
    checked input, in float64 and float32, and its size stays within the bounds given. Returns the
    report as a dict."""
    _, payload = load_model(model_path)
    program = program_from_payload(payload, str(program_path) if program_path else None)
    report = verify(payload, program, samples=samples, seed=seed, per_stratum=per_stratum, progress=False)
    if not report.ok:
        raise AssertionError(summary(report, str(program_path or model_path)))
    stats = model_stats(payload["config"], payload["state_dict"], structure=payload.get("structure"))
    bounds = {"nonzero_params": max_nonzero, "dense_params": max_dense, "layers": max_layers,
              "d_model": max_d_model}
    over = [f"{name} {stats[name]} > {limit}" for name, limit in bounds.items()
            if limit is not None and stats[name] > limit]
    if over:
        raise AssertionError(f"{model_path}: grew past its bounds: {'; '.join(over)}")
    return report.to_dict()
