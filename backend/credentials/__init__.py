"""The credentials domain."""

CONTROLLERS: list[object] = []
