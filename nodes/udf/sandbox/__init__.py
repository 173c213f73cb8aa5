"""The sandbox that runs ``udf.python`` code, which is hostile until proven otherwise.

Layers, outermost first (each one assumes the others failed):

1. :mod:`~nodes.udf.sandbox.policy` -- an AST policy checked at validation/deploy time and again
   in the worker before compiling. It never executes anything: allow-listed imports only, no
   names or attributes that reach Python's internals, only definitions at the top level.
2. :mod:`~nodes.udf.sandbox.worker` -- a fresh interpreter (``python -I -S``, empty environment,
   empty working directory, never a fork of the runtime) that pre-imports what it needs, then
   applies rlimits, drops root to ``nobody``, installs an audit hook that refuses files,
   sockets, processes, imports, ``exec``/``compile`` and frame introspection, and runs the user
   code with a restricted builtins dict and sanitized copies of the allowed modules.
3. :mod:`~nodes.udf.sandbox.pool` -- the runtime side: length-prefixed msgspec msgpack frames
   over pipes (never pickle), every response decoded into a strict type with size limits, a
   per-batch timeout that kills the worker, restarts with backoff, and state snapshots kept in
   the runtime so that a restarted worker resumes from the last good state.

This package's ``__init__`` imports nothing: the worker imports ``policy`` and ``protocol`` from
it before the sandbox closes, and should load as little as possible.
"""
