#include "media/pmem_device.h"
#include "common/test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "common/units.h"

namespace daxguard::media {
using daxguard::testing::TempDir;
using daxguard::testing::Child;
using daxguard::testing::Pipe;

// Readable failure messages (found by argument-dependent lookup).
void PrintTo(const BadBlock& b, std::ostream* os) {
  *os << "{sector " << b.sector << " x" << b.count << (b.acknowledged ? " acked}" : "}");
}

bool operator==(const MediaError& a, const MediaError& b) {
  return a.offset == b.offset && a.length == b.length && a.source == b.source;
}
void PrintTo(const MediaError& e, std::ostream* os) {
  *os << "{" << e.offset << "+" << e.length << " " << SourceName(e.source) << "}";
}

namespace {

constexpr uint64_t kMiB = 1ull << 20;


class DeviceTest : public ::testing::Test {
 protected:
  std::unique_ptr<PmemDevice> Make(CreateOptions opt, const std::string& name = "dev") {
    auto dev = PmemDevice::Create(dir_.File(name), opt);
    EXPECT_TRUE(dev.ok()) << dev.status().ToString();
    return dev.ok() ? std::move(dev).value() : nullptr;
  }
  std::unique_ptr<PmemDevice> Make(uint64_t size = 4 * kMiB, uint32_t clear_unit = 256) {
    CreateOptions opt;
    opt.size = size;
    opt.clear_unit = clear_unit;
    return Make(opt);
  }
  // Fills the device with a byte pattern that differs at every offset mod 251.
  static void Fill(PmemDevice& d) {
    std::vector<uint8_t> buf(d.size());
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i % 251 + 1);
    ASSERT_TRUE(d.Write(0, buf.data(), buf.size()).ok());
  }
  static uint8_t Pattern(uint64_t off) { return static_cast<uint8_t>(off % 251 + 1); }
  static bool HasPattern(const uint8_t* p, uint64_t off, size_t len) {
    for (size_t i = 0; i < len; ++i)
      if (p[i] != Pattern(off + i)) return false;
    return true;
  }
  static bool AllZero(const uint8_t* p, size_t len) {
    for (size_t i = 0; i < len; ++i)
      if (p[i]) return false;
    return true;
  }
  static InjectOptions Latent() {
    InjectOptions o;
    o.notify = false;
    return o;
  }
  static InjectOptions Saturated(bool notify = true) {
    InjectOptions o;
    o.notify = notify;
    o.saturate = true;
    return o;
  }

  TempDir dir_;
};

// --- creation

TEST_F(DeviceTest, CreateRejectsBadSizes) {
  for (uint64_t size : std::vector<uint64_t>{0, 4096, kMiB - 4096, kMiB + 512, 3 * kMiB + 100}) {
    CreateOptions opt;
    opt.size = size;
    auto dev = PmemDevice::Create(dir_.File("bad"), opt);
    ASSERT_FALSE(dev.ok()) << size;
    EXPECT_EQ(dev.status().err(), EINVAL) << size;
    EXPECT_FALSE(std::filesystem::exists(dir_.File("bad"))) << "left a file behind for " << size;
  }
  auto dev = Make(kMiB);
  ASSERT_TRUE(dev);
  EXPECT_EQ(dev->size(), kMiB);
}

TEST_F(DeviceTest, CreateValidatesClearUnit) {
  for (uint32_t unit : {0u, 1u, 32u, 100u, 384u, 8192u}) {
    CreateOptions opt;
    opt.size = kMiB;
    opt.clear_unit = unit;
    auto dev = PmemDevice::Create(dir_.File("bad"), opt);
    ASSERT_FALSE(dev.ok()) << unit;
    EXPECT_EQ(dev.status().err(), EINVAL) << unit;
  }
  for (uint32_t unit : {64u, 128u, 256u, 512u, 1024u, 4096u}) {
    CreateOptions opt;
    opt.size = kMiB;
    opt.clear_unit = unit;
    auto dev = Make(opt, "ok" + std::to_string(unit));
    ASSERT_TRUE(dev);
    EXPECT_EQ(dev->clear_unit(), unit);
  }
}

TEST_F(DeviceTest, CxlAlwaysClearsIn64ByteUnits) {
  for (uint32_t unit : {256u, 4096u, 100u}) {
    CreateOptions opt;
    opt.size = kMiB;
    opt.kind = Kind::kCxl;
    opt.clear_unit = unit;
    auto dev = Make(opt, "cxl" + std::to_string(unit));
    ASSERT_TRUE(dev);
    EXPECT_EQ(dev->clear_unit(), 64u);
    EXPECT_EQ(dev->geometry().kind, Kind::kCxl);
    // And it clears at that granularity.
    ASSERT_TRUE(dev->Inject(0, 1, Saturated()).ok());
    EXPECT_TRUE(dev->ClearPoison(64, 64).ok());
    EXPECT_FALSE(dev->HasPoison(64, 64));
    EXPECT_TRUE(dev->HasPoison(0, 64));
  }
}

TEST_F(DeviceTest, DevdaxNeedsAnAlignmentDividingTheSize) {
  CreateOptions opt;
  opt.size = 3 * kMiB;
  opt.mode = Mode::kDevdax;
  opt.align = 0;
  EXPECT_EQ(PmemDevice::Create(dir_.File("a"), opt).status().err(), EINVAL);
  opt.align = 2 * kMiB;
  EXPECT_EQ(PmemDevice::Create(dir_.File("b"), opt).status().err(), EINVAL);
  opt.size = 4 * kMiB;
  auto dev = Make(opt, "c");
  ASSERT_TRUE(dev);
  EXPECT_EQ(dev->geometry().mode, Mode::kDevdax);
  EXPECT_EQ(dev->geometry().align, 2 * kMiB);
}

TEST_F(DeviceTest, CreateOverExistingFileFails) {
  ASSERT_TRUE(Make(kMiB));
  CreateOptions opt;
  opt.size = kMiB;
  auto again = PmemDevice::Create(dir_.File("dev"), opt);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().err(), EEXIST);
  // A file that is not a device is not clobbered either.
  { std::ofstream(dir_.File("notes")) << "keep me"; }
  EXPECT_EQ(PmemDevice::Create(dir_.File("notes"), opt).status().err(), EEXIST);
  std::ifstream in(dir_.File("notes"));
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "keep me");
}

