# In the oracle's guest (../shared/oracle/run.sh): daxguard names real
# persistent memory by its path. A device-dax node is listed from sysfs (its
# size, fault unit, place in the region, known errors); a block device, a
# file on a DAX filesystem (not used yet) and a character device that is
# not device-dax each get one line saying what they are.
. /tests/lib.sh
load_modules
modprobe device_dax 2>/dev/null || true
fail() { echo "FAIL: $*"; exit 1; }
expect() {  # expect TEXT FILE: TEXT is in FILE
  grep -q -- "$1" "$2" || { cat "$2"; fail "expected '$1'"; }
}
R "ndctl disable-region region0 && ndctl init-labels -f nmem0 && ndctl enable-region region0"
R "ndctl create-namespace -r region0 -m devdax -a 2M"

daxguard list -M /dev/dax0.0 > /tmp/list.json 2>&1 || { cat /tmp/list.json; fail "list /dev/dax0.0"; }
cat /tmp/list.json
expect '"chardev": "dax0.0"' /tmp/list.json
expect "\"size\": $(cat /sys/bus/dax/devices/dax0.0/size)" /tmp/list.json
expect '"align": 2097152' /tmp/list.json
expect '"region": "region0"' /tmp/list.json
expect '"region_offset": 16777216' /tmp/list.json
expect '"badblock_count": 0' /tmp/list.json


daxguard list /dev/null > /tmp/null.out 2>&1 && fail "list /dev/null succeeded"
expect "not a device-dax node" /tmp/null.out

R "ndctl destroy-namespace -f namespace0.0 && ndctl create-namespace -r region0 -m fsdax"
daxguard list /dev/pmem0 > /tmp/blk.out 2>&1 && fail "list /dev/pmem0 succeeded"
cat /tmp/blk.out
expect "is a block device" /tmp/blk.out

R "mkfs.xfs -f -m reflink=0 /dev/pmem0 >/dev/null && mkdir -p /mnt/x && mount -o dax /dev/pmem0 /mnt/x"
R "xfs_io -f -c 'falloc 0 4m' /mnt/x/f"
daxguard mkfs /mnt/x/f > /tmp/fsdax.out 2>&1 && fail "mkfs on an fsdax file succeeded"
cat /tmp/fsdax.out
expect "is a file on a DAX filesystem: daxguard cannot use one yet" /tmp/fsdax.out
# An emulated device file is one by its header, wherever it lives.
daxguard create-device /mnt/x/e.dev --size 64m || fail "create-device on the DAX filesystem"
daxguard list /mnt/x/e.dev > /tmp/emul.out 2>&1 || { cat /tmp/emul.out; fail "list of an emulated device on DAX"; }
expect '"mode": "fsdax"' /tmp/emul.out
echo "devdax_list: all checks passed"
