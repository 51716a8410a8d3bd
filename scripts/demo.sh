#!/usr/bin/env bash
# The main job: set up, build, and walk through the poison lifecycle on the
# default emulated device (var/daxguard.dev, created on first run), then
# mount its filesystem and show real programs on it meeting poison, then a
# filesystem with parity keeping a file through poison and a stray store,
# and a raid1 mirror keeping one through poison and through a lost leg.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build-demo -DDAXGUARD_BENCH=OFF -DDAXGUARD_TESTS=OFF >/dev/null
build-demo/src/tools/daxguard demo var/daxguard.dev
scripts/demo_mount.sh build-demo/src/tools/daxguard var/daxguard.dev
scripts/demo_parity.sh build-demo/src/tools/daxguard var
exec scripts/demo_raid1.sh build-demo/src/tools/daxguard var