TEST_F(DeviceTest, NewDeviceIsCleanAndZeroed) {
  auto dev = Make(kMiB);
  ASSERT_TRUE(dev);
  EXPECT_TRUE(dev->BadBlocks().empty());
  EXPECT_TRUE(dev->MediaErrors().empty());
  EXPECT_FALSE(dev->HasPoison(0, dev->size()));
  std::vector<uint8_t> buf(dev->size(), 0xff);
  EXPECT_EQ(dev->ReadMcSafe(0, buf.data(), buf.size()), buf.size());
  EXPECT_TRUE(AllZero(buf.data(), buf.size()));
  EXPECT_FALSE(dev->GetScrubStatus().active);
  EXPECT_EQ(dev->GetScrubStatus().count, 0u);
}

// --- opening

TEST_F(DeviceTest, OpenMissingFile) {
  auto dev = PmemDevice::Open(dir_.File("nope"));
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().err(), ENOENT);
  EXPECT_NE(dev.status().message().find("nope"), std::string::npos) << dev.status().message();
}

TEST_F(DeviceTest, OpenGarbageFile) {
  { std::ofstream(dir_.File("junk")) << std::string(2 * kMiB, 'Z'); }
  auto dev = PmemDevice::Open(dir_.File("junk"));
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().err(), EUCLEAN);
  EXPECT_NE(dev.status().message().find("bad magic"), std::string::npos) << dev.status().message();
}

TEST_F(DeviceTest, OpenTooShortFile) {
  { std::ofstream(dir_.File("short")) << "DAXG"; }
  auto dev = PmemDevice::Open(dir_.File("short"));
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().err(), EUCLEAN);
  EXPECT_NE(dev.status().message().find("too short"), std::string::npos) << dev.status().message();
}

TEST_F(DeviceTest, OpenDirectoryFails) {
  auto dev = PmemDevice::Open(dir_.File(""));
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().err(), EISDIR);
}

TEST_F(DeviceTest, OpenTruncatedFile) {
  uint64_t file_size;
  {
    auto dev = Make(kMiB);
    ASSERT_TRUE(dev);
    file_size = dev->geometry().file_size;
  }
  ASSERT_EQ(truncate(dir_.File("dev").c_str(), static_cast<off_t>(file_size - 4096)), 0);
  auto dev = PmemDevice::Open(dir_.File("dev"));
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().err(), EUCLEAN);
  EXPECT_NE(dev.status().message().find("truncated"), std::string::npos) << dev.status().message();
}

TEST_F(DeviceTest, OpenCorruptHeader) {
  ASSERT_TRUE(Make(kMiB));
  int fd = open(dir_.File("dev").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  Header h{};
  ASSERT_EQ(pread(fd, &h, sizeof h, 0), static_cast<ssize_t>(sizeof h));
  Header bad = h;
  bad.geo.size = 2 * kMiB;  // layout no longer matches
  ASSERT_EQ(pwrite(fd, &bad, sizeof bad, 0), static_cast<ssize_t>(sizeof bad));
  EXPECT_EQ(PmemDevice::Open(dir_.File("dev")).status().err(), EUCLEAN);
  bad = h;
  bad.version = 99;
  ASSERT_EQ(pwrite(fd, &bad, sizeof bad, 0), static_cast<ssize_t>(sizeof bad));
  auto dev = PmemDevice::Open(dir_.File("dev"));
  EXPECT_EQ(dev.status().err(), EUCLEAN);
  EXPECT_NE(dev.status().message().find("version"), std::string::npos) << dev.status().message();
  ASSERT_EQ(pwrite(fd, &h, sizeof h, 0), static_cast<ssize_t>(sizeof h));
  close(fd);
  EXPECT_TRUE(PmemDevice::Open(dir_.File("dev")).ok());
}

TEST_F(DeviceTest, ReopenKeepsDataPoisonAndRecords) {
  Geometry geo;
  {
    auto dev = Make(2 * kMiB, 128);
    ASSERT_TRUE(dev);
    geo = dev->geometry();
    Fill(*dev);
    ASSERT_TRUE(dev->Inject(5, 1, {}).ok());
    ASSERT_TRUE(dev->Inject(100, 3, Latent()).ok());
    ASSERT_TRUE(dev->Acknowledge({5, 1, false}).ok());
    ASSERT_TRUE(dev->Sync().ok());
  }
  auto dev = PmemDevice::Open(dir_.File("dev"));
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_EQ((*dev)->geometry(), geo);
  EXPECT_EQ((*dev)->clear_unit(), 128u);
  EXPECT_EQ((*dev)->BadBlocks(), (std::vector<BadBlock>{{5, 1, true}}));
  EXPECT_TRUE((*dev)->HasPoison(100 * 512, 128));
  EXPECT_FALSE((*dev)->HasPoison(100 * 512 + 128, 384));
  EXPECT_TRUE(HasPattern((*dev)->data() + 4096, 4096, 4096));
}

// --- injection and discovery

TEST_F(DeviceTest, InjectWithNotifyRecordsAndCallsListener) {
  auto dev = Make();
  ASSERT_TRUE(dev);
  int calls = 0;
  dev->SetErrorListener([&] { ++calls; });
  uint32_t events = dev->ErrorEvents();
  ASSERT_TRUE(dev->Inject(10, 2, {}).ok());
  EXPECT_EQ(calls, 1);
  EXPECT_NE(dev->ErrorEvents(), events);
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{10, 2, false}}));
  EXPECT_EQ(dev->Unacknowledged(), dev->BadBlocks());
  EXPECT_TRUE(dev->HasKnownErrors(10 * 512, 1));
  EXPECT_TRUE(dev->HasKnownErrors(12 * 512 - 1, 1));
  EXPECT_FALSE(dev->HasKnownErrors(12 * 512, 512));
  EXPECT_EQ(dev->FirstKnownError(0, dev->size()), (BadBlock{10, 2, false}));
  EXPECT_EQ(dev->MediaErrors().size(), 2u);
  EXPECT_EQ(dev->MediaErrors()[0], (MediaError{10 * 512, 256, Source::kInjected}));
  EXPECT_EQ(dev->MediaErrors()[1], (MediaError{11 * 512, 256, Source::kInjected}));
  // Injecting the same sectors again makes nothing newly known.
  events = dev->ErrorEvents();
  ASSERT_TRUE(dev->Inject(10, 2, {}).ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(dev->ErrorEvents(), events);
  // Extending the run: only the new sector is news, and the record merges.
  ASSERT_TRUE(dev->Inject(11, 2, {}).ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{10, 3, false}}));
}

