#!/usr/bin/env bash
# Azurite (npm, Microsoft's Azure Storage emulator; only its blob service is used) for the abs backend
# tests, into <repo>/.cache/servers/azurite/ (project-local, not global). Idempotent.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="$repo/.cache/servers/azurite"
version="${AZURITE_VERSION:-3.37.0}"
command -v npm >/dev/null || { echo "azurite: npm is required (apt-get install nodejs npm)" >&2; exit 1; }
if [ ! -x "$dest/node_modules/.bin/azurite-blob" ]; then
  mkdir -p "$dest"
  [ -f "$dest/package.json" ] || echo '{"name": "litestream-py-azurite", "private": true}' > "$dest/package.json"
  (cd "$dest" && npm install --no-audit --no-fund --loglevel=error "azurite@$version")
fi
echo "azurite: $dest/node_modules/.bin/azurite-blob"
