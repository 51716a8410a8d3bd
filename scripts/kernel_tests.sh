#!/usr/bin/env bash
# kernel_tests.sh [NAME...]: runs tests/kernel/NAME.sh (all of them by
# default) inside a real Linux kernel with an emulated NVDIMM, one boot per
# test, through the oracle in ../shared/oracle (it installs QEMU and fetches
# the kernel package on first use). Needs a plain build (scripts/build.sh build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
oracle=${DAXGUARD_ORACLE:-$root/../shared/oracle/run.sh}
[ -x "$oracle" ] || { echo "kernel_tests: no oracle at $oracle (set DAXGUARD_ORACLE)" >&2; exit 1; }
bin="$root/build/src/tools/daxguard $root/build/tests/mc_copy_probe"
for b in $bin; do
  [ -x "$b" ] || { echo "kernel_tests: build first (scripts/build.sh build): no $b" >&2; exit 1; }
done
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for t in "$root"/tests/kernel/*.sh; do names+=("$(basename "$t" .sh)"); done
fi
failed=0
for n in "${names[@]}"; do
  TESTS_DIR=$root/tests/kernel EXTRA_BINS="$bin" "$oracle" "$n" || failed=1
done
exit $failed
