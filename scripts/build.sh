#!/usr/bin/env bash
# build.sh DIR [cmake args...]: configure (once) and build into DIR with 2 jobs
# (only target $DAXGUARD_BUILD_TARGET when set).
set -euo pipefail
dir=$1; shift
cd "$(dirname "$0")/.."
cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
cmake --build "$dir" -j2 ${DAXGUARD_BUILD_TARGET:+--target "$DAXGUARD_BUILD_TARGET"}