TEST_F(DeviceTest, InjectChecksItsRange) {
  auto dev = Make(kMiB);
  ASSERT_TRUE(dev);
  const uint64_t sectors = kMiB / 512;
  EXPECT_EQ(dev->Inject(0, 0, {}).err(), EINVAL);
  EXPECT_EQ(dev->Inject(sectors, 1, {}).err(), ERANGE);
  EXPECT_EQ(dev->Inject(sectors - 1, 2, {}).err(), ERANGE);
  EXPECT_EQ(dev->Inject(1, UINT64_MAX, {}).err(), ERANGE);
  EXPECT_TRUE(dev->BadBlocks().empty());
  EXPECT_TRUE(dev->MediaErrors().empty());
  EXPECT_TRUE(dev->Inject(sectors - 1, 1, {}).ok());
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{sectors - 1, 1, false}}));
}

TEST_F(DeviceTest, LatentPoisonIsFoundByScrub) {
  auto dev = Make();
  ASSERT_TRUE(dev);
  int calls = 0;
  dev->SetErrorListener([&] { ++calls; });
  ASSERT_TRUE(dev->Inject(33, 1, Latent()).ok());
  ASSERT_TRUE(dev->Inject(4000, 5, Latent()).ok());
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(dev->BadBlocks().empty());
  EXPECT_FALSE(dev->HasKnownErrors(0, dev->size()));
  EXPECT_TRUE(dev->HasPoison(33 * 512, 1));
  ASSERT_TRUE(dev->BeginScrub(static_cast<uint32_t>(getpid())).ok());
  EXPECT_TRUE(dev->GetScrubStatus().active);
  ASSERT_TRUE(dev->RunScrub().ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{33, 1, false}, {4000, 5, false}}));
  ScrubStatus st = dev->GetScrubStatus();
  EXPECT_FALSE(st.active);
  EXPECT_EQ(st.count, 1u);
  // A second scrub finds nothing new.
  ASSERT_TRUE(dev->BeginScrub(static_cast<uint32_t>(getpid())).ok());
  ASSERT_TRUE(dev->RunScrub().ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(dev->GetScrubStatus().count, 2u);
}

TEST_F(DeviceTest, LatentPoisonBecomesKnownWhenConsumed) {
  auto dev = Make();
  ASSERT_TRUE(dev);
  Fill(*dev);
  int calls = 0;
  dev->SetErrorListener([&] { ++calls; });
  ASSERT_TRUE(dev->Inject(20, 1, Latent()).ok());
  std::vector<uint8_t> buf(1000);
  const uint64_t off = 20 * 512 - 100;
  EXPECT_EQ(dev->ReadMcSafe(off, buf.data(), buf.size()), 100u);
  EXPECT_TRUE(HasPattern(buf.data(), off, 100));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{20, 1, false}}));
  // Consuming it again reports nothing new.
  EXPECT_EQ(dev->ReadMcSafe(off, buf.data(), buf.size()), 100u);
  EXPECT_EQ(calls, 1);
  // Starting on the poison copies nothing.
  EXPECT_EQ(dev->ReadMcSafe(20 * 512 + 10, buf.data(), 10), 0u);
  // Out of range copies nothing.
  EXPECT_EQ(dev->ReadMcSafe(dev->size() - 10, buf.data(), 11), 0u);
}

// Default injection poisons the first clear unit of each sector (at most the
// whole sector); saturation poisons all eight lines.
class ClearUnitTest : public DeviceTest, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(ClearUnitTest, DefaultInjectPoisonsFirstClearUnitOnly) {
  const uint32_t unit = GetParam();
  const uint64_t bad = std::min<uint64_t>(unit, 512);
  auto dev = Make(kMiB, unit);
  ASSERT_TRUE(dev);
  Fill(*dev);
  const uint64_t s = 9, off = s * 512;
  ASSERT_TRUE(dev->Inject(s, 1, Latent()).ok());
  EXPECT_EQ(dev->MediaErrors().size(), 1u);
  EXPECT_EQ(dev->MediaErrors()[0], (MediaError{off, bad, Source::kInjected}));
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(dev->ReadMcSafe(off, buf.data(), 512), 0u);
  EXPECT_EQ(dev->ReadMcSafe(off + bad - 64, buf.data(), 64), 0u);
  if (bad < 512) {
    // The rest of the sector reads fine.
    ASSERT_EQ(dev->ReadMcSafe(off + bad, buf.data(), 512 - bad), 512 - bad);
    EXPECT_TRUE(HasPattern(buf.data(), off + bad, 512 - bad));
  }
  // So does the next sector, even with a 4 KiB clear unit.
  ASSERT_EQ(dev->ReadMcSafe(off + 512, buf.data(), 512), 512u);
  EXPECT_TRUE(HasPattern(buf.data(), off + 512, 512));
  ASSERT_EQ(dev->ReadMcSafe(off - 512, buf.data(), 512), 512u);
}

