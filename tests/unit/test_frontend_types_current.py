"""The web app's API types are generated from the Hub's OpenAPI document: the committed copy is current."""

from __future__ import annotations

import json
from pathlib import Path

from backend.openapi import openapi_document

COMMITTED = Path(__file__).parents[2] / "frontend" / "openapi.json"


def test_committed_openapi_matches_the_backend() -> None:
    assert json.loads(COMMITTED.read_text()) == json.loads(json.dumps(openapi_document())), (
        "the API changed: run `python -m backend.openapi > frontend/openapi.json` and `npm run gen:api` in frontend/"
    )
