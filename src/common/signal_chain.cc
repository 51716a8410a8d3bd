#include "common/signal_chain.h"

namespace daxguard {

void ChainToPrevious(const struct sigaction& previous, int sig, siginfo_t* si, void* uc) {
  if (previous.sa_flags & SA_SIGINFO) return previous.sa_sigaction(sig, si, uc);
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) return previous.sa_handler(sig);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigaction(sig, &dfl, nullptr);
  if (si->si_code <= 0) raise(sig);
}

}  // namespace daxguard
