"""The IR the passes hand to one another: the program graph with its node attributes (named in
attrs), affine reads of the residual stream, the sparse exact weights, and the residual and weight
maps; what each pass reads and adds (contract), and the one numbering of sublayers (slots)."""
