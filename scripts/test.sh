#!/usr/bin/env bash
# Builds and runs every test: a plain build, then AddressSanitizer +
# UndefinedBehaviorSanitizer, then ThreadSanitizer for the concurrent code.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
run() {  # run NAME DIR [cmake args]
  local name=$1 dir=$2; shift 2
  echo "== $name"
  scripts/build.sh "$dir" "$@"
  ctest --test-dir "$dir" --output-on-failure -j2
}
run "tests" build -DDAXGUARD_BENCH=ON
run "tests under ASan+UBSan" build-asan -DDAXGUARD_SANITIZE=address,undefined
# TSan: the concurrency tests only (lock-free tables, holder watcher thread).
echo "== concurrency tests under TSan"
scripts/build.sh build-tsan -DDAXGUARD_SANITIZE=thread
ctest --test-dir build-tsan --output-on-failure -j2 -L concurrency
