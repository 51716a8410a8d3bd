// Passing a signal our handler does not claim on to the handler it replaced,
// as if ours were not installed.
#pragma once

#include <signal.h>

namespace daxguard {

// Calls `previous` (the disposition our handler replaced) for `sig`. For the
// default action the default is restored: a fault recurs on return and kills
// as it would have; a signal that was sent (si_code <= 0) is sent again.
// Async-signal-safe.
void ChainToPrevious(const struct sigaction& previous, int sig, siginfo_t* si, void* uc);

}  // namespace daxguard
