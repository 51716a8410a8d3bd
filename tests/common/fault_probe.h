// Touches memory that may trap, the way a program with a SIGBUS handler
// would: the handler records the siginfo and jumps back, so one test can
// probe many addresses and check exactly what the kernel would have said.
#pragma once

#include <setjmp.h>
#include <signal.h>

#include <cstdint>

namespace daxguard::testing {

struct BusFault {
  bool hit = false;
  int code = 0;
  void* addr = nullptr;
  int lsb = 0;
};

// Per thread, so that threads may probe at once.
inline thread_local sigjmp_buf t_probe_jmp;
inline thread_local BusFault t_probe_fault;

inline void RecordBusAndJump(int, siginfo_t* si, void*) {
  t_probe_fault = {true, si->si_code, si->si_addr, si->si_addr_lsb};
  siglongjmp(t_probe_jmp, 1);
}

// Installs the recording SIGBUS handler for its lifetime.
class BusCatcher {
 public:
  BusCatcher() {
    struct sigaction sa {};
    sa.sa_sigaction = RecordBusAndJump;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &old_);
  }
  ~BusCatcher() { sigaction(SIGBUS, &old_, nullptr); }
  BusCatcher(const BusCatcher&) = delete;
  BusCatcher& operator=(const BusCatcher&) = delete;

 private:
  struct sigaction old_ {};
};

// One load (or store of `value`) at `p`; what SIGBUS said, if it came.
// The loaded byte goes to *out.
inline BusFault Probe(volatile uint8_t* p, bool write = false, uint8_t value = 0, uint8_t* out = nullptr) {
  t_probe_fault = {};
  if (sigsetjmp(t_probe_jmp, 1) == 0) {
    if (write) {
      *p = value;
    } else {
      uint8_t v = *p;
      if (out) *out = v;
    }
  }
  return t_probe_fault;
}

}  // namespace daxguard::testing
