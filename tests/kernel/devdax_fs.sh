# In the oracle's guest: daxfs on a real device-dax node. A tree written,
# read back, checked by fsck, and read again by the next mount. (Poison
# cannot be raised on a device-dax page here: QEMU's NFIT injects nothing,
# and a page failed by madvise(MADV_HWPOISON) is mapped again, unfaulted,
# by the next process; tests/kernel/mc_copy.sh checks the copy that meets
# a real machine check.)
. /tests/lib.sh
load_modules
modprobe device_dax 2>/dev/null || true
fail() { echo "FAIL: $*"; exit 1; }
expect() { grep -q -- "$1" "$2" || { cat "$2"; fail "expected '$1'"; }; }
R "ndctl disable-region region0 && ndctl init-labels -f nmem0 && ndctl enable-region region0"
R "ndctl create-namespace -r region0 -m devdax -a 2M"
D=/dev/dax0.0
SIZE=$(cat /sys/bus/dax/devices/dax0.0/size)

daxguard mkfs $D || fail "mkfs $D"
head -c 1048576 /dev/urandom > /tmp/a
head -c 300000 /dev/urandom > /tmp/b
daxguard fs put /tmp/a $D:/a || fail "put /a"
daxguard fs mkdir $D:/d || fail "mkdir /d"
daxguard fs put /tmp/b $D:/d/b || fail "put /d/b"
daxguard fs get $D:/a /tmp/a.back && cmp /tmp/a /tmp/a.back || fail "/a read back differs"
daxguard fs get $D:/d/b /tmp/b.back && cmp /tmp/b /tmp/b.back || fail "/d/b read back differs"
daxguard fsck $D > /tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; fail "fsck"; }
expect " 0 problem(s)" /tmp/fsck.out
daxguard fs ls -l $D:/d

# A second mount of the node sees the same tree.
daxguard fs get $D:/a /tmp/a.again && cmp /tmp/a /tmp/a.again || fail "/a on the next mount"
daxguard health $D > /tmp/health.json 2>&1 || { cat /tmp/health.json; fail "health"; }
expect '"damaged_files": \[\]' /tmp/health.json
daxguard list -M $D > /tmp/list.json || fail "list"
expect '"badblock_count": 0' /tmp/list.json
echo "devdax_fs: all checks passed"
