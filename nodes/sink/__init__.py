"""Sink nodes: where points and events leave a flow (historian, HTTP, NATS, debug panel)."""
