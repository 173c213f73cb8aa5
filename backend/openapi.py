"""Print the Hub's OpenAPI document (JSON) without starting any service.

``python -m backend.openapi > frontend/openapi.json``: the web app's TypeScript types are
generated from it (``npm run gen:api``), so the API schema is written once, in the backend.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import msgspec

from backend.app import create_app
from backend.settings import Settings


def openapi_document() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        # The lifespan never runs here, so these URLs are never dialled.
        settings = Settings(
            data_dir=Path(tmp),
            database_url="postgresql://unused/unused",
            nats_url="nats://unused:4222",
            redis_url=None,
            secret_key="x" * 43 + "=",
        )
        app = create_app(settings)
        schema: dict[str, object] = app.openapi_schema.to_schema()
        return schema


def main() -> None:
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(openapi_document()), indent=2) + b"\n")


if __name__ == "__main__":
    main()
