#include "media/shrink_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <mutex>

#include "common/signal_chain.h"
#include "common/units.h"

namespace daxguard::media {
namespace {

// Read by the handler without a lock: `base` is published last (release)
// and cleared first, so a slot with a base is whole.
struct Slot {
  std::atomic<uintptr_t> base{0};
  uint64_t len = 0;
  int fd = -1;
  std::atomic<bool>* shrunk = nullptr;
};

Slot g_slots[kMaxGuarded];
std::mutex g_slots_mu;  // registration only
struct sigaction g_previous;
std::once_flag g_install_once;

// Whether the fault at `addr` was a guarded mapping's file having shrunk,
// now papered over with zero pages.
bool RecoverShrink(uintptr_t addr) {
  for (Slot& s : g_slots) {
    uintptr_t base = s.base.load(std::memory_order_acquire);
    if (base == 0 || addr < base || addr - base >= s.len) continue;
    struct stat st {};
    if (fstat(s.fd, &st) != 0) return false;
    uint64_t kept = AlignUp(static_cast<uint64_t>(st.st_size), kPageSize);
    if (addr - base < kept) return false;  // the file still holds that page: not ours
    void* p = mmap(reinterpret_cast<void*>(base + kept), s.len - kept, PROT_READ | PROT_WRITE,
                   MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    s.shrunk->store(true, std::memory_order_release);
    return true;
  }
  return false;
}

void OnSigbus(int sig, siginfo_t* si, void* uc) {
  int saved_errno = errno;
  bool recovered = si->si_code > 0 && RecoverShrink(reinterpret_cast<uintptr_t>(si->si_addr));
  errno = saved_errno;
  if (!recovered) ChainToPrevious(g_previous, sig, si, uc);
}

void Install() {
  struct sigaction sa {};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &g_previous);
}

}  // namespace

void GuardMapping(void* base, uint64_t len, int fd, std::atomic<bool>* shrunk) {
  std::call_once(g_install_once, Install);
  std::lock_guard<std::mutex> g(g_slots_mu);
  for (Slot& s : g_slots) {
    if (s.base.load(std::memory_order_relaxed) != 0) continue;
    s.len = len;
    s.fd = fd;
    s.shrunk = shrunk;
    s.base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);
    return;
  }
}

void UnguardMapping(void* base) {
  std::lock_guard<std::mutex> g(g_slots_mu);
  for (Slot& s : g_slots)
    if (s.base.load(std::memory_order_relaxed) == reinterpret_cast<uintptr_t>(base)) s.base.store(0);
}

}  // namespace daxguard::media
