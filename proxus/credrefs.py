"""Which stored credentials a plan uses: every ``credential`` field in its steps' configs.

Shared by the Hub (to decide what an edge may fetch) and the edge (to fetch what it needs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from proxus.plan import Plan

CREDENTIALS_SUBJECT = "proxus.hub.credentials"


def credentials_subject(edge: str) -> str:
    """Where edge ``edge`` asks the Hub for credentials (its permissions allow only its own)."""
    return f"{CREDENTIALS_SUBJECT}.{edge}"


def _walk(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "credential" and isinstance(item, str) and item:
                out.add(item)
            else:
                _walk(item, out)
    elif isinstance(value, list):
        for item in value:
            _walk(item, out)


def credential_refs(plans: Iterable[Plan]) -> set[str]:
    found: set[str] = set()
    for plan in plans:
        for step in plan.steps:
            _walk(step.config, found)
    return found
