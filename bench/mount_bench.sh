#!/usr/bin/env bash
# fio on the daxfs FUSE mount against tmpfs, in one run, with the FUSE floor
# (null_fuse: a FUSE filesystem that does nothing) measured alongside.
# Prints bandwidth ratios to tmpfs; exits 1 if a target is missed:
# cached 4 KiB random reads >= 0.9x tmpfs, 1 MiB sequential reads and writes
# >= 0.7x. Needs root and /dev/fuse. Usage: mount_bench.sh DAXGUARD NULL_FUSE
set -euo pipefail
DG=$1
NULL=$2
SECS=${DAXGUARD_MOUNT_BENCH_SECS:-3}
dir=$(mktemp -d "${DAXGUARD_BENCH_DIR:-/tmp}/mount-bench-XXXXXX")
mkdir -p "$dir/tmpfs" "$dir/daxfs" "$dir/null"
cleanup() {
  mountpoint -q "$dir/daxfs" && "$DG" umount "$dir/daxfs"
  mountpoint -q "$dir/null" && fusermount3 -u "$dir/null"
  mountpoint -q "$dir/tmpfs" && umount "$dir/tmpfs"
  rm -rf "$dir"
}
trap cleanup EXIT

mount -t tmpfs -o size=3g tmpfs "$dir/tmpfs"
"$DG" create-device "$dir/pmem0" --size 4g >/dev/null
"$DG" mkfs "$dir/pmem0" >/dev/null
"$DG" mount "$dir/pmem0" "$dir/daxfs"
"$NULL" "$dir/null" $((1 << 30)) &
for _ in $(seq 100); do mountpoint -q "$dir/null" && break; sleep 0.05; done
for fs in tmpfs daxfs; do
  fio --name=layout --filename="$dir/$fs/f" --rw=write --bs=1M --size=1G --minimal >/dev/null
done

# bw FS NAME JOBS FIO-ARGS...: KiB/s read + written
bw() {
  local fs=$1 name=$2 jobs=$3
  shift 3
  fio --name="$name" --filename="$dir/$fs/f" --size=1G --numjobs="$jobs" --group_reporting --time_based \
      --runtime="$SECS" --fallocate=none --minimal "$@" | awk -F';' '{ print $7 + $48 }'
}

declare -A target=([randread4k-cached]=0.9 [seqread1m]=0.7 [seqwrite1m]=0.7)
missed=0
printf '%-20s %4s %12s %12s %12s %8s %8s\n' job jobs "tmpfs MiB/s" "daxfs MiB/s" "null MiB/s" daxfs/t null/t
for jobs in 1 2; do
  for job in randread4k-cached randread4k-direct randwrite4k seqread1m seqwrite1m; do
    case $job in
      randread4k-cached) args=(--rw=randread --bs=4k --invalidate=0) ;;
      randread4k-direct) args=(--rw=randread --bs=4k --direct=1) ;;
      randwrite4k) args=(--rw=randwrite --bs=4k) ;;
      seqread1m) args=(--rw=read --bs=1M) ;;
      seqwrite1m) args=(--rw=write --bs=1M) ;;
    esac
    declare -A got=()
    for fs in tmpfs daxfs null; do
      # cached: the file is read once first, so the page cache holds it
      [ "$job" = randread4k-cached ] && cat "$dir/$fs/f" > /dev/null
      got[$fs]=$(bw "$fs" "$job" "$jobs" "${args[@]}")
    done
    ratio=$(awk -v a="${got[daxfs]}" -v b="${got[tmpfs]}" 'BEGIN { printf "%.2f", a / b }')
    nratio=$(awk -v a="${got[null]}" -v b="${got[tmpfs]}" 'BEGIN { printf "%.2f", a / b }')
    mark=""
    if [ -n "${target[$job]:-}" ] && awk -v r="$ratio" -v t="${target[$job]}" 'BEGIN { exit !(r < t) }'; then
      mark="  MISSED (target ${target[$job]}x)"
      missed=1
    fi
    printf '%-20s %4s %12.0f %12.0f %12.0f %8s %8s%s\n' "$job" "$jobs" "$((got[tmpfs] / 1024))" \
      "$((got[daxfs] / 1024))" "$((got[null] / 1024))" "$ratio" "$nratio" "$mark"
  done
done
exit "$missed"