TEST_P(ClearUnitTest, SaturatedInjectPoisonsAllEightLines) {
  auto dev = Make(kMiB, GetParam());
  ASSERT_TRUE(dev);
  ASSERT_TRUE(dev->Inject(9, 2, Saturated(false)).ok());
  EXPECT_EQ(dev->MediaErrors().size(), 1u);
  EXPECT_EQ(dev->MediaErrors()[0], (MediaError{9 * 512, 1024, Source::kInjected}));
  std::vector<uint8_t> buf(64);
  for (uint64_t line = 0; line < 16; ++line)
    EXPECT_EQ(dev->ReadMcSafe(9 * 512 + line * 64, buf.data(), 64), 0u) << "line " << line;
  EXPECT_EQ(dev->ReadMcSafe(11 * 512, buf.data(), 64), 64u);
}

INSTANTIATE_TEST_SUITE_P(Units, ClearUnitTest, ::testing::Values(64u, 128u, 256u, 512u, 4096u));

TEST_F(DeviceTest, InjectSourceIsKept) {
  auto dev = Make();
  ASSERT_TRUE(dev);
  InjectOptions ext = Saturated(false);
  ext.source = Source::kExternal;
  ASSERT_TRUE(dev->Inject(1, 1, ext).ok());
  ASSERT_TRUE(dev->Inject(3, 1, Saturated(false)).ok());
  auto errs = dev->MediaErrors();
  ASSERT_EQ(errs.size(), 2u);
  EXPECT_EQ(errs[0].source, Source::kExternal);
  EXPECT_EQ(errs[1].source, Source::kInjected);
  EXPECT_STREQ(SourceName(Source::kExternal), "External");
  EXPECT_STREQ(SourceName(Source::kInjected), "Injected");
  EXPECT_STREQ(SourceName(Source::kInternal), "Internal");
}

// --- clearing

TEST_F(DeviceTest, PersistenceCallsAreRangeCheckedAndPersistingCopiesLand) {
  auto dev = Make();
  ASSERT_TRUE(dev);
  std::vector<uint8_t> buf(8192, 0x3c);
  ASSERT_TRUE(dev->WritePersist(100, buf.data(), buf.size()).ok());
  EXPECT_EQ(std::count(dev->data() + 100, dev->data() + 100 + buf.size(), 0x3c), 8192);
  EXPECT_EQ(dev->data()[99], 0);
  EXPECT_TRUE(dev->WriteBack(0, dev->size()).ok());
  EXPECT_TRUE(dev->WriteBack(dev->size(), 0).ok());
  dev->Fence();
  EXPECT_EQ(dev->WriteBack(dev->size() - 64, 65).err(), ERANGE);
  EXPECT_FALSE(dev->WritePersist(dev->size() - 10, buf.data(), 11).ok());
  EXPECT_EQ(dev->data()[dev->size() - 10], 0) << "a refused persisting copy wrote nothing";
  // Like any store, a persisting copy does not clear poison.
  ASSERT_TRUE(dev->Inject(64, 1, Saturated()).ok());
  ASSERT_TRUE(dev->WritePersist(64 * 512, buf.data(), 512).ok());
  EXPECT_TRUE(dev->HasPoison(64 * 512, 512));
}

TEST_F(DeviceTest, OrdinaryWriteNeverClearsPoison) {
  auto dev = Make();
  ASSERT_TRUE(dev);
  ASSERT_TRUE(dev->Inject(8, 1, Saturated()).ok());
  auto errs_before = dev->MediaErrors();
  std::vector<uint8_t> buf(4096, 0x77);
  ASSERT_TRUE(dev->Write(4096, buf.data(), buf.size()).ok());  // the store is taken
  EXPECT_TRUE(dev->HasPoison(4096, 512));
  EXPECT_EQ(dev->MediaErrors(), errs_before);
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{8, 1, false}}));
  EXPECT_EQ(dev->ReadMcSafe(4096, buf.data(), buf.size()), 0u);
  // The store itself reached the media; only loads of it fail.
  EXPECT_EQ(dev->data()[4096], 0x77);
}

TEST_F(DeviceTest, MisalignedClearFailsAndChangesNothing) {
  auto dev = Make(kMiB, 256);
  ASSERT_TRUE(dev);
  Fill(*dev);
  ASSERT_TRUE(dev->Inject(8, 1, Saturated()).ok());
  auto errs = dev->MediaErrors();
  for (auto [off, len] : std::vector<std::pair<uint64_t, uint64_t>>{
           {4096 + 64, 256}, {4096, 128}, {4096 + 128, 256}, {4096, 300}, {4095, 1}}) {
    Status s = dev->ClearPoison(off, len);
    EXPECT_EQ(s.err(), ENXIO) << off << "+" << len;
  }
  EXPECT_EQ(dev->MediaErrors(), errs);
  EXPECT_TRUE(HasPattern(dev->data(), 0, dev->size()));
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{8, 1, false}}));
  EXPECT_EQ(dev->ClearPoison(dev->size() - 256, 512).err(), ERANGE);
  EXPECT_EQ(dev->ClearPoison(dev->size() + 256, 256).err(), ERANGE);
  EXPECT_TRUE(HasPattern(dev->data(), 0, dev->size()));
}

