#!/usr/bin/env bash
# System packages the build needs: a C compiler and liblz4 headers (the C core links the system liblz4).
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
[ -f /usr/include/lz4.h ] && [ -f /usr/include/lz4frame.h ] || need+=(liblz4-dev)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q "${need[@]}"
  }
fi
