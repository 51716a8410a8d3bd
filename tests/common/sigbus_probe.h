// Touches one byte of mapped memory and reports whether it raised SIGBUS,
// with the siginfo a poison trap carries. In-process: the handler jumps
// back out of the faulting access.
#pragma once

#include <setjmp.h>
#include <signal.h>

#include <cstdint>

#include "dax/mapping.h"

namespace daxguard::testing {

struct Probe {
  bool faulted = false;
  int code = 0;        // si_code: BUS_MCEERR_AR, BUS_ADRERR
  int lsb = 0;         // si_addr_lsb: log2 of the unit taken out
  const void* addr = nullptr;
  bool described = false;
  dax::FaultReport report;
};

namespace probe_detail {
inline sigjmp_buf jump;
inline Probe seen;
inline void OnSigbus(int, siginfo_t* si, void*) {
  seen.faulted = true;
  seen.code = si->si_code;
  seen.lsb = si->si_addr_lsb;
  seen.addr = si->si_addr;
  seen.described = dax::DescribeFault(si->si_addr, &seen.report);
  siglongjmp(jump, 1);
}
}  // namespace probe_detail

// Loads (or with `store`, stores `value` to) *p; the probe says what happened.
inline Probe Touch(uint8_t* p, bool store = false, uint8_t value = 0) {
  using namespace probe_detail;
  struct sigaction sa = {}, old = {};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGBUS, &sa, &old);
  seen = Probe{};
  if (sigsetjmp(jump, 1) == 0) {
    if (store)
      *static_cast<volatile uint8_t*>(p) = value;
    else
      (void)*static_cast<volatile uint8_t*>(p);
  }
  sigaction(SIGBUS, &old, nullptr);
  return seen;
}

}  // namespace daxguard::testing