TEST_F(DeviceTest, ClearZeroesTheUnitsAndKeepsRecords) {
  auto dev = Make(kMiB, 256);
  ASSERT_TRUE(dev);
  Fill(*dev);
  ASSERT_TRUE(dev->Inject(8, 1, Saturated()).ok());
  ASSERT_TRUE(dev->ClearPoison(4096, 256).ok());
  EXPECT_TRUE(AllZero(dev->data() + 4096, 256));
  EXPECT_FALSE(dev->HasPoison(4096, 256));
  EXPECT_TRUE(dev->HasPoison(4096 + 256, 256));
  EXPECT_TRUE(HasPattern(dev->data(), 0, 4096));
  EXPECT_TRUE(HasPattern(dev->data() + 4096 + 256, 4096 + 256, dev->size() - 4096 - 256));
  // The record stays until ForgetKnown: readers keep failing meanwhile.
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{8, 1, false}}));
  std::vector<uint8_t> buf(256);
  EXPECT_EQ(dev->ReadMcSafe(4096, buf.data(), 256), 256u);
  EXPECT_TRUE(AllZero(buf.data(), 256));
  // Clearing clean units just zeroes them.
  ASSERT_TRUE(dev->ClearPoison(0, 512).ok());
  EXPECT_TRUE(AllZero(dev->data(), 512));
  EXPECT_TRUE(HasPattern(dev->data() + 512, 512, 3584));
}

TEST_F(DeviceTest, ClearOfALargeRangeZeroesAllOfIt) {
  auto dev = Make(8 * kMiB, 256);
  ASSERT_TRUE(dev);
  Fill(*dev);
  ASSERT_TRUE(dev->Inject(16, 16000, Saturated()).ok());
  const uint64_t off = 4096 * 3, len = 6 * kMiB + 4096;
  ASSERT_TRUE(dev->ClearPoison(off, len).ok());
  EXPECT_TRUE(HasPattern(dev->data(), 0, off));
  EXPECT_TRUE(AllZero(dev->data() + off, len));
  EXPECT_TRUE(HasPattern(dev->data() + off + len, off + len, dev->size() - off - len));
  EXPECT_TRUE(dev->HasPoison(off - 1, 1));
  EXPECT_FALSE(dev->HasPoison(off, len));
  EXPECT_TRUE(dev->HasPoison(off + len, 1));
}

TEST_F(DeviceTest, UninjectRemovesPoisonButKeepsRecords) {
  auto dev = Make();
  ASSERT_TRUE(dev);
  Fill(*dev);
  ASSERT_TRUE(dev->Inject(3, 2, {}).ok());
  InjectOptions ext = Saturated();
  ext.source = Source::kExternal;
  ASSERT_TRUE(dev->Inject(7, 1, ext).ok());
  ASSERT_TRUE(dev->Uninject(0, 100).ok());
  // Only injected poison goes; a real (external) error stays.
  auto errs = dev->MediaErrors();
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], (MediaError{7 * 512, 512, Source::kExternal}));
  EXPECT_FALSE(dev->HasPoison(3 * 512, 1024));
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{3, 2, false}, {7, 1, false}}));
  // The media reads fine again, with its old contents.
  std::vector<uint8_t> buf(1024);
  ASSERT_EQ(dev->ReadMcSafe(3 * 512, buf.data(), 1024), 1024u);
  EXPECT_TRUE(HasPattern(buf.data(), 3 * 512, 1024));
  EXPECT_EQ(dev->Uninject(kMiB, UINT64_MAX).err(), ERANGE);
}

TEST_F(DeviceTest, ForgetKnownKeepsSectorsThatStillHoldPoison) {
  auto dev = Make(kMiB, 256);
  ASSERT_TRUE(dev);
  ASSERT_TRUE(dev->Inject(10, 4, Saturated()).ok());
  ASSERT_TRUE(dev->ClearPoison(10 * 512, 512).ok());
  ASSERT_TRUE(dev->ClearPoison(12 * 512, 512).ok());
  // Half of sector 13 is still poisoned.
  ASSERT_TRUE(dev->ClearPoison(13 * 512, 256).ok());
  ASSERT_TRUE(dev->ForgetKnown(10 * 512, 4 * 512).ok());
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{11, 1, false}, {13, 1, false}}));
  // A byte range rounds outward to whole sectors.
  ASSERT_TRUE(dev->ClearPoison(11 * 512, 512).ok());
  ASSERT_TRUE(dev->ForgetKnown(11 * 512 + 500, 1).ok());
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{13, 1, false}}));
  ASSERT_TRUE(dev->ClearPoison(13 * 512 + 256, 256).ok());
  ASSERT_TRUE(dev->ForgetKnown(0, dev->size()).ok());
  EXPECT_TRUE(dev->BadBlocks().empty());
  EXPECT_EQ(dev->ForgetKnown(dev->size(), 1).err(), ERANGE);
}

// --- records

TEST_F(DeviceTest, AcknowledgeAndAddKnown) {
  auto dev = Make(kMiB);
  ASSERT_TRUE(dev);
  int calls = 0;
  dev->SetErrorListener([&] { ++calls; });
  ASSERT_TRUE(dev->AddKnown({{4, 2, false}, {100, 1, false}}).ok());
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(dev->MediaErrors().empty());  // records only, no media poison
  ASSERT_TRUE(dev->Acknowledge({4, 2, false}).ok());
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{4, 2, true}, {100, 1, false}}));
  EXPECT_EQ(dev->Unacknowledged(), (std::vector<BadBlock>{{100, 1, false}}));
  // New sectors next to acknowledged ones are unacknowledged news.
  ASSERT_TRUE(dev->AddKnown({{3, 4, false}}).ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(dev->BadBlocks(),
            (std::vector<BadBlock>{{3, 1, false}, {4, 2, true}, {6, 1, false}, {100, 1, false}}));
  EXPECT_EQ(dev->AddKnown({{2048, 1, false}}).err(), ERANGE);
  EXPECT_EQ(dev->AddKnown({{5, 0, false}}).err(), ERANGE);
  EXPECT_EQ(dev->BadBlocks().size(), 4u);
}

