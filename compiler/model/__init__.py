"""The emitted transformer (torch only), its decoding loop, and the model file."""
