"""Transform nodes: stateless or lightly stateful per-point processing of batches of points."""
