#!/usr/bin/env bash
# The main job, data kept on one device: daxfs made with --data-protection
# parity on a device file under var/ (made afresh each run). Poison under a
# file is rebuilt from parity by the next mount that hears of it, and a stray
# store (bytes changed, no poison) is found by its checksum and rebuilt by
# the patrol; the file reads back whole each time.
# Usage: demo_parity.sh DAXGUARD DIR
set -euo pipefail
DG=$1
DIR=$2
dev=$DIR/parity.dev
keep=$(mktemp)
back=$DIR/precious.back
trap 'rm -f "$keep" "$back"' EXIT
step() { printf '\n==> %s\n' "$*"; }
intact() {
  rm -f "$back"
  "$DG" fs get "$dev:/precious" "$back"
  cmp -s "$keep" "$back" && echo "    /precious reads back whole (cmp against the original): $1"
}

step "daxfs with parity: a CRC32C and a parity strip for every 4 KiB block (mkfs --data-protection parity)"
rm -f "$dev"
"$DG" create-device "$dev" --size 64M >/dev/null
"$DG" mkfs "$dev" --data-protection parity | sed 's/^/    /'
head -c 1M /dev/urandom > "$keep"
"$DG" fs put "$keep" "$dev:/precious"
poisoned=$("$DG" io "$dev:/precious" -c fiemap | scripts/sector_at.awk -v at=24)
stray=$("$DG" io "$dev:/precious" -c fiemap | scripts/sector_at.awk -v at=41)
echo "    /precious: 1 MiB; its sectors 24 and 41 are the device's $poisoned and $stray"

step "poison under /precious: the next mount hears of it and rebuilds the block from parity"
"$DG" inject-error "$dev" -B "$poisoned" >/dev/null
intact "rebuilt, the poison cleared by a recovery write"
echo "    badblocks left: $("$DG" list "$dev" | grep -o '"badblock_count": *[0-9]*')"

step "a stray store under /precious (64 bytes written into the device file, no poison): scrub DEV:fs finds it"
"$DG" io "$dev" -c "pwrite -S 0x41 $((stray * 512 + 100)) 64" >/dev/null
"$DG" scrub "$dev:fs" --once | grep -o '"filesystem":{[^}]*}' | sed 's/^/    /'
intact "the block that no longer matched its checksum was rebuilt"
echo "    health: $("$DG" health "$dev" | grep -o '"damaged_files": [^,]*')"
