#!/usr/bin/env bash
# OpenSSH's sshd and sftp-server for the sftp backend tests (tests/servers/sshd.py), from Debian. The
# tests run their own sshd (private config, throwaway keys, 127.0.0.1 on a free port); the system's
# sshd service is neither configured nor started here. Idempotent.
set -euo pipefail
if [ -x /usr/sbin/sshd ] && { [ -x /usr/lib/openssh/sftp-server ] || [ -x /usr/libexec/sftp-server ]; } \
    && command -v ssh-keygen >/dev/null 2>&1; then
  echo "sshd: $(/usr/sbin/sshd -V 2>&1 | head -1) already installed"
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# The tests start their own instance; keep the package from starting the system service (on a host
# with an init system it would otherwise listen on the standard port). Debian's way: a policy-rc.d
# that denies starts, made only for this install when the host has none.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends openssh-server openssh-sftp-server openssh-client >/dev/null
/usr/sbin/sshd -V 2>&1 | head -1
