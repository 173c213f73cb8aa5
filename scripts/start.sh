#!/usr/bin/env bash
# Set up and start Proxus on embedded defaults.
# Today this validates and compiles the example flows into plans under .proxus/plans and prints the
# node catalog; it grows into starting the Hub, its NATS, PostgreSQL and a local edge.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
proxus catalog
echo
for flow in examples/*.json; do
  proxus compile "$flow" -o .proxus/plans
done
