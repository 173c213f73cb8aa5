#!/bin/sh
# Regenerate openapi.json from the backend (when the project's venv exists), then the TypeScript types.
# Without a venv (or when the backend cannot be imported) the committed openapi.json is used as it is.
set -e
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
py="$root/.venv/bin/python"
if [ -x "$py" ]; then
  if (cd "$root" && "$py" -m backend.openapi > "$here/openapi.json.tmp" 2> "$here/openapi.json.err"); then
    mv "$here/openapi.json.tmp" "$here/openapi.json"
  else
    rm -f "$here/openapi.json.tmp"; tail -n 3 "$here/openapi.json.err" >&2
    echo "gen-api: backend.openapi failed; keeping the committed openapi.json" >&2
  fi
fi
rm -f "$here/openapi.json.err"
cd "$here" && npx openapi-typescript openapi.json --default-non-nullable false -o src/api/schema.d.ts