TEST_F(DeviceTest, FirstKnownErrorRoundsToSectors) {
  auto dev = Make(kMiB);
  ASSERT_TRUE(dev);
  ASSERT_TRUE(dev->AddKnown({{8, 1, false}}).ok());
  EXPECT_TRUE(dev->FirstKnownError(8 * 512 + 511, 1).has_value());
  EXPECT_TRUE(dev->FirstKnownError(8 * 512 - 1, 2).has_value());
  EXPECT_FALSE(dev->FirstKnownError(8 * 512 - 1, 1).has_value());
  EXPECT_FALSE(dev->FirstKnownError(9 * 512, 512).has_value());
  EXPECT_FALSE(dev->FirstKnownError(8 * 512, 0).has_value());
}

TEST_F(DeviceTest, MoreThan512BadRangesAreKept) {
  {
    auto dev = Make(4 * kMiB);
    ASSERT_TRUE(dev);
    for (uint64_t i = 0; i < 2000; ++i) ASSERT_TRUE(dev->Inject(2 * i, 1, {}).ok()) << i;
    auto bb = dev->BadBlocks();
    ASSERT_EQ(bb.size(), 2000u);
    for (uint64_t i = 0; i < 2000; ++i) ASSERT_EQ(bb[i], (BadBlock{2 * i, 1, false}));
  }
  auto dev = PmemDevice::Open(dir_.File("dev"));
  ASSERT_TRUE(dev.ok());
  EXPECT_EQ((*dev)->BadBlocks().size(), 2000u);
  EXPECT_EQ((*dev)->MediaErrors().size(), 2000u);
}

// Records alternating between acknowledged and not cannot merge: one entry
// per sector. The table must still hold them all.
TEST_F(DeviceTest, BadBlocksTableNeverFills) {
  auto dev = Make(kMiB);
  ASSERT_TRUE(dev);
  const uint64_t sectors = kMiB / 512;
  std::vector<BadBlock> evens, odds;
  for (uint64_t s = 0; s < sectors; s += 2) evens.push_back({s, 1, false});
  for (uint64_t s = 1; s < sectors; s += 2) odds.push_back({s, 1, false});
  ASSERT_TRUE(dev->AddKnown(evens).ok());
  ASSERT_TRUE(dev->Acknowledge({0, sectors, false}).ok());
  Status s = dev->AddKnown(odds);
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto bb = dev->BadBlocks();
  ASSERT_EQ(bb.size(), sectors);
  for (uint64_t i = 0; i < sectors; ++i) ASSERT_EQ(bb[i], (BadBlock{i, 1, i % 2 == 0}));
}

// Poison of alternating sources cannot merge either: one entry per clear
// unit (per sector for units past a sector, where Uninject cuts finer).
class PoisonTableTest : public DeviceTest, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(PoisonTableTest, NeverFills) {
  CreateOptions opt;
  opt.size = kMiB;
  opt.clear_unit = GetParam();
  auto dev = Make(opt);
  ASSERT_TRUE(dev);
  const uint64_t g = std::min<uint64_t>(GetParam(), 512);
  const uint64_t sectors = kMiB / 512;
  ASSERT_TRUE(dev->Inject(0, sectors, Saturated(false)).ok());
  for (uint64_t off = g; off < kMiB; off += 2 * g) {
    if (GetParam() <= 512)
      ASSERT_TRUE(dev->ClearPoison(off, g).ok()) << off;
    else
      ASSERT_TRUE(dev->Uninject(off / 512, 1).ok()) << off;
  }
  InjectOptions ext = Saturated(false);
  ext.source = Source::kExternal;
  Status s = dev->Inject(0, sectors, ext);
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto errs = dev->MediaErrors();
  ASSERT_EQ(errs.size(), kMiB / g);
  EXPECT_EQ(errs[0], (MediaError{0, g, Source::kInjected}));
  EXPECT_EQ(errs[1], (MediaError{g, g, Source::kExternal}));
  // Clearing still works on the crowded table.
  if (GetParam() <= 256) {
    ASSERT_TRUE(dev->Inject(0, 1, Saturated(false)).ok());
    ASSERT_TRUE(dev->ClearPoison(g, g).ok());
    EXPECT_FALSE(dev->HasPoison(g, g));
    EXPECT_TRUE(dev->HasPoison(0, g));
    EXPECT_TRUE(dev->HasPoison(2 * g, g));
  }
}

INSTANTIATE_TEST_SUITE_P(Units, PoisonTableTest, ::testing::Values(64u, 128u, 256u, 512u, 4096u));

// A device of 1 TiB lives in a sparse file: only what is touched is stored.
TEST_F(DeviceTest, HugeSparseDevice) {
  const uint64_t size = 1ull << 40;
  const uint64_t last = size / 512 - 1;
  {
    auto dev = Make(size);
    ASSERT_TRUE(dev);
    ASSERT_TRUE(dev->Inject(last, 1, {}).ok());
    ASSERT_TRUE(dev->Inject(last - 100, 1, Latent()).ok());
    EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{last, 1, false}}));
    ASSERT_TRUE(dev->BeginScrub(static_cast<uint32_t>(getpid())).ok());
    uint64_t calls = 0, done = 0;
    ASSERT_TRUE(dev->RunScrub([&](uint64_t d, uint64_t total) {
                     ++calls;
                     done = d;
                     EXPECT_EQ(total, size);
                   }).ok());
    EXPECT_GT(calls, 1u);
    EXPECT_EQ(done, size);
    EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{last - 100, 1, false}, {last, 1, false}}));
    std::vector<uint8_t> buf(512);
    EXPECT_EQ(dev->ReadMcSafe(size - 512, buf.data(), 512), 0u);
    EXPECT_EQ(dev->ReadMcSafe(size - 256, buf.data(), 256), 256u);
  }
  struct stat st {};
  ASSERT_EQ(stat(dir_.File("dev").c_str(), &st), 0);
  EXPECT_GT(static_cast<uint64_t>(st.st_size), size);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 4 * kMiB) << "the device file is not sparse";
  auto dev = PmemDevice::Open(dir_.File("dev"));
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_EQ((*dev)->size(), size);
  EXPECT_EQ((*dev)->BadBlocks(), (std::vector<BadBlock>{{last - 100, 1, false}, {last, 1, false}}));
  auto errs = (*dev)->MediaErrors();
  ASSERT_EQ(errs.size(), 2u);
  EXPECT_EQ(errs[1], (MediaError{size - 512, 256, Source::kInjected}));
  // Dropping everything across the whole device keeps the file sparse too.
  ASSERT_TRUE((*dev)->Uninject(0, size / 512).ok());
  ASSERT_TRUE((*dev)->ForgetKnown(0, size).ok());
  EXPECT_TRUE((*dev)->MediaErrors().empty());
  EXPECT_TRUE((*dev)->BadBlocks().empty());
  ASSERT_EQ(stat(dir_.File("dev").c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 4 * kMiB) << "whole-device removal filled in the file";
}

