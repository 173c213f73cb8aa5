"""The templates domain."""

CONTROLLERS: list[object] = []
