#!/usr/bin/env bash
# Install litestream-py, then restore the bundled example replica (written by the real Litestream 0.5.17)
# into ./demo/restored.db and list its LTX files: no cloud account needed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
bash "$repo/ci/install.sh"
mkdir -p demo
"$python" -m litestream ltx -level all "file://$repo/tests/vectors/v1_ps4096/replica"
"$python" -m litestream restore -force -integrity-check full -o demo/restored.db \
  "file://$repo/tests/vectors/v1_ps4096/replica"
echo "restored demo/restored.db"
