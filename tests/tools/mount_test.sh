#!/usr/bin/env bash
# daxfs through FUSE with real programs nobody here wrote: each case starts
# from a fresh device and mount and unmounts, and fsck must find nothing.
# Usage: mount_test.sh DAXGUARD CASE [MAP_AND_WAIT]
set -euo pipefail
DG=$1
CASE=$2
MAP_AND_WAIT=${3:-}
SCRIPTS=$(cd "$(dirname "$0")/../../scripts" && pwd)
WORK=$(mktemp -d /tmp/daxguard-mount-XXXXXX)
DEV=$WORK/pmem0
MNT=$WORK/mnt
mkdir -p "$MNT"

fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
  exec 3<&- 4<&- || true
  mountpoint -q "$MNT" && { "$DG" umount "$MNT" || umount -l "$MNT"; }
  rm -rf "$WORK"
}
trap cleanup EXIT

fresh() {
  "$DG" create-device "$DEV" --size "${1:-512M}" >/dev/null
  "$DG" mkfs "$DEV" >/dev/null
  "$DG" mount "$DEV" "$MNT"
}
unmount_and_fsck() {
  "$DG" umount "$MNT"
  mountpoint -q "$MNT" && fail "still mounted after umount"
  "$DG" fsck "$DEV" | grep -q ' 0 problem(s)' || { "$DG" fsck "$DEV"; fail "fsck found problems"; }
}

# A tree with what copies get wrong: sparse files, hard links, empty
# directories, odd names, modes and times.
make_tree() {
  local t=$1
  mkdir -p "$t/dir/sub" "$t/empty" "$t/odd name" "$t/deep/a/b/c/d/e"
  head -c 1048577 /dev/urandom > "$t/dir/big"
  head -c 5000 /dev/urandom > "$t/dir/sub/small"
  : > "$t/dir/zero-length"
  for i in $(seq 1 50); do echo "file $i" > "$t/deep/a/b/c/d/e/f$i"; done
  truncate -s 20M "$t/sparse"
  printf 'middle' | dd of="$t/sparse" bs=1 seek=$((10 << 20)) conv=notrunc status=none
  echo linked > "$t/dir/hard1"
  ln "$t/dir/hard1" "$t/odd name/hard2"
  printf 'x' > "$t/odd name/tab	and \\ backslash"
  mkfifo "$t/dir/a-fifo"
  ln -s sub/small "$t/dir/relative-link"
  ln -s /etc/hostname "$t/absolute-link"
  ln -s "nowhere/at all" "$t/dangling-link"
  setfattr -n user.note -v "kept with the file" "$t/dir/big"
  setfattr -n user.bin -v 0x00ff00 "$t/empty"
  chmod 0640 "$t/dir/sub/small"
  chmod 0700 "$t/empty"
  touch -d '2001-02-03 04:05:06' "$t/dir/big"
}

