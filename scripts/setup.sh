#!/usr/bin/env bash
# Installs every Debian package the build and tests need, when missing.
set -euo pipefail
pkgs=(cmake ninja-build g++ ccache pkg-config libgtest-dev libgmock-dev libbenchmark-dev
      libcli11-dev nlohmann-json3-dev libfmt-dev libisal-dev libpmem-dev
      clang libclang-rt-dev  # clang + libFuzzer: scripts/fuzz.sh
      fuse3 libfuse3-dev     # daxguard mount
      rsync fio sqlite3 git xfsprogs stress-ng attr)  # real clients the mount tests run
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
