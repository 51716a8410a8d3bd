#!/usr/bin/env bash
# Builds and runs every test: a plain build, then AddressSanitizer +
# UndefinedBehaviorSanitizer, then ThreadSanitizer for the concurrent code,
# then the fuzzers (scripts/fuzz.sh: kept crash inputs replayed, then each
# harness for 40 s).
# Each purpose has its own build folder and names every option it needs, so
# no folder inherits another's cached settings; ctest fails if it finds no
# test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
run() {  # run NAME DIR [cmake args]
  local name=$1 dir=$2; shift 2
  echo "== $name"
  scripts/build.sh "$dir" "$@"
  ctest --test-dir "$dir" --output-on-failure --no-tests=error -j2
}
run "tests" build -DDAXGUARD_TESTS=ON -DDAXGUARD_BENCH=ON -DDAXGUARD_SANITIZE=
run "tests under ASan+UBSan" build-asan -DDAXGUARD_TESTS=ON -DDAXGUARD_SANITIZE=address,undefined
# TSan: the concurrency tests only (lock-free tables, holder watcher thread),
# and only they are built.
echo "== concurrency tests under TSan"
DAXGUARD_BUILD_TARGET=concurrency_tests scripts/build.sh build-tsan -DDAXGUARD_TESTS=ON -DDAXGUARD_SANITIZE=thread
TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp" \
  ctest --test-dir build-tsan --output-on-failure --no-tests=error -j2 -L concurrency
echo "== fuzzers"
scripts/fuzz.sh
