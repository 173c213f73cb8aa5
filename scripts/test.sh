#!/usr/bin/env bash
# Set up and run the whole test suite (lint, types, unit, integration).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --with-browser
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check .
echo "== mypy"; mypy
echo "== pytest"; python -m pytest -q -p no:cacheprovider "$@"
