#!/usr/bin/env bash
# The main job's end: data kept, not just reported. A raid1 stack of two
# device files under var/ (made afresh each run), its filesystem mounted;
# poison under a file on one leg is rebuilt from the other before any
# program sees it, and a leg lost whole is replaced and resynced.
# Usage: demo_raid1.sh DAXGUARD DIR
set -euo pipefail
DG=$1
DIR=$2
MNT=$DIR/mnt
step() { printf '\n==> %s\n' "$*"; }

if [ ! -w /dev/fuse ]; then
  echo "(no writable /dev/fuse here: the raid1 part of the demo mounts, and needs one)"
  exit 0
fi
mkdir -p "$MNT"
if mountpoint -q "$MNT"; then "$DG" umount "$MNT"; fi
trap 'if mountpoint -q "$MNT"; then "$DG" umount "$MNT"; fi' EXIT
rm -f "$DIR"/leg0.dev "$DIR"/leg1.dev "$DIR"/leg2.dev "$DIR"/mirror
status() { "$DG" dm status "$DIR/mirror" | sed 's/^/    /'; }

step "a mirror: two device files, one raid1 stack, daxfs on it (dm create, mkfs, mount)"
"$DG" create-device "$DIR/leg0.dev" --size 64M >/dev/null
"$DG" create-device "$DIR/leg1.dev" --size 64M >/dev/null
"$DG" dm create "$DIR/mirror" --table "0 131072 raid1 2 leg0.dev 0 leg1.dev 0"
"$DG" dm table "$DIR/mirror" | sed 's/^/    /'
"$DG" mkfs "$DIR/mirror" | sed 's/^/    /'
"$DG" mount "$DIR/mirror" "$MNT"
keep=$(mktemp)
trap 'rm -f "$keep"; if mountpoint -q "$MNT"; then "$DG" umount "$MNT"; fi' EXIT
head -c 4M /dev/urandom > "$keep"
cp "$keep" "$MNT/precious"
"$DG" umount "$MNT"
blk=$("$DG" io "$DIR/mirror:/precious" -c fiemap | scripts/sector_at.awk -v at=24)
"$DG" mount "$DIR/mirror" "$MNT"
echo "    /precious: 4 MiB; its sector 24 is the mirror's sector $blk"

step "poison strikes /precious on leg0 while it is mounted: the mirror rebuilds it from leg1"
"$DG" inject-error "$DIR/leg0.dev" -B "$blk" >/dev/null
for _ in $(seq 50); do "$DG" dm status "$DIR/mirror" | grep -q 'leg_badblocks=0,0' && break; sleep 0.1; done
status
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
cmp -s "$keep" "$MNT/precious" && echo "    /precious reads back whole (cmp against the original): no EIO, nothing lost"
echo "    health through the mount: $("$DG" health "$DIR/mirror" | grep -o '"damaged_files": [^,]*')"

step "leg0 is lost whole: unmount, replace it with a new device, and resync (dm replace)"
"$DG" umount "$MNT"
rm "$DIR/leg0.dev"
"$DG" create-device "$DIR/leg2.dev" --size 64M >/dev/null
"$DG" dm replace "$DIR/mirror" "$DIR/leg0.dev" "$DIR/leg2.dev" | sed 's/^/    /'
"$DG" dm table "$DIR/mirror" | sed 's/^/    /'
"$DG" mount "$DIR/mirror" "$MNT"
cmp -s "$keep" "$MNT/precious" && echo "    /precious reads back whole from the new pair of legs"

step "unmount, and fsck the filesystem on the mirror"
"$DG" umount "$MNT"
"$DG" fsck "$DIR/mirror" | sed 's/^/    /'
