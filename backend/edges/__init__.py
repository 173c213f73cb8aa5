"""The edges domain."""

CONTROLLERS: list[object] = []
