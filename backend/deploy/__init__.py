"""The deploy domain."""

CONTROLLERS: list[object] = []
