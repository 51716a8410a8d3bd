#include "common/light_section.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

namespace daxguard {
namespace {

long Membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

bool RegisterMembarrier() {
  long cmds = Membarrier(MEMBARRIER_CMD_QUERY);
  return cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
         Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

bool Setup() {
  pthread_atfork(nullptr, nullptr, [] { LightSection::AfterFork(); });
  return RegisterMembarrier();
}

// Gives the thread's slot back at its exit.
struct GiveBack {
  std::atomic<bool>* taken = nullptr;
  ~GiveBack() {
    if (taken) taken->store(false, std::memory_order_release);
  }
};
thread_local GiveBack t_give_back;

}  // namespace

thread_local constinit LightSection::Slot* LightSection::mine_ = nullptr;
std::atomic<LightSection::Slot*> LightSection::slots_{nullptr};
bool LightSection::asymmetric_ = Setup();

LightSection::Slot* LightSection::Claim() {
  Slot* s = nullptr;
  for (Slot* p = slots_.load(std::memory_order_acquire); p && !s; p = p->next) {
    bool taken = false;
    if (p->taken.compare_exchange_strong(taken, true, std::memory_order_acquire)) s = p;
  }
  if (!s) {
    s = new Slot;
    s->next = slots_.load(std::memory_order_relaxed);
    while (!slots_.compare_exchange_weak(s->next, s, std::memory_order_release, std::memory_order_relaxed)) {
    }
  }
  t_give_back.taken = &s->taken;
  mine_ = s;
  return s;
}

void LightSection::AfterFork() {
  // Only the forking thread lives on: the others' slots are free, even one
  // left inside a section.
  for (Slot* s = slots_.load(std::memory_order_acquire); s; s = s->next) {
    if (s == mine_) continue;
    s->domain.store(nullptr, std::memory_order_relaxed);
    s->taken.store(false, std::memory_order_relaxed);
  }
}

void LightSection::WaitOut(const void* domain) {
  // Every running thread passes a full barrier: a section entered before
  // the caller's stale-making store is visible in its slot below, and one
  // entered after sees that store (and gives up).
  if (asymmetric_ && Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) {
    (void)Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);  // a forked child registers anew
    (void)Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (Slot* s = slots_.load(std::memory_order_acquire); s; s = s->next)
    while (s->domain.load(std::memory_order_acquire) == domain) std::this_thread::yield();
}

}  // namespace daxguard
