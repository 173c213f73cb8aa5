"""The devices domain."""

CONTROLLERS: list[object] = []
