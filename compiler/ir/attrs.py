"""Every attribute key of the program graph (`ir.graph.nodes[n]`), in one place.

Plain strings, so `attrs[DIMS]` and `attrs["dims"]` name the same entry. Each says what it
holds and which pass adds it; compiler.ir.contract checks that the passes declare these truthfully.
"""
from __future__ import annotations

# ----- build_graph (compiler.passes.build_graph)
NODE = "node"  # the dsl.core node the graph node stands for
LABEL = "label"  # its let name, or its source text: how messages and maps name it
SPAN = "span"  # its source position (file, line, column)

# ----- infer_value_sets (compiler.passes.value_sets)
SOURCE = "source"  # what it depends on: "const", "token", "position" or "mixed"
VALUES = "values"  # the sorted tuple of every value it can take, over every input of the layout
PER_POSITION = "per_position"  # position and constant nodes: the exact value at each position
MAX_WIDTH = "max_width"  # aggregates and selector widths over tokens: the most keys a query can select
AT_ZERO = "at_zero"  # when the layout fixes the first token: the value at position 0

# ----- choose_encodings (compiler.passes.encodings)
ENCODING = "encoding"  # "categorical" (one-hot) or "numerical" (one dimension)
REALIZE = "realize"  # what brings the value about: "const", "embed", "inline", "derived", "attention",
#                      "width", "mlp", "fused" or "readout"

# ----- schedule (compiler.passes.schedule)
READY = "ready"  # the sublayer after which the value can be read (compiler.ir.slots numbers them)
SLOT = "slot"  # attention, width and MLP nodes: the sublayer that computes the value
LAYER = "layer"  # the same nodes: the layer that sublayer belongs to
FRONTIER = "frontier"  # MLP nodes: the readable values its MLP reads
FUSED = "fused"  # MLP nodes: the fused functions its MLP computes on the way
DEPENDENT = "dependent"  # MLP nodes: inputs affine in the frontier, computed from it (compiler.ir.forms)
LAST_READ = "last_read"  # the last sublayer that reads the value, None when nothing does

# ----- share_sums (compiler.passes.share)
SHARE = "share"  # a term of a shared sum: (root id, coefficient it writes into the root's dimension)
SHARED_TERMS = "shared_terms"  # a shared sum: the ids of its terms
SHARE_HOST = "share_host"  # a shared sum held in one of its values' dimension: (host id, scale)

# ----- pair_offset_heads (compiler.passes.pair_heads)
PAIRED_WITH = "paired_with"  # the nearer of two paired shifts: (the other's id, ratio of their shares)
PAIRED_INTO = "paired_into"  # the farther one: the id of the shift whose head computes it too

# ----- allocate (compiler.passes.allocate); prune renumbers DIMS
DIMS = "dims"  # stored nodes: residual dimensions (one per value when categorical)
IN_PLACE = "in_place"  # an MLP value written over its input's dimension: that input's id
STORED_AS = "stored_as"  # such a value kept in its input's encoding: (slope, bias) of the dimension
HELPER_DIM = "helper_dim"  # selector widths: the dimension its head writes w/(w+1) into
# heads with a select term on positions alone: {positions (sorted tuple): dimension} of the 0/1
# columns of W_pos its head reads, each 1 at those positions (compiler.ir.position_terms)
POSITION_FEATURES = "position_features"

NODE_ATTRIBUTES = frozenset({
    NODE, LABEL, SPAN, SOURCE, VALUES, PER_POSITION, MAX_WIDTH, AT_ZERO, ENCODING, REALIZE,
    READY, SLOT, LAYER, FRONTIER, FUSED, DEPENDENT, LAST_READ, SHARE, SHARED_TERMS, SHARE_HOST,
    PAIRED_WITH, PAIRED_INTO, DIMS, IN_PLACE, STORED_AS, HELPER_DIM, POSITION_FEATURES,
})

# ----- an edge attribute (build_graph): how the target uses the source, a set of "arg", "key",
# "query", "value". Nothing reads it yet; it documents the graph for whoever walks it.
ROLES = "roles"
