#!/usr/bin/env bash
# Builds the benchmarks in Release (in build-bench/) and runs all eight,
# each ending with its summary of ratios; exits 1 if any missed a target.
# Device files live in a private directory under ${DAXGUARD_BENCH_DIR:-/tmp}
# and are removed at exit.
# Extra arguments go to dax_io_bench, badblocks_bench, fs_bench and dm_bench (Google
# Benchmark flags, e.g. --benchmark_filter=read). fs_bench runs only some of
# its parts with DAXGUARD_FS_BENCH_PARTS=io,who,mount,meta.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-bench"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDAXGUARD_TESTS=OFF -DDAXGUARD_BENCH=ON -DDAXGUARD_SANITIZE= >/dev/null
ninja -C "$build" -j2 dax_io_bench badblocks_bench scrub_bench map_bench dm_bench fs_bench raid1_bench protect_bench

failed=()
for b in dax_io_bench badblocks_bench scrub_bench map_bench dm_bench fs_bench raid1_bench protect_bench; do
  echo
  echo "################ $b ################"
  start=$(date +%s.%N)
  args=("$@")
  [ "$b" = scrub_bench ] || [ "$b" = map_bench ] || [ "$b" = raid1_bench ] || [ "$b" = protect_bench ] && args=()
  "$build/bench/$b" "${args[@]}" || failed+=("$b")
  awk -v s="$start" -v e="$(date +%s.%N)" -v b="$b" 'BEGIN { printf "(%s took %.1f s)\n", b, e - s }'
done
if ((${#failed[@]})); then
  echo "bench: targets missed in ${failed[*]}"
  exit 1
fi
