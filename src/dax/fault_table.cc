#include "dax/fault_table.h"

#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "common/signal_chain.h"

namespace daxguard::dax::internal {
namespace {

struct FaultTable {
  std::vector<FaultSpan> spans;  // sorted by address, disjoint
};

std::atomic<FaultTable*> g_table{nullptr};
std::atomic<uint32_t> g_readers{0};  // handlers (or DescribeFault) inside a table
std::vector<std::shared_ptr<void>> g_retired;  // guarded by the registry lock
struct sigaction g_previous;
std::once_flag g_install_once;

// Marks a handler inside the published table, so it is not freed under it.
class ReadGuard {
 public:
  ReadGuard() { g_readers.fetch_add(1); }
  ~ReadGuard() { g_readers.fetch_sub(1); }
  const FaultSpan* Find(uintptr_t addr) const {
    const FaultTable* t = g_table.load();
    if (!t) return nullptr;
    auto it = std::upper_bound(t->spans.begin(), t->spans.end(), addr,
                               [](uintptr_t a, const FaultSpan& s) { return a < s.lo; });
    if (it == t->spans.begin() || addr >= (--it)->hi) return nullptr;
    return &*it;
  }
};

void Describe(const FaultSpan& f, uintptr_t addr, FaultReport* out) {
  uint64_t x = addr - f.region;
  out->name = f.name;
  out->ino = f.ino;
  out->offset = f.span.Label(x);
  out->unit_offset = f.span.Label(f.span.UnitStart(x));
  out->unit_length = f.span.unit;
  out->kind = IsGone(f.span.kind) ? TrapKind::kGone : TrapKind::kPoison;
}

// Whether the access that faulted was a store (x86-64 page-fault error code).
bool IsWrite(const void* uc) {
#if defined(__x86_64__)
  return static_cast<const ucontext_t*>(uc)->uc_mcontext.gregs[REG_ERR] & 2;
#else
  (void)uc;
  return true;  // unknown: a fault we cannot explain goes to the previous handler
#endif
}

// As the kernel forces a machine-check SIGBUS: one blocked (in the context
// that faulted) or ignored would leave the access faulting forever, so it
// gets its default action. `uc` is what the return from the handler restores.
void MakeBusDeliverable(void* uc) {
  sigset_t* mask = &static_cast<ucontext_t*>(uc)->uc_sigmask;
  struct sigaction cur {};
  sigaction(SIGBUS, nullptr, &cur);
  bool ignored = !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_IGN;
  if (!sigismember(mask, SIGBUS) && !ignored) return;
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGBUS, &dfl, nullptr);
  sigdelset(mask, SIGBUS);
}

// Queued while SIGBUS is blocked (our handler's mask), so it is delivered
// as the handler returns, on the context that faulted.
void RaiseBus(void* addr, const FaultReport& r, void* uc) {
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  info.si_signo = SIGBUS;
  info.si_code = r.kind == TrapKind::kPoison ? BUS_MCEERR_AR : BUS_ADRERR;
  info.si_addr = addr;
  info.si_addr_lsb = static_cast<short>(__builtin_ctzll(r.unit_length));
  MakeBusDeliverable(uc);
  syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGBUS, &info);
}

enum class Verdict { kTrap, kRetry, kNotOurs };

uint64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// Posts the consumption of the poisoned unit of span `f` that holds `addr`.
void Consume(const FaultSpan& f, uintptr_t addr) {
  uint64_t unit = f.span.UnitStart(addr - f.region);
  (void)PostConsumption(f.span.file, f.span.Media(unit), f.span.unit);
}

// The owner is rebuilding the unit at `addr` (AwaitRepairs): retry once it
// is back; trap once the owner holds it as lost, or when time runs out.
// The consumption is posted again every 10 ms: a post the watch missed
// would otherwise leave nobody rebuilding. Async-signal-safe: the table is
// re-read each turn, never held between.
Verdict AwaitRepair(uintptr_t addr, FaultReport* r) {
  uint64_t start = MonotonicMs(), deadline = start + MappedRegion::kRepairWaitMs, posted = start;
  const timespec turn{0, 50 * 1000};
  while (MonotonicMs() < deadline) {
    nanosleep(&turn, nullptr);
    ReadGuard g;
    const FaultSpan* f = g.Find(addr);
    if (!f) return Verdict::kTrap;  // the region went meanwhile
    if (!IsTrap(f->span.kind)) return Verdict::kRetry;
    if (f->span.kind != SpanKind::kPoison) {
      Describe(*f, addr, r);
      return Verdict::kTrap;
    }
    if (uint64_t now = MonotonicMs(); now - posted >= 10) {
      Consume(*f, addr);
      posted = now;
    }
  }
  return Verdict::kTrap;
}

// A protection fault in an accessible span means the trap was lifted after
// the access faulted (protection changes before the table): it may retry.
Verdict Classify(void* addr, int code, const void* uc, FaultReport* r) {
  uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  bool await = false;
  {
    ReadGuard g;
    const FaultSpan* f = g.Find(a);
    if (!f) return Verdict::kNotOurs;
    if (!IsTrap(f->span.kind)) {
      bool allowed = f->span.kind == SpanKind::kMedia ? (f->writable || !IsWrite(uc)) : !IsWrite(uc);
      return allowed && code == SEGV_ACCERR ? Verdict::kRetry : Verdict::kNotOurs;
    }
    Describe(*f, a, r);
    if (f->span.kind == SpanKind::kPoison) {
      Consume(*f, a);
      await = f->awaits_repair && !IsWrite(uc);
    }
  }
  return await ? AwaitRepair(a, r) : Verdict::kTrap;
}

void OnSegv(int sig, siginfo_t* si, void* uc) {
  int saved_errno = errno;
  FaultReport r;
  Verdict v = si->si_code > 0 ? Classify(si->si_addr, si->si_code, uc, &r) : Verdict::kNotOurs;
  if (v == Verdict::kTrap) RaiseBus(si->si_addr, r, uc);
  if (v == Verdict::kNotOurs) ChainToPrevious(g_previous, sig, si, uc);
  errno = saved_errno;
}

void Install() {
  struct sigaction sa {};
  sa.sa_sigaction = OnSegv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGBUS);
  sigaction(SIGSEGV, &sa, &g_previous);
}

void FreeRetiredIfQuiet() {
  if (g_readers.load() == 0) g_retired.clear();
}

}  // namespace

void PublishFaultSpans(std::vector<FaultSpan> spans) {
  std::call_once(g_install_once, Install);
  auto* t = new FaultTable{std::move(spans)};
  if (FaultTable* old = g_table.exchange(t))
    g_retired.emplace_back(old, [](void* p) { delete static_cast<FaultTable*>(p); });
  FreeRetiredIfQuiet();
}

void RetireAfterPublish(std::shared_ptr<void> obj) {
  g_retired.push_back(std::move(obj));
  FreeRetiredIfQuiet();
}

}  // namespace daxguard::dax::internal

namespace daxguard::dax {

bool DescribeFault(const void* addr, FaultReport* out) {
  internal::ReadGuard g;
  const internal::FaultSpan* f = g.Find(reinterpret_cast<uintptr_t>(addr));
  if (!f || !internal::IsTrap(f->span.kind)) return false;
  internal::Describe(*f, reinterpret_cast<uintptr_t>(addr), out);
  return true;
}

}  // namespace daxguard::dax
