"""User-defined function nodes: user code that processes batches inside a sandbox."""
