"""The flows domain."""

CONTROLLERS: list[object] = []
