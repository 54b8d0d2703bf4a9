#!/usr/bin/env bash
# Build and install litestream-py (and, with --test, what the test suite needs).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
bash "$repo/ci/system-deps.sh"
extra=""
[ "${1:-}" = "--test" ] && extra="[test]"
PIP_ROOT_USER_ACTION=ignore "$python" -m pip install -q "$repo$extra"
