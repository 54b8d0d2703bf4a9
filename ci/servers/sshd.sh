#!/usr/bin/env bash
# OpenSSH's sshd and sftp-server for the sftp backend tests (tests/servers/sshd.py), from Debian. The
# tests run their own sshd (private config, throwaway keys, 127.0.0.1 on a free port); the system's
# sshd service is neither configured nor started here. Idempotent.
set -euo pipefail
# shellcheck source=ci/servers/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
if [ -x /usr/sbin/sshd ] && { [ -x /usr/lib/openssh/sftp-server ] || [ -x /usr/libexec/sftp-server ]; } \
    && command -v ssh-keygen >/dev/null 2>&1; then
  echo "sshd: $(/usr/sbin/sshd -V 2>&1 | head -1) already installed"
  exit 0
fi
apt_install_quietly openssh-server openssh-sftp-server openssh-client
/usr/sbin/sshd -V 2>&1 | head -1
