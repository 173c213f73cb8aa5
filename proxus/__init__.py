"""Proxus core: flow document, plan, compiler, CLI and service launchers."""
