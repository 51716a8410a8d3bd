// Light sections: lock-free critical sections that a rare writer can wait
// out, in the manner of RCU with asymmetric fences.
//
// A fast path (a filesystem's read or write of a cached extent) enters a
// section of a domain, checks that what it cached is still current, does
// its work and exits, with no atomic read-modify-write: entering is a plain
// store, ordered against the check that follows it by the membarrier()
// that WaitOut issues on the other side. The slow side first makes the
// cached facts stale (so new sections give up), then calls WaitOut, which
// returns once every section of the domain begun before it has ended.
// Without membarrier (old kernels, seccomp) entering pays a full fence.
#pragma once

#include <atomic>

namespace daxguard {

class LightSection {
 public:
  // Enters a section of `domain` on this thread; sections do not nest.
  static void Enter(const void* domain) {
    Slot* s = mine_;
    if (!s) [[unlikely]] s = Claim();
    s->domain.store(domain, std::memory_order_relaxed);
    if (asymmetric_) [[likely]]
      std::atomic_signal_fence(std::memory_order_seq_cst);
    else
      std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  // Ends this thread's section: everything it did happens before the
  // return of a WaitOut that sees it ended.
  static void Exit() { mine_->domain.store(nullptr, std::memory_order_release); }
  // Waits until every section of `domain` entered before this call has
  // exited. The caller has made the facts sections check stale first.
  static void WaitOut(const void* domain);
  // In a child after fork (registered with pthread_atfork).
  static void AfterFork();

 private:
  struct alignas(64) Slot {
    std::atomic<const void*> domain{nullptr};
    std::atomic<bool> taken{true};
    Slot* next = nullptr;
  };
  static Slot* Claim();

  static thread_local constinit Slot* mine_;
  // Every slot ever made, never freed, so a scan may walk the list while
  // threads come and go; a thread's slot is free again once it exits.
  static std::atomic<Slot*> slots_;
  static bool asymmetric_;  // membarrier is available: Enter needs no fence
};

}  // namespace daxguard
