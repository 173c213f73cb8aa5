#!/usr/bin/env bash
# Idempotent setup for a fresh machine: system packages where missing, the venv, Proxus itself,
# and the web app's production build. Every other script calls this first, so the two README
# commands work on a clean clone. Pass --with-browser to also install Chromium (browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
want_browser=0
[ "${1:-}" = "--with-browser" ] && want_browser=1

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ "$want_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then need_apt+=(chromium); fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing ${need_apt[*]} with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: please install ${need_apt[*]} (apt-get install -y ${need_apt[*]})" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PY" -m venv "$VENV"
fi

# Reinstall only when pyproject.toml changed since the last successful install.
stamp="$VENV/.proxus-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing Python packages (first run takes a minute)"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -e ".[dev]"
  touch "$stamp"
fi

# The web app: dependencies from the lock file, types from the Hub's OpenAPI, production build.
if [ -f frontend/package.json ]; then
  if [ ! -d frontend/node_modules ] || [ frontend/package-lock.json -nt frontend/node_modules/.package-lock.json ]; then
    echo "bootstrap: installing the web app's packages"
    (cd frontend && npm ci --no-audit --no-fund --loglevel=error)
  fi
  newest_src=$(find frontend/src frontend/index.html frontend/package.json backend -newer frontend/dist/index.html 2>/dev/null | head -1 || true)
  if [ ! -f frontend/dist/index.html ] || [ -n "$newest_src" ]; then
    echo "bootstrap: building the web app"
    "$VENV/bin/python" -m backend.openapi > frontend/openapi.json
    (cd frontend && npm run build --silent)
  fi
fi
