# In the oracle's guest: dax::McCopy against the kernel's own SIGBUS
# BUS_MCEERR_AR for a page it failed (madvise(MADV_HWPOISON)).
. /tests/lib.sh
mc_copy_probe || { echo "FAIL: mc_copy_probe"; exit 1; }
R "grep -i hardwarecorrupted /proc/meminfo"