// --- sharing between processes



TEST_F(DeviceTest, TwoProcessesSeeEachOthersInjections) {
  auto dev = Make();
  ASSERT_TRUE(dev);
  const std::string path = dir_.File("dev");
  Pipe to_parent, to_child;
  uint32_t events = dev->ErrorEvents();
  Child child([&]() -> int {
    to_child.CloseWrite();
    auto mine = PmemDevice::Open(path);
    if (!mine.ok()) return 10;
    if (!(*mine)->Inject(7, 1, {}).ok()) return 11;
    if (!(*mine)->Inject(9, 1, Latent()).ok()) return 12;
    to_parent.Send();
    if (!to_child.Receive()) return 13;
    // The parent's injection is visible here at once.
    if ((*mine)->BadBlocks() != std::vector<BadBlock>{{7, 1, false}, {20, 2, false}}) return 14;
    if (!(*mine)->HasPoison(20 * 512, 1)) return 15;
    return 0;
  });
  to_parent.CloseWrite();
  ASSERT_TRUE(to_parent.Receive());
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{7, 1, false}}));
  EXPECT_TRUE(dev->HasPoison(9 * 512, 1));
  EXPECT_FALSE(dev->HasKnownErrors(9 * 512, 1));
  EXPECT_NE(dev->ErrorEvents(), events);
  ASSERT_TRUE(dev->Inject(20, 2, {}).ok());
  to_child.Send();
  EXPECT_EQ(child.Wait(), 0);
}

TEST_F(DeviceTest, WaitForChangeWakesOnAnotherProcessesError) {
  auto dev = Make();
  ASSERT_TRUE(dev);
  const std::string path = dir_.File("dev");
  Pipe go;
  uint32_t seen = dev->ChangeEvents();
  Child child([&]() -> int {
    go.CloseWrite();
    if (!go.Receive()) return 10;
    auto mine = PmemDevice::Open(path);
    if (!mine.ok() || !(*mine)->Inject(3, 1, {}).ok()) return 11;
    return 0;
  });
  go.Send();
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + std::chrono::seconds(10);
  while (dev->ChangeEvents() == seen && std::chrono::steady_clock::now() < deadline)
    dev->WaitForChange(seen, 10000);
  EXPECT_NE(dev->ChangeEvents(), seen);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{3, 1, false}}));
  EXPECT_EQ(child.Wait(), 0);
}

TEST_F(DeviceTest, WaitForChangeTimesOut) {
  auto dev = Make(kMiB);
  ASSERT_TRUE(dev);
  auto start = std::chrono::steady_clock::now();
  dev->WaitForChange(dev->ChangeEvents(), 50);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(40));
  EXPECT_LT(waited, std::chrono::seconds(5));
  // Already different: returns at once.
  start = std::chrono::steady_clock::now();
  dev->WaitForChange(dev->ChangeEvents() + 1, 10000);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

// --- the holder slot

TEST_F(DeviceTest, OneHolderPerDevice) {
  auto dev = Make(kMiB);
  ASSERT_TRUE(dev);
  ASSERT_TRUE(dev->ClaimHolder(1).ok());
  EXPECT_TRUE(dev->ClaimHolder(1).ok());  // the same holder again
  EXPECT_EQ(dev->ClaimHolder(2).err(), EBUSY);
  dev->ReleaseHolder(2);  // not the holder: no effect
  EXPECT_EQ(dev->ClaimHolder(2).err(), EBUSY);
  dev->ReleaseHolder(1);
  EXPECT_TRUE(dev->ClaimHolder(2).ok());
  EXPECT_EQ(dev->ClaimHolder(1).err(), EBUSY);
  // Another handle on the same file in this process sees the claim.
  auto other = PmemDevice::Open(dir_.File("dev"));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->ClaimHolder(3).err(), EBUSY);
}

TEST_F(DeviceTest, HolderClaimSpansProcessesAndDiesWithItsProcess) {
  auto dev = Make(kMiB);
  ASSERT_TRUE(dev);
  const std::string path = dir_.File("dev");
  ASSERT_TRUE(dev->ClaimHolder(1).ok());
  Child busy([&]() -> int {
    auto mine = PmemDevice::Open(path);
    if (!mine.ok()) return 10;
    return (*mine)->ClaimHolder(1).err() == EBUSY ? 0 : 11;  // same token, other process
  });
  EXPECT_EQ(busy.Wait(), 0);
  dev->ReleaseHolder(1);
  // A child claims and exits without releasing: its claim dies with it.
  Child claims([&]() -> int {
    auto mine = PmemDevice::Open(path);
    return mine.ok() && (*mine)->ClaimHolder(5).ok() ? 0 : 10;
  });
  EXPECT_EQ(claims.Wait(), 0);
  EXPECT_TRUE(dev->ClaimHolder(6).ok());
}

