#!/usr/bin/env bash
# Apache httpd with mod_dav/mod_dav_fs (the WebDAV server upstream's CI uses) for the webdav backend
# tests (tests/servers/apache_dav.py), from Debian. The tests run their own apache2 (private config,
# 127.0.0.1 on a free port); /etc/apache2 is not used and the system service is not started. Idempotent.
set -euo pipefail
mods=/usr/lib/apache2/modules
if [ -x /usr/sbin/apache2 ] && [ -f "$mods/mod_dav_fs.so" ] && command -v htpasswd >/dev/null 2>&1; then
  echo "apache_dav: $(/usr/sbin/apache2 -v 2>/dev/null | head -1) already installed"
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
$sudo apt-get install -y -qq --no-install-recommends apache2 apache2-utils >/dev/null
/usr/sbin/apache2 -v | head -1
