// Mapped access: loads and stores through a region reach the device, and
// poison (known or latent, found here or in another process) traps its
// unit with the SIGBUS a machine check would give.
#include "dax/mapping.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "common/fault_probe.h"
#include "common/recording_holder.h"
#include "common/test_util.h"
#include "common/units.h"
#include "dax/pmem_dax.h"
#include "dax_test_util.h"

namespace daxguard::dax {
namespace {

using daxguard::testing::BusCatcher;
using daxguard::testing::BusFault;
using daxguard::testing::Child;
using daxguard::testing::Eventually;
using daxguard::testing::Probe;
using daxguard::testing::TempDir;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t P = kPageSize;


media::InjectOptions Latent() {
  media::InjectOptions o;
  o.notify = false;
  return o;
}

class MappingTest : public ::testing::Test {
 protected:
  // A device file and one PmemDax over it.
  std::unique_ptr<PmemDax> MakeDevice(const std::string& name, const media::CreateOptions& opt) {
    path_ = dir_.File(name);
    return testing::NewPmemDax(path_, opt);
  }
  std::unique_ptr<PmemDax> MakeFsdax(uint64_t size = 4 * kMiB) {
    media::CreateOptions opt;
    opt.size = size;
    return MakeDevice("d0", opt);
  }
  // The whole device mapped at region offset 0, faults labelled by device offset.
  std::unique_ptr<MappedRegion> MapAll(Device& dev, bool writable = true) {
    auto r = MappedRegion::Reserve(dev.size(), writable, path_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    Status s = dev.MapInto(**r, 0, 0, dev.size(), 0);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return std::move(r).value();
  }
  static bool Trapped(const MappedRegion& r, uint64_t off) {
    FaultReport rep;
    return DescribeFault(r.addr() + off, &rep);
  }

  TempDir dir_;
  std::string path_;
  BusCatcher catcher_;
};

TEST_F(MappingTest, StoresAndLoadsMeetTheDataPath) {
  auto dev = MakeFsdax();
  auto region = MapAll(*dev);
  ASSERT_TRUE(region);
  std::memcpy(region->addr() + 2 * P + 100, "through the mapping", 19);
  char buf[19];
  ASSERT_EQ(dev->ReadMcSafe(2 * P + 100, buf, sizeof buf).value_or(SIZE_MAX), sizeof buf);
  EXPECT_EQ(std::memcmp(buf, "through the mapping", 19), 0);
  ASSERT_TRUE(dev->Write(3 * kMiB + 5, "written by the device", 21).ok());
  EXPECT_EQ(std::memcmp(region->addr() + 3 * kMiB + 5, "written by the device", 21), 0);
  EXPECT_FALSE(Trapped(*region, 2 * P));
}

TEST_F(MappingTest, ChildTouchingPoisonGetsMachineCheckSigbus) {
  auto dev = MakeFsdax();
  ASSERT_TRUE(dev->media().Inject((5 * P + 1024) / kSectorSize, 1, {}).ok());
  auto region = MapAll(*dev);
  ASSERT_TRUE(region);
  static volatile uint8_t* expect;
  expect = region->addr() + 5 * P + 77;  // another line of the same page
  Child handled([] {
    struct sigaction sa {};
    sa.sa_flags = SA_SIGINFO;
    sa.sa_sigaction = [](int, siginfo_t* si, void*) {
      _exit(si->si_code == BUS_MCEERR_AR && si->si_addr == expect && si->si_addr_lsb == 12 ? 0 : 1);
    };
    sigaction(SIGBUS, &sa, nullptr);
    (void)*expect;
    return 2;  // the load went through
  });
  EXPECT_EQ(handled.Wait(), 0);
  Child unhandled([] {
    signal(SIGBUS, SIG_DFL);  // a program with no handler (sanitizers install one)
    (void)*expect;
    return 2;
  });
  EXPECT_EQ(unhandled.WaitKilledBy(), SIGBUS);
}

TEST_F(MappingTest, BlockedSigbusStillKillsAsAMachineCheckWould) {
  auto dev = MakeFsdax();
  ASSERT_TRUE(dev->media().Inject(0, 1, {}).ok());
  auto region = MapAll(*dev);
  ASSERT_TRUE(region);
  static volatile uint8_t* poisoned;
  poisoned = region->addr();
  Child blocked([] {
    sigset_t bus;
    sigemptyset(&bus);
    sigaddset(&bus, SIGBUS);
    sigprocmask(SIG_BLOCK, &bus, nullptr);
    (void)*poisoned;
    return 2;
  });
  EXPECT_EQ(blocked.WaitKilledBy(), SIGBUS);
}

// Faults that are not traps go to whoever handled SIGSEGV before (here the
// default action, or a sanitizer's report).
TEST_F(MappingTest, OtherFaultsGoToThePreviousHandler) {
  auto dev = MakeFsdax();
  auto region = MapAll(*dev);
  ASSERT_TRUE(region);
  ASSERT_TRUE(region->PlaceZeroes(0, P, 0).ok());
  static volatile uint8_t* zero_page;
  zero_page = region->addr();
  void* elsewhere = mmap(nullptr, P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(elsewhere, MAP_FAILED);
  static volatile uint8_t* unmapped;
  unmapped = static_cast<uint8_t*>(elsewhere);
  for (volatile uint8_t* target : {zero_page, unmapped}) {
    static volatile uint8_t* where;
    where = target;
    Child child([] {
      signal(SIGBUS, [](int) { _exit(3); });
      dup2(open("/dev/null", O_WRONLY), 2);  // the sanitizer's report is expected
      *where = 1;  // a store to a read-only page / to no region at all
      return 2;
    });
#if defined(__SANITIZE_ADDRESS__)
    EXPECT_EQ(child.Wait(), 1);  // AddressSanitizer's SEGV report
#else
    EXPECT_EQ(child.WaitKilledBy(), SIGSEGV);
#endif
  }
  munmap(elsewhere, P);
}

TEST_F(MappingTest, DescribeFaultNamesDeviceOffsetAndUnit) {
  auto dev = MakeFsdax();
  ASSERT_TRUE(dev->media().Inject((9 * P + 512) / kSectorSize, 1, {}).ok());
  auto r = MappedRegion::Reserve(16 * P, false, "pmem0");
  ASSERT_TRUE(r.ok());
  MappedRegion& region = **r;
  // Device pages 4..19 at region offset 0, labelled as if from 1 MiB on.
  ASSERT_TRUE(dev->MapInto(region, 0, 4 * P, 16 * P, kMiB).ok());
  FaultReport rep;
  ASSERT_TRUE(DescribeFault(region.addr() + 5 * P + 300, &rep));
  EXPECT_STREQ(rep.name, "pmem0");
  EXPECT_EQ(rep.ino, 0u);
  EXPECT_EQ(rep.offset, kMiB + 5 * P + 300);
  EXPECT_EQ(rep.unit_offset, kMiB + 5 * P);
  EXPECT_EQ(rep.unit_length, P);
  EXPECT_EQ(rep.kind, TrapKind::kPoison);
  EXPECT_FALSE(DescribeFault(region.addr() + 4 * P, &rep));
  BusFault f = Probe(region.addr() + 5 * P + 300);
  EXPECT_TRUE(f.hit);
  EXPECT_EQ(f.addr, region.addr() + 5 * P + 300);
  EXPECT_FALSE(Probe(region.addr() + 6 * P).hit);
  uint8_t* gone = region.addr() + 5 * P;
  r->reset();
  EXPECT_FALSE(DescribeFault(gone, &rep));
}

TEST_F(MappingTest, LatentPoisonLoadFaultsAndBecomesKnown) {
  auto dev = MakeFsdax();
  ASSERT_TRUE(dev->media().Inject(3 * P / kSectorSize + 2, 1, Latent()).ok());
  auto region = MapAll(*dev);
  ASSERT_TRUE(region);
  EXPECT_TRUE(dev->BadBlocks().empty());
  BusFault f = Probe(region->addr() + 3 * P + 8);
  EXPECT_TRUE(f.hit);
  EXPECT_EQ(f.code, BUS_MCEERR_AR);
  EXPECT_TRUE(Eventually([&] { return !dev->BadBlocks().empty(); }));
  EXPECT_EQ(dev->BadBlocks(), (std::vector<media::BadBlock>{{3 * P / kSectorSize + 2, 1, false}}));
}

TEST_F(MappingTest, PoisonFromAnotherProcessRevokesThePage) {
  auto dev = MakeFsdax();
  auto region = MapAll(*dev);
  ASSERT_TRUE(region);
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> told;
  region->OnPoison([&](uint64_t at, uint64_t len) {
    std::lock_guard<std::mutex> g(mu);
    told.emplace_back(at, len);
  });
  EXPECT_FALSE(Probe(region->addr() + 7 * P).hit);
  std::string path = path_;
  Child injector([path] {
    auto m = media::PmemDevice::Open(path);
    return m.ok() && (*m)->Inject(7 * P / kSectorSize, 1, Latent()).ok() ? 0 : 1;
  });
  ASSERT_EQ(injector.Wait(), 0);
  EXPECT_TRUE(Eventually([&] { return Trapped(*region, 7 * P); }));
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard<std::mutex> g(mu);
    return !told.empty();
  }));
  {
    std::lock_guard<std::mutex> g(mu);
    EXPECT_EQ(told, (std::vector<std::pair<uint64_t, uint64_t>>{{7 * P, P}}));
  }
  BusFault f = Probe(region->addr() + 7 * P + 64);
  EXPECT_TRUE(f.hit);
  EXPECT_EQ(f.code, BUS_MCEERR_AR);
}

TEST_F(MappingTest, ClearingPoisonGivesThePageBackZeroed) {
  auto dev = MakeFsdax();
  auto region = MapAll(*dev);
  ASSERT_TRUE(region);
  std::memset(region->addr() + 2 * P, 0xab, P);
  ASSERT_TRUE(dev->media().Inject(2 * P / kSectorSize, 1, {}).ok());
  ASSERT_TRUE(Eventually([&] { return Trapped(*region, 2 * P); }));
  EXPECT_TRUE(Probe(region->addr() + 2 * P + 4000).hit);
  ASSERT_TRUE(dev->ZeroPageRange(2, 1).ok());
  ASSERT_TRUE(Eventually([&] { return !Trapped(*region, 2 * P); }));
  uint8_t v = 0xff;
  EXPECT_FALSE(Probe(region->addr() + 2 * P + 4000, false, 0, &v).hit);
  EXPECT_EQ(v, 0);
  EXPECT_FALSE(Probe(region->addr() + 2 * P, true, 7).hit);  // writable again
}

TEST_F(MappingTest, GoneTrapsGiveAddressErrors) {
  auto dev = MakeFsdax();
  auto r = MappedRegion::Reserve(8 * P, true, "file", 42);
  ASSERT_TRUE(r.ok());
  MappedRegion& region = **r;
  BusFault f = Probe(region.addr() + 6 * P);  // nothing placed yet
  EXPECT_TRUE(f.hit);
  EXPECT_EQ(f.code, BUS_ADRERR);
  ASSERT_TRUE(dev->MapInto(region, 0, 0, 4 * P, 0).ok());
  ASSERT_TRUE(region.PlaceZeroes(4 * P, 4 * P, 4 * P).ok());
  uint8_t v = 1;
  EXPECT_FALSE(Probe(region.addr() + 6 * P, false, 0, &v).hit);
  EXPECT_EQ(v, 0);
  ASSERT_TRUE(region.Trap(P, P, TrapKind::kGone).ok());
  f = Probe(region.addr() + P + 10, true, 1);
  EXPECT_TRUE(f.hit);
  EXPECT_EQ(f.code, BUS_ADRERR);
  EXPECT_EQ(f.lsb, 12);
  FaultReport rep;
  ASSERT_TRUE(DescribeFault(region.addr() + P + 10, &rep));
  EXPECT_EQ(rep.kind, TrapKind::kGone);
  EXPECT_EQ(rep.ino, 42u);
  ASSERT_TRUE(region.Untrap(0, 8 * P).ok());
  EXPECT_FALSE(Probe(region.addr() + P + 10, true, 1).hit);
}

TEST_F(MappingTest, DevdaxPoisonTakesOutTheWholeFaultUnit) {
  media::CreateOptions opt;
  opt.size = 8 * kMiB;
  opt.mode = media::Mode::kDevdax;
  opt.align = 2 * kMiB;
  auto dev = MakeDevice("dax0", opt);
  ASSERT_TRUE(dev->media().Inject((2 * kMiB + 8192) / kSectorSize, 1, {}).ok());
  auto region = MapAll(*dev);
  ASSERT_TRUE(region);
  uint8_t* neighbour = region->addr() + 2 * kMiB + 100 * P + 3;
  BusFault f = Probe(neighbour);
  EXPECT_TRUE(f.hit);
  EXPECT_EQ(f.code, BUS_MCEERR_AR);
  EXPECT_EQ(f.addr, neighbour);
  EXPECT_EQ(f.lsb, 21);
  FaultReport rep;
  ASSERT_TRUE(DescribeFault(neighbour, &rep));
  EXPECT_EQ(rep.unit_offset, 2 * kMiB);
  EXPECT_EQ(rep.unit_length, 2 * kMiB);
  EXPECT_FALSE(Probe(region->addr() + 4 * kMiB).hit);      // the next unit
  EXPECT_FALSE(Probe(region->addr() + 2 * kMiB - P).hit);  // the one before
}

TEST_F(MappingTest, MisalignedDevdaxMappingIsRefused) {
  media::CreateOptions opt;
  opt.size = 8 * kMiB;
  opt.mode = media::Mode::kDevdax;
  opt.align = 2 * kMiB;
  auto dev = MakeDevice("dax0", opt);
  EXPECT_TRUE(dev->caps().devdax);
  EXPECT_EQ(dev->caps().fault_unit, 2 * kMiB);
  auto r = MappedRegion::Reserve(4 * kMiB, true, "dax0");
  ASSERT_TRUE(r.ok());
  Status s = dev->MapInto(**r, 0, P, 2 * kMiB, 0);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_NE(s.message().find("2 MiB"), std::string::npos) << s.message();
  EXPECT_EQ(dev->MapInto(**r, 0, 0, kMiB, 0).err(), EINVAL);
  EXPECT_EQ(Probe((*r)->addr()).code, BUS_ADRERR);  // nothing was placed
  EXPECT_EQ(dev->MapInto(**r, 0, 6 * kMiB, 4 * kMiB, 0).err(), ERANGE);
}

TEST_F(MappingTest, RegionOutlivesTheDeviceThatPlacedIt) {
  auto dev = MakeFsdax();
  auto region = MapAll(*dev);
  ASSERT_TRUE(region);
  dev.reset();
  auto m = media::PmemDevice::Open(path_);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE((*m)->Inject(P / kSectorSize, 1, {}).ok());
  EXPECT_TRUE(Eventually([&] { return Trapped(*region, P); }));
  EXPECT_FALSE(Probe(region->addr()).hit);
}

// Mappings get the media from the device that places them (its MediaWatch),
// never by opening its path again: a renamed device file maps, and poison
// still reaches the region.
TEST_F(MappingTest, MappingUsesTheDevicesMediaNotItsPath) {
  auto dev = MakeFsdax();
  ASSERT_EQ(rename(path_.c_str(), (path_ + ".moved").c_str()), 0);
  auto region = MapAll(*dev);
  ASSERT_TRUE(region);
  ASSERT_TRUE(dev->media().Inject(3 * P / kSectorSize, 1, Latent()).ok());
  EXPECT_TRUE(Eventually([&] { return Trapped(*region, 3 * P); }));
  EXPECT_FALSE(Trapped(*region, 2 * P));
}

// The threads of this process with that name.
size_t Threads(const std::string& name) {
  size_t n = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string line;
    n += std::getline(comm, line) && line == name;
  }
  return n;
}

