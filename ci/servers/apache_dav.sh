#!/usr/bin/env bash
# Apache httpd with mod_dav/mod_dav_fs (the WebDAV server upstream's CI uses) for the webdav backend
# tests (tests/servers/apache_dav.py), from Debian. The tests run their own apache2 (private config,
# 127.0.0.1 on a free port); /etc/apache2 is not used and the system service is not started. Idempotent.
set -euo pipefail
# shellcheck source=ci/servers/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
mods=/usr/lib/apache2/modules
if [ -x /usr/sbin/apache2 ] && [ -f "$mods/mod_dav_fs.so" ] && command -v htpasswd >/dev/null 2>&1; then
  echo "apache_dav: $(/usr/sbin/apache2 -v 2>/dev/null | head -1) already installed"
  exit 0
fi
apt_install_quietly apache2 apache2-utils
/usr/sbin/apache2 -v | head -1