// --- scrub slot

TEST_F(DeviceTest, OnlyOneScrubAtATime) {
  auto dev = Make();
  ASSERT_TRUE(dev);
  const uint32_t me = static_cast<uint32_t>(getpid());
  ASSERT_TRUE(dev->BeginScrub(me).ok());
  Status again = dev->BeginScrub(me);
  EXPECT_EQ(again.err(), EBUSY);
  EXPECT_NE(again.message().find(std::to_string(me)), std::string::npos) << again.message();
  ScrubStatus st = dev->GetScrubStatus();
  EXPECT_TRUE(st.active);
  EXPECT_EQ(st.progress, 0u);
  bool active_during = false;
  ASSERT_TRUE(dev->RunScrub([&](uint64_t, uint64_t) {
                   active_during = dev->GetScrubStatus().active;
                 }).ok());
  EXPECT_TRUE(active_during);
  EXPECT_FALSE(dev->GetScrubStatus().active);
  dev->WaitScrubIdle();  // returns at once
  EXPECT_TRUE(dev->BeginScrub(me).ok());
  ASSERT_TRUE(dev->RunScrub().ok());
}

TEST_F(DeviceTest, DeadScrubbersClaimIsDropped) {
  auto dev = Make(kMiB);
  ASSERT_TRUE(dev);
  Child child([] { return 0; });
  const pid_t pid = child.pid();
  ASSERT_EQ(child.Wait(), 0);
  // A scrub "run" by a process that has since died.
  ASSERT_TRUE(dev->BeginScrub(static_cast<uint32_t>(pid)).ok());
  EXPECT_FALSE(dev->GetScrubStatus().active);
  auto start = std::chrono::steady_clock::now();
  dev->WaitScrubIdle();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(dev->BeginScrub(static_cast<uint32_t>(getpid())).ok());
  ASSERT_TRUE(dev->RunScrub().ok());
}

// Mappings trap poison whether known or not, and holders hear of errors
// becoming known: every such change, in any process, moves the counter;
// anything else does not.
TEST_F(DeviceTest, ErrorChangesMoveTheChangeCounter) {
  auto dev = Make();
  auto other = PmemDevice::Open(dir_.File("dev"));
  ASSERT_TRUE(other.ok());
  uint32_t seen = (*other)->ChangeEvents();
  InjectOptions latent;
  latent.notify = false;
  ASSERT_TRUE(dev->Inject(8, 2, latent).ok());
  EXPECT_NE((*other)->ChangeEvents(), seen);
  seen = (*other)->ChangeEvents();
  std::vector<uint8_t> buf(kPageSize, 7);
  ASSERT_TRUE(dev->Write(64 * kPageSize, buf.data(), buf.size()).ok());
  EXPECT_EQ((*other)->ChangeEvents(), seen);  // a store is no error change
  ASSERT_TRUE(dev->BeginScrub(1).ok());
  ASSERT_TRUE(dev->RunScrub().ok());
  EXPECT_NE((*other)->ChangeEvents(), seen);  // now known
  seen = (*other)->ChangeEvents();
  ASSERT_TRUE(dev->ClearPoison(8 * 512, 256).ok());
  EXPECT_NE((*other)->ChangeEvents(), seen);
  seen = (*other)->ChangeEvents();
  ASSERT_TRUE(dev->Uninject(9, 1).ok());
  EXPECT_NE((*other)->ChangeEvents(), seen);
  (*other)->WaitForChange(seen, 0);  // changed: returns at once
}

// A trapped mapped load: every poisoned line in the range becomes known by
// its sector, and nothing else changes.
TEST_F(DeviceTest, ConsumeMakesThePoisonInTheRangeKnown) {
  auto dev = Make();
  InjectOptions latent;
  latent.notify = false;
  latent.saturate = true;
  ASSERT_TRUE(dev->Inject(3, 2, latent).ok());
  ASSERT_TRUE(dev->Inject(9, 1, latent).ok());
  ASSERT_TRUE(dev->Inject(40, 1, latent).ok());
  std::vector<uint8_t> before(kPageSize * 8), after(kPageSize * 8);
  std::memcpy(before.data(), dev->data(), before.size());
  dev->Consume(0, 16 * 512);
  EXPECT_EQ(dev->BadBlocks(), (std::vector<BadBlock>{{3, 2, false}, {9, 1, false}}));
  dev->Consume(20 * 512, 4096);  // no poison there
  EXPECT_EQ(dev->BadBlocks().size(), 2u);
  dev->Consume(dev->size(), 512);  // out of range: nothing
  std::memcpy(after.data(), dev->data(), after.size());
  EXPECT_EQ(before, after);
  EXPECT_TRUE(dev->HasPoison(40 * 512, 512));
}

TEST_F(DeviceTest, MediaErrorsInClipsToTheWindow) {
  auto dev = Make();
  InjectOptions opt;
  opt.saturate = true;
  ASSERT_TRUE(dev->Inject(10, 4, opt).ok());  // bytes 5120..7167
  ASSERT_TRUE(dev->Inject(40, 1, opt).ok());  // bytes 20480..20991
  auto in = dev->MediaErrorsIn(6000, 20700 - 6000);
  ASSERT_EQ(in.size(), 2u);
  EXPECT_EQ(in[0].offset, 6000u);
  EXPECT_EQ(in[0].length, 7168u - 6000u);
  EXPECT_EQ(in[1].offset, 20480u);
  EXPECT_EQ(in[1].length, 20700u - 20480u);
  EXPECT_TRUE(dev->MediaErrorsIn(8192, 4096).empty());
  EXPECT_TRUE(dev->MediaErrorsIn(0, 0).empty());
}

}  // namespace
}  // namespace daxguard::media
