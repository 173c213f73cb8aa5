"""Proxus node types: the declarations the Hub serves, the editor draws and the runtime runs.

Each node type lives in its own module under one of the category packages (``device``,
``transform``, ``window``, ``analytics``, ``udf``, ``sink``) and exports ``SPEC``, a
:class:`nodes.spec.NodeSpec` built from a documented config struct. ``nodes.builtin.SPECS``
collects the built-in types in palette order; third-party node packs register the same way
through the ``proxus.nodes`` entry point group.
"""