// One thread per device file watches for changes, whoever listens: the
// holder's delivery and every mapping of the device share it.
TEST_F(MappingTest, HolderAndMappingsShareOneWatchThread) {
  auto dev = MakeFsdax();
  EXPECT_EQ(Threads("dax-watch"), 0u);
  daxguard::testing::RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*dev).ok());
  EXPECT_EQ(Threads("dax-deliver"), 1u);
  EXPECT_EQ(Threads("dax-watch"), 1u);
  auto a = MapAll(*dev);
  auto b = MapAll(*dev);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(Threads("dax-watch"), 1u);
  ASSERT_TRUE(dev->media().Inject(5 * P / kSectorSize, 1, {}).ok());
  EXPECT_TRUE(Eventually([&] { return Trapped(*a, 5 * P) && Trapped(*b, 5 * P); }));
  EXPECT_TRUE(h.WaitFor([](const auto& calls) { return !calls.empty(); }));
  dev->ReleaseHolder(&h);
}

TEST_F(MappingTest, BadPlacementsChangeNothing) {
  auto dev = MakeFsdax();
  auto r = MappedRegion::Reserve(4 * P, true, "r");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(dev->MapInto(**r, 2 * P, 0, 4 * P, 0).err(), EINVAL);  // past the region end
  EXPECT_EQ(dev->MapInto(**r, 100, 0, P, 0).err(), EINVAL);        // not page-aligned
  EXPECT_EQ((*r)->Trap(0, 0, TrapKind::kGone).err(), EINVAL);
  EXPECT_EQ(MappedRegion::Reserve(100, true, "r").status().err(), EINVAL);
  EXPECT_EQ(Probe((*r)->addr() + 2 * P).code, BUS_ADRERR);
}

}  // namespace
}  // namespace daxguard::dax
