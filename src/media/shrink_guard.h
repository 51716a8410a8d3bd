// A device file that shrinks under a process that has it mapped: an access
// past its new end raises SIGBUS, which would kill the process. The guard
// turns it into an I/O error: its SIGBUS handler (installed once, chained to
// whatever handler was there before) finds the fault inside a registered
// device mapping whose file is now shorter, maps zero pages over the part
// the file lost, sets that device's `shrunk` flag and returns, so the access
// completes. The device's read and write paths check the flag after each
// copy and fail. Any other SIGBUS goes to the previous handler.
#pragma once

#include <atomic>
#include <cstdint>

namespace daxguard::media {

// Guards [base, base+len), a shared mapping of the file `fd` from offset 0.
// At most kMaxGuarded mappings at once; beyond that a mapping goes unguarded.
inline constexpr int kMaxGuarded = 256;
void GuardMapping(void* base, uint64_t len, int fd, std::atomic<bool>* shrunk);
// Before the mapping goes away.
void UnguardMapping(void* base);

}  // namespace daxguard::media