same_tree() {  # diff -r, the checksums, and the modes and times
  diff -r --no-dereference -x a-fifo "$1" "$2" || fail "diff -r $1 $2"  # diff calls two FIFOs different
  [ -p "$2/dir/a-fifo" ] || fail "$2/dir/a-fifo is not a FIFO"
  (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$WORK/sum1"
  (cd "$2" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$WORK/sum2"
  cmp -s "$WORK/sum1" "$WORK/sum2" || fail "checksums differ between $1 and $2"
  # (a directory's size is the filesystem's business)
  (cd "$1" && find . \( -type d -printf '%p %m %T@\n' \) -o -printf '%p %m %s %T@\n' | sort) > "$WORK/meta1"
  (cd "$2" && find . \( -type d -printf '%p %m %T@\n' \) -o -printf '%p %m %s %T@\n' | sort) > "$WORK/meta2"
  diff "$WORK/meta1" "$WORK/meta2" || fail "modes, sizes or times differ between $1 and $2"
  (cd "$1" && getfattr -R -P -h -d -m user. -e hex . 2>/dev/null) > "$WORK/xattr1"
  (cd "$2" && getfattr -R -P -h -d -m user. -e hex . 2>/dev/null) > "$WORK/xattr2"
  [ -s "$WORK/xattr1" ] || fail "no extended attributes in $1"
  diff "$WORK/xattr1" "$WORK/xattr2" || fail "extended attributes differ between $1 and $2"
}

same_inode() { [ "$(stat -c %i "$1")" = "$(stat -c %i "$2")" ] || fail "$1 and $2 are not one file"; }

case_copy_tree() {
  fresh
  make_tree "$WORK/src"
  cp -a "$WORK/src" "$MNT/cp"
  same_tree "$WORK/src" "$MNT/cp"
  same_inode "$MNT/cp/dir/hard1" "$MNT/cp/odd name/hard2"
  [ "$(readlink "$MNT/cp/dangling-link")" = "nowhere/at all" ] || fail "symlink target wrong"
  cmp -s "$MNT/cp/dir/relative-link" "$WORK/src/dir/sub/small" || fail "symlink not followed"
  # sparse stays sparse: far fewer blocks than bytes
  [ "$(stat -c %b "$MNT/cp/sparse")" -lt 1000 ] || fail "sparse file filled in: $(stat -c %b "$MNT/cp/sparse") blocks"
  (cd "$WORK/src" && tar --format=posix --xattrs -cf - .) | (mkdir "$MNT/tar" && cd "$MNT/tar" && tar --xattrs -xpf -)
  same_tree "$WORK/src" "$MNT/tar"
  rsync -aHX "$WORK/src/" "$MNT/rsync/"
  same_tree "$WORK/src" "$MNT/rsync"
  same_inode "$MNT/rsync/dir/hard1" "$MNT/rsync/odd name/hard2"
  # and out again, each way
  mkdir "$WORK/out"
  cp -a "$MNT/cp" "$WORK/out/cp"
  (cd "$MNT/tar" && tar --format=posix --xattrs -cf - .) | (mkdir "$WORK/out/tar" && cd "$WORK/out/tar" && tar --xattrs -xpf -)
  rsync -aHX "$MNT/rsync/" "$WORK/out/rsync/"
  for d in cp tar rsync; do same_tree "$WORK/src" "$WORK/out/$d"; done
  unmount_and_fsck
  "$DG" mount "$DEV" "$MNT"
  for d in cp tar rsync; do same_tree "$WORK/src" "$MNT/$d"; done
  unmount_and_fsck
}

case_sqlite() {
  fresh
  local sql="create table t(i integer primary key, v text, w blob);"
  for _ in $(seq 1 20); do
    sql+="begin; insert into t(v, w) select hex(randomblob(16)), randomblob(100) from
          (with recursive c(x) as (select 1 union all select x+1 from c where x<5000) select x from c); commit;"
  done
  sqlite3 "$MNT/db" "$sql update t set v = 'changed' where i % 7 = 0; delete from t where i % 11 = 0;"
  [ "$(sqlite3 "$MNT/db" 'pragma integrity_check;')" = ok ] || fail "integrity_check before remount"
  local n
  n=$(sqlite3 "$MNT/db" 'select count(*) from t;')
  [ "$n" = 90910 ] || fail "rows: $n"
  unmount_and_fsck
  "$DG" mount "$DEV" "$MNT"
  [ "$(sqlite3 "$MNT/db" 'pragma integrity_check;')" = ok ] || fail "integrity_check after remount"
  [ "$(sqlite3 "$MNT/db" "select count(*) from t where v = 'changed';")" = 12987 ] || fail "updates lost"
  unmount_and_fsck
}

case_git() {
  fresh
  make_tree "$WORK/src"
  mkdir "$MNT/repo"
  cp -a "$WORK/src/." "$MNT/repo/"
  cd "$MNT/repo"
  git init -q .
  git add -A
  git -c user.name=t -c user.email=t@example.com commit -qm one
  echo more >> "dir/sub/small"
  git mv "dir/hard1" "dir/moved"
  git -c user.name=t -c user.email=t@example.com commit -qam two
  git gc -q
  git fsck --full --strict 2>&1 | grep -v '^Checking' && fail "git fsck complained" || true
  [ "$(git rev-list --count HEAD)" = 2 ] || fail "commits lost"
  git clone -q "$MNT/repo" "$WORK/clone"
  cd /
  diff -r --no-dereference -x .git -x empty -x a-fifo "$MNT/repo" "$WORK/clone" || fail "clone differs"  # git keeps no empty directory or FIFO
  unmount_and_fsck
}

case_fio_verify() {
  fresh 1G
  local common=(--directory="$MNT" --verify=crc32c --do_verify=1 --group_reporting --minimal)
  fio --name=rand4k --rw=randwrite --bs=4k --size=24M --numjobs=2 --fsync=32 "${common[@]}" > "$WORK/fio1"
  fio --name=seq1m --rw=write --bs=1M --size=64M --numjobs=2 --fsync=4 "${common[@]}" > "$WORK/fio2"
  fio --name=mixed --rw=randrw --bs=4k --size=16M --numjobs=3 "${common[@]}" > "$WORK/fio3"
  # --minimal: field 5 is the job's error; any verify failure also fails fio
  for f in "$WORK"/fio[123]; do
    awk -F';' '$5 != 0 { exit 1 }' "$f" || fail "fio error in $f"
  done
  unmount_and_fsck
}

# A program reading a file when poison appears under it: what precedes the
# damage, then EIO; health names the range; a whole-page rewrite repairs it.
case_poison() {
  "$DG" create-device "$DEV" --size 256M >/dev/null
  "$DG" mkfs "$DEV" >/dev/null
  head -c 1M /dev/urandom > "$WORK/data"
  "$DG" fs put "$WORK/data" "$DEV:/victim" >/dev/null
  "$DG" fs put "$WORK/data" "$DEV:/second" >/dev/null
  local blk blk2
  blk=$("$DG" io "$DEV:/victim" -c fiemap | "$SCRIPTS/sector_at.awk" -v at=24)  # 12 KiB into the file
  blk2=$("$DG" io "$DEV:/second" -c fiemap | "$SCRIPTS/sector_at.awk" -v at=0)
  "$DG" mount "$DEV" "$MNT"
  cmp "$WORK/data" "$MNT/victim" || fail "file differs before poison"
  # Two opens, the file's pages cached through one, when the error comes:
  # the other reads on, with no new open that would drop the cache.
  exec 3< "$MNT/victim" 4< "$MNT/victim"
  cat <&4 > /dev/null
  exec 4<&-
  "$DG" inject-error "$DEV" -B "$blk" >/dev/null
  sleep 0.5  # the cached pages are dropped on the invalidation thread
  local out
  out=$(dd of="$WORK/got" bs=4k <&3 2>&1) && fail "read past poison succeeded: $out"
  echo "$out" | grep -q 'Input/output error' || fail "no EIO: $out"
  [ "$(stat -c %s "$WORK/got")" = 12288 ] || fail "read $(stat -c %s "$WORK/got") bytes before the poison, not 12288"
  cmp -n 12288 "$WORK/data" "$WORK/got" || fail "bytes before the poison differ"
  exec 3<&-
  cat "$MNT/victim" > /dev/null 2>&1 && fail "a fresh open read the poisoned page"
  # A file nobody holds open keeps its cached pages across opens: poison drops them too.
  cat "$MNT/second" > /dev/null
  "$DG" inject-error "$DEV" -B "$blk2" >/dev/null
  sleep 0.5
  cat "$MNT/second" > /dev/null 2>&1 && fail "the cached pages of a closed file outlived its poison"
  getfattr -n user.daxguard.damage --only-values "$MNT/victim" > "$WORK/damage"
  grep -q '"offset":12288' "$WORK/damage" || fail "the damage attribute says $(cat "$WORK/damage")"
  getfattr -d "$MNT/victim" | grep -q 'user.daxguard.damage=' || fail "getfattr -d does not show the damage"
  setfattr -n user.daxguard.damage -v '[]' "$MNT/victim" 2>/dev/null && fail "the damage attribute was writable"
  # health and who answer through the running mount
  "$DG" health "$DEV" > "$WORK/health" || fail "health on the mounted device failed"
  grep -q '"path": "/victim"' "$WORK/health" || fail "health does not name /victim: $(cat "$WORK/health")"
  "$DG" who "$DEV" --offset $((blk * 512)) > "$WORK/who" || fail "who on the mounted device failed"
  grep -q '"file_offset": 12288' "$WORK/who" || fail "who does not name /victim at 12288: $(cat "$WORK/who")"
  "$DG" who "$DEV" --offset 0 --length 200m 2>"$WORK/err" && fail "a who answer over 64 KiB came back"
  grep -q 'over 64 KiB' "$WORK/err" || fail "unexpected error: $(cat "$WORK/err")"
  dd if="$WORK/data" of="$MNT/victim" bs=4k skip=3 seek=3 count=1 conv=notrunc status=none
  cmp "$WORK/data" "$MNT/victim" || fail "file differs after the rewrite"
  dd if="$WORK/data" of="$MNT/second" bs=4k count=1 conv=notrunc status=none
  cmp "$WORK/data" "$MNT/second" || fail "second file differs after the rewrite"
  getfattr -n user.daxguard.damage "$MNT/victim" 2>/dev/null && fail "damage attribute left after the rewrite"
  unmount_and_fsck
  "$DG" health "$DEV" | grep -q '"damaged_files": \[\]' || fail "damage left after the rewrite"
}

# A program with the file mapped when poison strikes loses the page: its
# next access to it is a SIGBUS; other pages still read.
case_poison_mapped() {
  "$DG" create-device "$DEV" --size 256M >/dev/null
  "$DG" mkfs "$DEV" >/dev/null
  head -c 1M /dev/urandom > "$WORK/data"
  "$DG" fs put "$WORK/data" "$DEV:/victim" >/dev/null
  local blk
  blk=$("$DG" io "$DEV:/victim" -c fiemap | "$SCRIPTS/sector_at.awk" -v at=24)  # page 3
  "$DG" mount "$DEV" "$MNT"
  for page in 3 5; do
    # (under ASan, its handler would catch the SIGBUS the test waits for)
    coproc MAPPED { ASAN_OPTIONS=handle_sigbus=0 "$MAP_AND_WAIT" "$MNT/victim" "$page" 2>&1; }
    local line
    read -r line <&"${MAPPED[0]}"
    [[ $line == mapped* ]] || fail "map_and_wait: $line"
    [ "$page" = 3 ] && "$DG" inject-error "$DEV" -B "$blk" >/dev/null
    sleep 0.5  # the page is dropped on the invalidation thread
    echo go >&"${MAPPED[1]}"
    local rc=0
    read -r line <&"${MAPPED[0]}" || true
    wait "$MAPPED_PID" || rc=$?
    if [ "$page" = 3 ]; then
      [ "$rc" = 135 ] || fail "access to the poisoned page: exit $rc ($line), not SIGBUS (135)"
    else
      [ "$rc" = 0 ] && [[ $line == read* ]] || fail "access to a good page: exit $rc ($line)"
    fi
  done
  "$DG" umount "$MNT"
}

# cp --reflink=auto reaches copy_file_range through FUSE, and a block-aligned
# one shares the blocks; --reflink=always (FICLONE) stops in the kernel.
case_reflink() {
  fresh 256M
  head -c 1000000 /dev/urandom > "$MNT/a"
  cp --reflink=auto "$MNT/a" "$MNT/b"
  cmp "$MNT/a" "$MNT/b" || fail "the reflinked copy differs"
  cp --reflink=always "$MNT/a" "$MNT/c" 2>"$WORK/err" && fail "FICLONE worked through FUSE"
  grep -q 'Operation not supported' "$WORK/err" || fail "unexpected error: $(cat "$WORK/err")"
  echo changed | dd of="$MNT/b" conv=notrunc status=none  # unshares the first block only
  unmount_and_fsck
  "$DG" io "$DEV:/a" -c "fiemap -v" | awk 'NR > 2 { print $3 }' > "$WORK/a.map"
  "$DG" io "$DEV:/b" -c "fiemap -v" | awk 'NR > 2 { print $3, $5 }' > "$WORK/b.map"
  tail -n 1 "$WORK/a.map" | grep -qf - "$WORK/b.map" || fail "b shares no blocks with a: $(cat "$WORK/a.map" "$WORK/b.map")"
  grep -q ' 0x2' "$WORK/b.map" || fail "b's shared extent is not flagged shared: $(cat "$WORK/b.map")"
  "$DG" mount "$DEV" "$MNT"
  [ "$(head -c 7 "$MNT/b")" = changed ] || fail "the write to the copy was lost"
  cmp -s -i 4096 "$MNT/a" "$MNT/b" || fail "the copy's other blocks differ"
  [ "$(head -c 7 "$MNT/a")" != changed ] || fail "the write to the copy reached the original"
  unmount_and_fsck
}

# stress-ng's filesystem stressors, bounded in time; fsck clean after.
case_stress_ng() {
  fresh 1G
  timeout 300 stress-ng --temp-path "$MNT" --timeout 5s --hdd 1 --hdd-bytes 16M --dir 1 --link 1 --symlink 1 \
    --rename 1 --dentry 1 --fallocate 1 --fallocate-bytes 16M --seek 1 --xattr 1 --chmod 1 --utime 1 \
    --metrics-brief > "$WORK/stress" 2>&1 || { cat "$WORK/stress"; fail "stress-ng failed"; }
  grep -q 'successful run completed' "$WORK/stress" || { cat "$WORK/stress"; fail "stress-ng did not complete"; }
  unmount_and_fsck
}

# The real xfs_io on the mount and daxguard's io on the device say the same
# and leave the same file, and both meet poison as EIO.
case_xfs_io() {
  fresh 256M
  local cmds=(-c "pwrite -S 0xab 0 64k" -c "fzero 4k 4k" -c "fpunch 8k 4k" -c "falloc 64k 64k"
              -c "pread -v 4090 16" -c "truncate 100000" -c "pwrite -S 0xcd 90000 20000" -c "fsync"
              -c "pread -v 109990 16")
  xfs_io -f "${cmds[@]}" "$MNT/real" | grep -v ' ops; ' > "$WORK/real.out"
  "$DG" umount "$MNT"
  "$DG" io "$DEV:/ours" -f "${cmds[@]}" | grep -v ' ops; ' > "$WORK/ours.out"
  diff "$WORK/real.out" "$WORK/ours.out" || fail "xfs_io and daxguard io say different things"
  "$DG" fs get "$DEV:/real" "$WORK/real"
  "$DG" fs get "$DEV:/ours" "$WORK/ours"
  cmp "$WORK/real" "$WORK/ours" || fail "xfs_io and daxguard io left different files"
  # the same holes and data (how the data splits into extents aside)
  for f in real ours; do
    "$DG" io "$DEV:/$f" -c fiemap | tail -n +2 | awk '{
      gsub(/[\[\]:]/, "", $2); split($2, r, /\.\./); t = ($3 == "hole" ? "hole" : "data")
      if (t == last) { end = r[2]; next }
      if (last != "") print start, end, last
      start = r[1]; end = r[2]; last = t
    } END { print start, end, last }' > "$WORK/$f.map"
  done
  diff "$WORK/real.map" "$WORK/ours.map" || fail "different layouts"
  local blk
  blk=$("$DG" io "$DEV:/real" -c fiemap | "$SCRIPTS/sector_at.awk" -v at=0)
  "$DG" inject-error "$DEV" -B "$blk" >/dev/null
  "$DG" io "$DEV:/real" -c "pread 0 4096" > "$WORK/ours.eio" 2>&1 && fail "io read poison"
  "$DG" mount "$DEV" "$MNT"
  xfs_io -c "pread 0 4096" "$MNT/real" > "$WORK/real.eio" 2>&1 || true
  grep -q 'pread: Input/output error' "$WORK/real.eio" || fail "xfs_io on the mount: $(cat "$WORK/real.eio")"
  grep -q 'pread: Input/output error' "$WORK/ours.eio" || fail "daxguard io: $(cat "$WORK/ours.eio")"
  "$DG" umount "$MNT"
}

# The mount holds the device; mistakes get one line and change nothing.
case_holder_and_errors() {
  fresh 64M
  echo hi > "$MNT/f"
  "$DG" fs ls "$DEV:/" 2>"$WORK/err" && fail "fs ls on a mounted device succeeded"
  grep -q 'held by pid' "$WORK/err" || fail "unexpected error: $(cat "$WORK/err")"
  "$DG" mount "$DEV" "$WORK" 2>"$WORK/err" && fail "a second mount of the device succeeded"
  [ "$(wc -l < "$WORK/err")" = 1 ] || fail "not one line: $(cat "$WORK/err")"
  unmount_and_fsck
  "$DG" mount "$DEV" "$WORK/none" 2>"$WORK/err" && fail "mount on a missing directory succeeded"
  "$DG" mount "$DEV" "$DEV" 2>"$WORK/err" && fail "mount on a file succeeded"
  grep -q 'not a directory' "$WORK/err" || fail "unexpected error: $(cat "$WORK/err")"
  "$DG" create-device "$WORK/blank" --size 64M >/dev/null
  "$DG" mount "$WORK/blank" "$MNT" 2>"$WORK/err" && fail "mount of a device with no filesystem succeeded"
  [ "$(wc -l < "$WORK/err")" = 1 ] || fail "not one line: $(cat "$WORK/err")"
  mountpoint -q "$MNT" && fail "a failed mount left a mount behind"
  "$DG" mount "$DEV" "$MNT" -o bogus 2>"$WORK/err" && fail "an unknown option was taken"
  grep -q "unknown mount option 'bogus'" "$WORK/err" || fail "unexpected error: $(cat "$WORK/err")"
  # read-only: reads work, writes get EROFS
  "$DG" mount "$DEV" "$MNT" -o ro
  [ "$(cat "$MNT/f")" = hi ] || fail "ro mount reads wrong"
  echo no > "$MNT/g" 2>/dev/null && fail "ro mount took a write"
  "$DG" umount "$MNT"
}

# A mount of a stack of two devices; the hardware commands keep working on
# it: a scrub finds latent poison under a file, FALLOC_FL_ZERO_RANGE over
# the file's own damaged page clears it, clear-errors on a damaged range
# leaves the loss reported, and fusermount3 -u lets the device go.
case_stack_and_hardware() {
  local stack=$WORK/stack
  "$DG" create-device "$WORK/d0" --size 64M >/dev/null
  "$DG" create-device "$WORK/d1" --size 64M >/dev/null
  "$DG" dm create "$stack" --table "0 131072 linear d0 0" --table "131072 131072 linear d1 0" >/dev/null
  "$DG" mkfs "$stack" >/dev/null
  head -c 1M /dev/urandom > "$WORK/data"
  "$DG" fs put "$WORK/data" "$stack:/f" >/dev/null
  local blk blk2
  blk=$("$DG" io "$stack:/f" -c fiemap | "$SCRIPTS/sector_at.awk" -v at=16)    # 8 KiB in
  blk2=$("$DG" io "$stack:/f" -c fiemap | "$SCRIPTS/sector_at.awk" -v at=128)  # 64 KiB in
  "$DG" mount "$stack" "$MNT"
  cmp "$WORK/data" "$MNT/f" || fail "file differs on the stack mount"
  "$DG" inject-error "$stack" -B "$blk" -N >/dev/null  # latent: a scrub finds it
  "$DG" start-scrub "$stack" --wait > /dev/null || fail "start-scrub on the mounted stack failed"
  # known before any read touched it (the mount hears of it moments later)
  for _ in $(seq 100); do
    getfattr --absolute-names -n user.daxguard.damage --only-values "$MNT/f" 2>/dev/null | grep -q '"offset":8192' &&
      break
    sleep 0.1
  done
  getfattr --absolute-names -n user.daxguard.damage --only-values "$MNT/f" | grep -q '"offset":8192' ||
    fail "the scrub's find is not the file's damage at 8192"
  cat "$MNT/f" > /dev/null 2>&1 && fail "the scrubbed poison read"
  xfs_io -c "fzero 8k 4k" "$MNT/f" || fail "fzero over the damaged page failed"
  dd if=/dev/zero of="$WORK/data" bs=4k seek=2 count=1 conv=notrunc status=none
  cmp "$WORK/data" "$MNT/f" || fail "after fzero the file is not the data with that page zeroed"
  getfattr --absolute-names -n user.daxguard.damage "$MNT/f" 2>/dev/null && fail "damage left after fzero"
  "$DG" inject-error "$stack" -B "$blk2" >/dev/null
  "$DG" clear-errors "$stack" >/dev/null || fail "clear-errors on the mounted stack failed"
  # the media is clear, but the file's bytes there are gone: still a loss
  cat "$MNT/f" > /dev/null 2>&1 && fail "cleared poison read as the file's data"
  getfattr --absolute-names -n user.daxguard.damage --only-values "$MNT/f" | grep -q '"offset":65536' ||
    fail "the loss was forgotten"
  dd if="$WORK/data" of="$MNT/f" bs=4k skip=16 seek=16 count=1 conv=notrunc status=none
  cmp "$WORK/data" "$MNT/f" || fail "file differs after the rewrite"
  fusermount3 -u "$MNT"
  for _ in $(seq 100); do "$DG" fsck "$stack" > "$WORK/fsck" 2>&1 && break; sleep 0.1; done
  grep -q ' 0 problem(s)' "$WORK/fsck" || fail "after fusermount3 -u: $(cat "$WORK/fsck")"
}

# A mount of a raid1 stack: poison on one leg under a file a program has
# read is rebuilt from the other leg; the file reads back whole, with no
# damage recorded, and both legs are clean again.
case_raid1() {
  local stack=$WORK/mirror
  "$DG" create-device "$WORK/d0" --size 64M >/dev/null
  "$DG" create-device "$WORK/d1" --size 64M >/dev/null
  "$DG" dm create "$stack" --table "0 131072 raid1 2 d0 0 d1 0" >/dev/null
  "$DG" mkfs "$stack" >/dev/null
  head -c 2M /dev/urandom > "$WORK/data"
  "$DG" fs put "$WORK/data" "$stack:/f" >/dev/null
  local blk
  blk=$("$DG" io "$stack:/f" -c fiemap | "$SCRIPTS/sector_at.awk" -v at=24)
  "$DG" mount "$stack" "$MNT"
  cat "$MNT/f" > /dev/null
  "$DG" inject-error "$WORK/d0" -B "$blk" >/dev/null
  for _ in $(seq 100); do "$DG" dm status "$stack" | grep -q 'leg_badblocks=0,0' && break; sleep 0.1; done
  "$DG" dm status "$stack" | grep -q 'leg_badblocks=0,0' || fail "leg not rebuilt: $("$DG" dm status "$stack")"
  echo 3 > /proc/sys/vm/drop_caches
  cmp "$WORK/data" "$MNT/f" || fail "the file differs after a leg's poison"
  getfattr --absolute-names -n user.daxguard.damage "$MNT/f" 2>/dev/null && fail "damage recorded for a byte a leg held"
  cp "$WORK/data" "$MNT/g"
  cmp "$WORK/data" "$MNT/g" || fail "a copy onto the mirror differs"
  "$DG" umount "$MNT"
  "$DG" fsck "$stack" | grep -q ' 0 problem(s)' || fail "fsck found problems"
  "$DG" fs get "$stack:/g" "$WORK/g.d1" >/dev/null
  cmp "$WORK/data" "$WORK/g.d1" || fail "the copy reads back differently"
  # d0 lost whole: replaced by d2 and resynced; the files read back whole.
  rm "$WORK/d0"
  "$DG" create-device "$WORK/d2" --size 64M >/dev/null
  "$DG" dm replace "$stack" "$WORK/d0" "$WORK/d2" | grep -q 'lost=-$' || fail "dm replace"
  "$DG" mount "$stack" "$MNT"
  cmp "$WORK/data" "$MNT/f" && cmp "$WORK/data" "$MNT/g" || fail "a file differs after the leg was replaced"
  "$DG" umount "$MNT"
  "$DG" fsck "$stack" | grep -q ' 0 problem(s)' || fail "fsck found problems after the replace"
}

# daxfs with parity, mounted: poison and a stray store under a file are
# rebuilt from parity; cp, tar and cmp see the file whole; fsck is clean.
case_parity() {
  "$DG" create-device "$DEV" --size 128M >/dev/null
  "$DG" mkfs "$DEV" --data-protection parity >/dev/null
  head -c 2M /dev/urandom > "$WORK/data"
  "$DG" fs put "$WORK/data" "$DEV:/f" >/dev/null
  local blk stray
  blk=$("$DG" io "$DEV:/f" -c fiemap | "$SCRIPTS/sector_at.awk" -v at=24)
  stray=$("$DG" io "$DEV:/f" -c fiemap | "$SCRIPTS/sector_at.awk" -v at=1001)
  # Bytes changed under the file with no poison (a raw write is refused
  # while mounted): the first read through the mount finds them.
  "$DG" io "$DEV" -c "pwrite -S 0x41 $((stray * 512 + 7)) 100" >/dev/null
  "$DG" mount "$DEV" "$MNT"
  "$DG" inject-error "$DEV" -B "$blk" >/dev/null
  for _ in $(seq 100); do "$DG" list "$DEV" | grep -q '"badblock_count": *0' && break; sleep 0.1; done
  "$DG" list "$DEV" | grep -q '"badblock_count": *0' || fail "poison not rebuilt: $("$DG" list "$DEV")"
  echo 3 > /proc/sys/vm/drop_caches
  cmp "$WORK/data" "$MNT/f" || fail "the file differs after poison and a stray store"
  getfattr --absolute-names -n user.daxguard.damage "$MNT/f" 2>/dev/null && fail "damage recorded for a rebuilt block"
  tar -C "$MNT" -cf "$WORK/t.tar" f && tar -C "$WORK" -xf "$WORK/t.tar" && cmp "$WORK/data" "$WORK/f" ||
    fail "tar round trip differs"
  cp "$WORK/data" "$MNT/g"
  "$DG" umount "$MNT"
  "$DG" fsck "$DEV" | grep -q ' 0 problem(s)' || fail "fsck found problems"
  "$DG" fs get "$DEV:/g" "$WORK/g.back" >/dev/null
  cmp "$WORK/data" "$WORK/g.back" || fail "the copy reads back differently"
}

# The README main job's parity part, as a new user runs it.
case_demo_parity() {
  local out
  out=$(cd "$SCRIPTS/.." && bash scripts/demo_parity.sh "$DG" "$WORK")
  echo "$out"
  [ "$(grep -c 'reads back whole' <<<"$out")" = 2 ] || fail "the demo's file did not read back whole twice"
  grep -q '"badblock_count": *0' <<<"$out" || fail "the demo's poison was not cleared"
  grep -q '"repaired_blocks":1' <<<"$out" || fail "the demo's scrub did not rebuild the stray store"
  grep -q '"damaged_files": \[\]' <<<"$out" || fail "the demo's health reported damage"
}

# The README main job's raid1 part, as a new user runs it.
case_demo_raid1() {
  local out
  out=$(cd "$SCRIPTS/.." && bash scripts/demo_raid1.sh "$DG" "$WORK")
  echo "$out"
  [ "$(grep -c 'reads back whole' <<<"$out")" = 2 ] || fail "the demo's file did not read back whole twice"
  grep -q '"damaged_files": \[\]' <<<"$out" || fail "the demo's health reported damage"
  grep -q ' 0 problem(s)' <<<"$out" || fail "the demo's fsck found problems"
}

"case_$CASE"
echo "PASS: $CASE"
