#!/usr/bin/env bash
# OpenSSH's sshd and sftp-server for the sftp backend tests (tests/servers/sshd.py), from Debian. The
# tests run their own sshd (private config, throwaway keys, 127.0.0.1 on a free port); the system's
# sshd service is neither configured nor started here. Idempotent.
#
# As root it also makes the account the password-authentication tests log in as: user
# `litestream-test` (home /home/litestream-test, shell /bin/sh) with the password
# `litestream-test-password`. This is a throwaway account for CI machines and test containers, known
# to be public: only the tests' own sshd lets it in (127.0.0.1, password login allowed for this user
# alone, every session forced into sftp); the system sshd is never configured for it. Running again
# leaves the account as it is and sets the same password. Without root the account is not made and
# those tests skip, saying so.
set -euo pipefail
# shellcheck source=ci/servers/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

# Keep in step with tests/servers/sshd.py (PASSWORD_USER, PASSWORD_USER_PASSWORD).
test_user=litestream-test
test_password=litestream-test-password

make_password_user() {
  if [ "$(id -u)" != 0 ]; then
    echo "sshd: not root: password test user $test_user not made (the sftp password tests will skip)"
    return 0
  fi
  if ! getent passwd "$test_user" >/dev/null; then
    useradd --create-home --home-dir "/home/$test_user" --shell /bin/sh \
      --comment "litestream sftp password tests (throwaway)" "$test_user"
  fi
  mkdir -p "/home/$test_user"
  chown "$test_user:" "/home/$test_user"
  echo "$test_user:$test_password" | chpasswd
  echo "sshd: password test user $test_user ready"
}

if [ -x /usr/sbin/sshd ] && { [ -x /usr/lib/openssh/sftp-server ] || [ -x /usr/libexec/sftp-server ]; } \
    && command -v ssh-keygen >/dev/null 2>&1; then
  echo "sshd: $(/usr/sbin/sshd -V 2>&1 | head -1) already installed"
else
  apt_install_quietly openssh-server openssh-sftp-server openssh-client
  /usr/sbin/sshd -V 2>&1 | head -1
fi
make_password_user
