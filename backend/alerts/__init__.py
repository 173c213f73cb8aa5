"""The alerts domain."""

CONTROLLERS: list[object] = []
