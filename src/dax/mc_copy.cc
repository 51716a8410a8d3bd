#include "dax/mc_copy.h"

#include <setjmp.h>
#include <signal.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "common/signal_chain.h"
#include "common/units.h"

namespace daxguard::dax {
namespace {

// The copy this thread has under way, if any.
struct Guard {
  sigjmp_buf jump;
  volatile uintptr_t lo = 0, hi = 0;  // src span being read; lo == hi: none
  volatile uintptr_t fault = 0;       // the failing address
  volatile int lsb = 0;               // log2 of the unit the kernel took out there
  volatile size_t done = 0;           // bytes of the copy made, in whole steps
  volatile uintptr_t src = 0;         // the copy's source, kept across the jump
};
thread_local Guard t_guard;
struct sigaction g_previous;
std::once_flag g_install;

void OnBus(int sig, siginfo_t* si, void* uc) {
  uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
  Guard& g = t_guard;
  if (si->si_code == BUS_MCEERR_AR && g.lo < g.hi && a >= g.lo && a < g.hi) {
    g.fault = a;
    g.lsb = si->si_addr_lsb;
    g.lo = 0;
    g.hi = 0;
    sigset_t bus;  // jumping out of the handler leaves SIGBUS blocked otherwise
    sigemptyset(&bus);
    sigaddset(&bus, SIGBUS);
    pthread_sigmask(SIG_UNBLOCK, &bus, nullptr);
    siglongjmp(g.jump, 1);
  }
  ChainToPrevious(g_previous, sig, si, uc);
}

void Install() {
  struct sigaction sa {};
  sa.sa_sigaction = OnBus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &g_previous);
}

// The copy itself, in steps that end on `step` boundaries of the source's
// addresses, noting in g.done how far it got: a function of its own, so
// that nothing of it lives across the jump back.
[[gnu::noinline]] void CopyRun(Guard& g, uint8_t* dst, const uint8_t* src, size_t from, size_t to, size_t step) {
  g.lo = reinterpret_cast<uintptr_t>(src + from);
  g.hi = reinterpret_cast<uintptr_t>(src + to);
  for (size_t at = from; at < to;) {
    size_t n = std::min<size_t>(step - (reinterpret_cast<uintptr_t>(src) + at) % step, to - at);
    std::memcpy(dst + at, src + at, n);
    at += n;
    g.done = at;
  }
  g.lo = 0;
  g.hi = 0;
}

struct Stop {
  bool poisoned = false;
  size_t done = 0;  // whole steps copied
  size_t lost = 0;  // where the unit the kernel took out begins (from src; 0 if before it)
  size_t fault = 0;
};

// [from, to) of src into dst; stops at a machine check in it.
Stop CopyGuarded(uint8_t* dst, const uint8_t* src, size_t from, size_t to, size_t step) {
  Guard& g = t_guard;
  g.done = from;
  g.src = reinterpret_cast<uintptr_t>(src);
  if (sigsetjmp(g.jump, 0) != 0) {
    int lsb = g.lsb;
    uintptr_t unit = uintptr_t{1} << std::max(lsb, 6);  // at least a line: what poison takes
    uintptr_t lost = AlignDown(g.fault, unit), base = g.src;
    return {true, g.done, lost > base ? lost - base : 0, g.fault - base};
  }
  CopyRun(g, dst, src, from, to, step);
  return {};
}

}  // namespace

McCopyResult McCopy(void* dst, const void* src, size_t len) {
  std::call_once(g_install, Install);
  auto* d = static_cast<uint8_t*>(dst);
  auto* s = static_cast<const uint8_t*>(src);
  Stop st = CopyGuarded(d, s, 0, len, kPageSize);
  if (!st.poisoned) return {len, false, 0};
  // The page that failed may have been copied in any order up to the
  // fault: its bytes before the lost unit are copied again, a line at a time.
  size_t good = std::min(st.lost, len);
  if (st.done < good) {
    Stop again = CopyGuarded(d, s, st.done, good, kLineSize);
    if (again.poisoned) return {std::min(again.lost, good), true, again.fault};
  }
  return {good, true, st.fault};
}

}  // namespace daxguard::dax
