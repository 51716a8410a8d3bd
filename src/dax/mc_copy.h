// Machine-check-safe copies from real device memory in userspace. On real
// persistent memory a load of poison the kernel did not know of raises a
// machine check; Linux sends the thread SIGBUS BUS_MCEERR_AR with the
// address and the size of the unit it took out (si_addr_lsb: a page, as
// after madvise(MADV_HWPOISON)). McCopy catches that signal for the span it
// is copying, keeps what lies before that unit, and says how far that is,
// as the kernel's copy_mc_to_kernel does.
// A SIGBUS anywhere else goes to the handler that was there before.
#pragma once

#include <cstddef>
#include <cstdint>

namespace daxguard::dax {

struct McCopyResult {
  size_t copied = 0;      // bytes of dst that hold src's bytes
  bool poisoned = false;  // stopped by a machine check at src + fault
  size_t fault = 0;       // offset of the failing byte from src
};

McCopyResult McCopy(void* dst, const void* src, size_t len);

}  // namespace daxguard::dax
