#!/usr/bin/env bash
# Set up and start Proxus on embedded defaults: the Hub with its NATS and PostgreSQL, a local
# edge and demo device simulators. Extra arguments go to `proxus hub` (see `proxus hub --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/proxus hub --demo "$@"
