"""The IR the passes hand to one another: the program graph with its node attributes, affine reads of
the residual stream, the sparse exact weights, and the residual and weight maps."""
