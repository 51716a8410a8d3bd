#!/usr/bin/env bash
# The main job's last part: the demo device's filesystem mounted through
# FUSE, real programs (cp, sqlite3) on it, and poison under a file a
# program is reading. Usage: demo_mount.sh DAXGUARD DEV
set -euo pipefail
DG=$1
DEV=$2
MNT=$(dirname "$DEV")/mnt
step() { printf '\n==> %s\n' "$*"; }

if [ ! -w /dev/fuse ]; then
  echo "(no writable /dev/fuse here: the mount part of the demo needs one)"
  exit 0
fi
mkdir -p "$MNT"
if mountpoint -q "$MNT"; then "$DG" umount "$MNT"; fi
cleanup() {
  exec 3<&- || true
  if mountpoint -q "$MNT"; then "$DG" umount "$MNT"; fi
}
trap cleanup EXIT

step "mount the filesystem through FUSE: daxguard mount $DEV $MNT"
"$DG" mount "$DEV" "$MNT"
mount | grep " $(realpath "$MNT") " | sed 's/^/    /'
df -h "$MNT" | sed 's/^/    /'

step "real programs use it: cp -a a source tree in, and sqlite3 builds a database"
rm -rf "$MNT/demo-src" "$MNT/demo.db"
cp -a src "$MNT/demo-src"
diff -r src "$MNT/demo-src" && echo "    cp -a: $(find "$MNT/demo-src" -type f | wc -l) files, identical (diff -r)"
sqlite3 "$MNT/demo.db" "create table t(i integer primary key, v text);
  insert into t(v) select hex(randomblob(16)) from
    (with recursive c(x) as (select 1 union all select x+1 from c where x < 100000) select x from c);"
echo "    sqlite3: $(sqlite3 "$MNT/demo.db" 'select count(*) from t;') rows, integrity_check: $(sqlite3 "$MNT/demo.db" 'pragma integrity_check;')"
keep=$(mktemp)
head -c 1M /dev/urandom > "$keep"
cp "$keep" "$MNT/precious"

step "find where /precious lies on the device (unmounted, the device is free to ask)"
"$DG" umount "$MNT"
"$DG" io "$DEV:/precious" -c fiemap | sed 's/^/    /'
blk=$("$DG" io "$DEV:/precious" -c fiemap | scripts/sector_at.awk -v at=24)  # the device sector of file sector 24
"$DG" mount "$DEV" "$MNT"

step "a program holds /precious open; poison strikes 12 KiB into it (inject-error, as ndctl's)"
exec 3< "$MNT/precious"
"$DG" inject-error "$DEV" -B "$blk" >/dev/null
echo "    dd reads it: $(dd if=/proc/self/fd/3 of=/dev/null bs=4k 2>&1 | grep -E 'error|copied' | tr '\n' ' ')"
exec 3<&-
echo "    getfattr names the damage: $(getfattr -n user.daxguard.damage --only-values "$MNT/precious")"

step "rewrite the damaged page whole from a backup (dd conv=notrunc): the poison is cleared"
dd if="$keep" of="$MNT/precious" bs=4k skip=3 seek=3 count=1 conv=notrunc status=none
getfattr -n user.daxguard.damage "$MNT/precious" >/dev/null 2>&1 || echo "    no damage left"
cmp -s "$keep" "$MNT/precious" && echo "    /precious is whole again: identical to the backup (cmp)"
rm -f "$keep"

step "unmount, and fsck the filesystem"
"$DG" umount "$MNT"
"$DG" fsck "$DEV" | sed 's/^/    /'
