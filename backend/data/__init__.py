"""The data domain."""

CONTROLLERS: list[object] = []
