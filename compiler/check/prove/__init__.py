"""A proof that a compiled model equals its program on every input of the layout.

The argument runs sublayer by sublayer over the model's own weights. Each stored program value
lives in known residual dimensions, and every value set is finite (the compiler computed it
exactly). So each sublayer can be checked on every combination of the values it reads.
Positional values are fixed by the position; every other value ranges over its whole set, and
tokens range over the whole vocabulary at every position.

Each check also carries an error bound forward:

- embeddings must write each value exactly;
- an attention head's realised scores must separate the selected keys from the others (and
  from the sink), which bounds the weight it leaks, and so the error of its output;
- an MLP must give the exact value at every input combination, and its ReLUs must not change
  state under the input error bound, so its output error is the Jacobian times that bound
  (zero on the flat runs of the functions the compiler builds);
- the unembedding must give the right token a logit margin larger than the error can erase.

Because the checks cover every token sequence, not only correct ones, greedy generation is
covered by induction: if every earlier answer token is right, the next one is too.

Every operation the model performs is bounded for its rounding in the dtype it runs in
(compiler.check.prove.rounding: the standard IEEE-754 error model, gamma_k bounds for sums and
products, a relative bound for the softmax); the bounds join the error carried forward. Float
rounding of the stored weights shows up as small misses of a sublayer's exact value, carried
the same way. The checks downstream decide whether the margins absorb them.

A check that fails is not yet a counterexample: combinations are taken value by value, and many
cannot occur together for any input. So a failure is replayed: the verifier's inputs run through
the model, and only an input on which the model really writes a wrong answer makes the verdict
"counterexample"; otherwise it is "could not prove", naming the check and the program line.
"""
from compiler.check.prove.state import CannotProve
from compiler.check.prove.verdict import Proof, prove

__all__ = ["CannotProve", "Proof", "prove"]
