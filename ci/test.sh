#!/usr/bin/env bash
# Install everything the tests need (system packages, our package, test tools, the reference
# Litestream 0.5.17 binary and 0.3.13 for v0.3 backups, each in its own venv) and run the whole suite,
# lint included.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
cd "$repo"
bash ci/install.sh --test
bash ci/install-servers.sh
bash ci/install-reference.sh 0.5.17
bash ci/install-reference.sh 0.3.13
"$python" -m ruff check python tests bench
"$python" -m pytest -q --durations=25 "$@"
