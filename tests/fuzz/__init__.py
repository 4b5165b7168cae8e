"""Fuzzing adderc: random valid programs, mutants of real ones, and an oracle for each.

- `generate.random_program(seed)`: a type-correct program over the language's constructs.
- `mutate.mutants(text, seed, count)`: small textual damage to an existing program.
- `oracle.check(text, path, ...)`: a located error, or a model that matches the interpreter.
- `runner.run_tasks(tasks, jobs, timeout)`: every check in a worker process with a timeout.
- `minimize.minimize(text, path)`: a smaller program that fails the same way.

`bench/fuzz.py` runs long campaigns; `tests/test_fuzz.py` runs a bounded, seeded slice.
"""
