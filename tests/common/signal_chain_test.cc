// A signal our handler does not claim reaches the handler it replaced, or
// has the default action it would have had without ours.
#include "common/signal_chain.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "common/test_util.h"

namespace daxguard {
namespace {

using testing::Child;

int g_sig = 0;
siginfo_t* g_si = nullptr;
void* g_uc = nullptr;

void InfoHandler(int sig, siginfo_t* si, void* uc) {
  g_sig = sig;
  g_si = si;
  g_uc = uc;
}
void PlainHandler(int sig) { g_sig = sig; }

siginfo_t Info(int sig, int code) {
  siginfo_t si;
  std::memset(&si, 0, sizeof si);
  si.si_signo = sig;
  si.si_code = code;
  return si;
}

TEST(ChainToPrevious, CallsASiginfoHandlerWithWhatItGot) {
  struct sigaction prev {};
  prev.sa_sigaction = InfoHandler;
  prev.sa_flags = SA_SIGINFO;
  siginfo_t si = Info(SIGUSR1, SI_USER);
  int uc = 0;
  g_sig = 0;
  ChainToPrevious(prev, SIGUSR1, &si, &uc);
  EXPECT_EQ(g_sig, SIGUSR1);
  EXPECT_EQ(g_si, &si);
  EXPECT_EQ(g_uc, &uc);
}

TEST(ChainToPrevious, CallsAPlainHandler) {
  struct sigaction prev {};
  prev.sa_handler = PlainHandler;
  siginfo_t si = Info(SIGUSR2, SI_USER);
  g_sig = 0;
  ChainToPrevious(prev, SIGUSR2, &si, nullptr);
  EXPECT_EQ(g_sig, SIGUSR2);
}

// With no handler before ours, a sent signal takes its default action.
TEST(ChainToPrevious, ResendsASentSignalWithTheDefaultAction) {
  Child child([] {
    struct sigaction prev {};
    prev.sa_handler = SIG_DFL;
    siginfo_t si = Info(SIGUSR1, SI_USER);
    ChainToPrevious(prev, SIGUSR1, &si, nullptr);
    return 0;  // not reached: SIGUSR1's default action ends the process
  });
  EXPECT_EQ(child.WaitKilledBy(), SIGUSR1);
}

// A fault is not re-sent: the access recurs on return and meets the default.
TEST(ChainToPrevious, RestoresTheDefaultForAFault) {
  Child child([] {
    struct sigaction ours {};
    ours.sa_handler = PlainHandler;
    sigaction(SIGBUS, &ours, nullptr);
    struct sigaction prev {};
    prev.sa_handler = SIG_DFL;
    siginfo_t si = Info(SIGBUS, BUS_ADRERR);
    ChainToPrevious(prev, SIGBUS, &si, nullptr);
    struct sigaction now {};
    sigaction(SIGBUS, nullptr, &now);
    return now.sa_handler == SIG_DFL && !(now.sa_flags & SA_SIGINFO) ? 0 : 1;
  });
  EXPECT_EQ(child.Wait(), 0);
}

}  // namespace
}  // namespace daxguard
