// The data path through a stack: every byte lands on the base device and
// offset the table says, ranges are split at segments and stripe chunks,
// the error target fails everything, and recovery is answered per range.
#include "dm/stack.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "common/units.h"
#include "dax/dax_io.h"
#include "dm_test_util.h"

namespace daxguard::dm {
namespace {

using namespace testing;  // NOLINT: the dm test helpers
constexpr uint64_t S = kSectorSize;
constexpr uint64_t P = kPageSize;

uint8_t PatternByte(uint64_t off) { return static_cast<uint8_t>((off * 7 + off / 4093) % 251 + 1); }
std::vector<uint8_t> Pattern(uint64_t len) {
  std::vector<uint8_t> v(len);
  for (uint64_t i = 0; i < len; ++i) v[i] = PatternByte(i);
  return v;
}

class StackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeDevice(dir_.File("d0"), 8 * kMiB);
    MakeDevice(dir_.File("d1"), 8 * kMiB);
  }
  std::unique_ptr<dax::Device> Stack(const std::string& name, const std::vector<std::string>& lines) {
    Status s = MakeStack(dir_.File(name), lines);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return OpenOrDie(dir_.File(name));
  }
  // A second, independent view of a device file, to check what landed where.
  std::unique_ptr<media::PmemDevice> Media(const std::string& name) {
    auto m = media::PmemDevice::Open(dir_.File(name));
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? std::move(m).value() : nullptr;
  }
  static void WriteAll(dax::Device& d, const std::vector<uint8_t>& data) {
    auto n = dax::WriteAt(d, 0, data.data(), data.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_EQ(*n, data.size());
  }
  static void ExpectReadsBack(dax::Device& d, const std::vector<uint8_t>& data) {
    std::vector<uint8_t> back(data.size());
    auto n = dax::ReadAt(d, 0, back.data(), back.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, data.size());
    EXPECT_TRUE(back == data);
  }

  TempDir dir_;
};

TEST_F(StackTest, LinearSegmentsLandAtTheirBaseOffsets) {
  auto s = Stack("s", {"0 2048 linear d1 4096", "2048 1024 linear d0 64"});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->size(), 3072 * S);
  EXPECT_TRUE(s->caps().recovery);
  EXPECT_TRUE(s->caps().synchronous);
  std::vector<uint8_t> data = Pattern(s->size());
  WriteAll(*s, data);
  auto d0 = Media("d0"), d1 = Media("d1");
  EXPECT_EQ(std::memcmp(d1->data() + 4096 * S, data.data(), 2048 * S), 0);
  EXPECT_EQ(std::memcmp(d0->data() + 64 * S, data.data() + 2048 * S, 1024 * S), 0);
  // Nothing around the targets moved.
  EXPECT_EQ(d1->data()[4096 * S - 1], 0);
  EXPECT_EQ(d1->data()[6144 * S], 0);
  EXPECT_EQ(d0->data()[64 * S - 1], 0);
  EXPECT_EQ(d0->data()[1088 * S], 0);
  ExpectReadsBack(*s, data);
}

// Property: with an odd chunk size and one device used twice, every page of
// the stack is where an independent model of striping says.
TEST_F(StackTest, CleanCopiesCrossSegmentsToTheirBases) {
  auto s = Stack("s", {"0 64 linear d1 64", "64 64 linear d0 0"});
  ASSERT_TRUE(s);
  std::vector<uint8_t> data = Pattern(128 * S);
  ASSERT_TRUE(s->WriteClean(0, data.data(), data.size()));
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(s->ReadClean(0, back.data(), back.size()));
  EXPECT_TRUE(back == data);
  auto d0 = Media("d0");
  EXPECT_EQ(std::memcmp(d0->data(), data.data() + 64 * S, 64 * S), 0);
  auto d1 = Media("d1");
  EXPECT_EQ(std::memcmp(d1->data() + 64 * S, data.data(), 64 * S), 0);
}

TEST_F(StackTest, StripedPagesLandWhereTheModelSays) {
  const uint64_t kChunk = 24 * S;  // 12 KiB
  struct StripeAt {
    const char* dev;
    uint64_t off;
  };
  const StripeAt stripes[] = {{"d0", 0}, {"d1", 800 * S}, {"d0", 8000 * S}};
  auto s = Stack("s", {"0 4320 striped 3 24 d0 0 d1 800 d0 8000"});
  ASSERT_TRUE(s);
  std::vector<uint8_t> data = Pattern(s->size());
  WriteAll(*s, data);
  auto d0 = Media("d0"), d1 = Media("d1");
  for (uint64_t off = 0; off < s->size(); off += P) {
    uint64_t chunk = off / kChunk;
    const StripeAt& st = stripes[chunk % 3];
    uint64_t base_off = st.off + chunk / 3 * kChunk + off % kChunk;
    const uint8_t* base = (std::string(st.dev) == "d0" ? d0 : d1)->data();
    ASSERT_EQ(std::memcmp(base + base_off, data.data() + off, P), 0) << "stack offset " << off;
  }
  ExpectReadsBack(*s, data);
}

TEST_F(StackTest, DirectAccessHandsOutOneChunkAtATime) {
  auto s = Stack("s", {"0 64 striped 2 16 d0 0 d1 32", "64 64 linear d0 1024"});
  ASSERT_TRUE(s);
  auto& st = dynamic_cast<dm::Stack&>(*s);
  uint8_t* d0 = dynamic_cast<dax::PmemDax&>(st.base(0)).media().data();
  uint8_t* d1 = dynamic_cast<dax::PmemDax&>(st.base(1)).media().data();
  auto m = s->DirectAccess(0, 10, dax::AccessMode::kAccess);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->addr, d0);
  EXPECT_EQ(m->pages, 2u) << "a chunk of 16 sectors is two pages";
  m = s->DirectAccess(3, 10, dax::AccessMode::kAccess);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->addr, d1 + 32 * S + P);
  EXPECT_EQ(m->pages, 1u);
  m = s->DirectAccess(7, 9, dax::AccessMode::kAccess);  // last page of the striped segment
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->addr, d1 + 32 * S + 16 * S + P);
  EXPECT_EQ(m->pages, 1u);
  m = s->DirectAccess(8, 8, dax::AccessMode::kAccess);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->addr, d0 + 1024 * S);
  EXPECT_EQ(m->pages, 8u);
  EXPECT_TRUE(s->DirectAccess(16, 0, dax::AccessMode::kAccess).ok());
  EXPECT_EQ(s->DirectAccess(16, 1, dax::AccessMode::kAccess).status().err(), ERANGE);
  // Known poison on a base shows through, at the stack's page.
  auto media1 = Media("d1");
  ASSERT_TRUE(media1->Inject(32 + 8, 1, {}).ok());  // stack page 3
  EXPECT_EQ(s->DirectAccess(3, 1, dax::AccessMode::kAccess).status().err(), EHWPOISON);
  m = s->DirectAccess(2, 2, dax::AccessMode::kAccess);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->pages, 1u);
  m = s->DirectAccess(3, 1, dax::AccessMode::kRecoveryWrite);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->addr, d1 + 32 * S + P);
}

TEST_F(StackTest, ErrorSegmentFailsEveryAccessAndChangesNothing) {
  auto s = Stack("s", {"0 64 linear d0 0", "64 64 error", "128 64 linear d1 0"});
  ASSERT_TRUE(s);
  const uint64_t kErr = 64 * S;
  std::vector<uint8_t> buf(192 * S, 0x5a);
  EXPECT_EQ(s->Write(0, buf.data(), 128 * S).err(), EIO);
  EXPECT_EQ(s->Write(kErr + 100, buf.data(), 10).err(), EIO);
  EXPECT_EQ(s->RecoveryWrite(0, buf.data(), 128 * S).status().err(), EIO);
  EXPECT_EQ(s->ZeroPageRange(0, 24).err(), EIO);
  auto d0 = Media("d0");
  EXPECT_EQ(d0->data()[0], 0) << "a refused write touched the base";
  EXPECT_EQ(s->DirectAccess(kErr / P, 1, dax::AccessMode::kAccess).status().err(), EIO);
  EXPECT_EQ(s->DirectAccess(kErr / P, 1, dax::AccessMode::kRecoveryWrite).status().err(), EIO);
  EXPECT_EQ(s->ReadMcSafe(kErr - 100, buf.data(), 200).value_or(SIZE_MAX), 100u);
  auto r = dax::ReadAt(*s, kErr, buf.data(), 4096);
  EXPECT_EQ(r.status().err(), EIO);
  r = dax::ReadAt(*s, 0, buf.data(), 192 * S);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, kErr) << "a read stops where the error target starts";
  auto w = dax::WriteAt(*s, kErr, buf.data(), P);
  EXPECT_EQ(w.status().err(), EIO);
  EXPECT_NE(w.status().message().find("error target"), std::string::npos) << w.status().message();
  EXPECT_FALSE(s->ReadClean(kErr - 100, buf.data(), 200));
  EXPECT_FALSE(s->WriteClean(0, buf.data(), 128 * S));
  EXPECT_EQ(Media("d0")->data()[0], 0) << "a refused clean write touched the base";
  // What lies beyond works.
  EXPECT_TRUE(s->Write(128 * S, buf.data(), 64 * S).ok());
  EXPECT_TRUE(s->BadBlocks().empty()) << "an error segment is not media poison";
}

// What a filesystem asks before freeing a block: a known error below, or
// an error segment, makes a range known unreadable; nothing is consumed.
TEST_F(StackTest, KnownUnreadableSeesBaseErrorsAndErrorSegments) {
  auto s = Stack("s", {"0 64 linear d0 0", "64 64 error", "128 64 linear d1 0"});
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->KnownUnreadable(0, 64 * S));
  EXPECT_TRUE(s->KnownUnreadable(64 * S, P)) << "error segment";
  EXPECT_TRUE(s->KnownUnreadable(60 * S, 8 * S)) << "reaches into the error segment";
  auto d1 = Media("d1");
  ASSERT_TRUE(d1->Inject(8, 1, {}).ok());  // stack sector 136
  EXPECT_TRUE(s->KnownUnreadable(136 * S, S));
  EXPECT_TRUE(s->KnownUnreadable(128 * S, 2 * P));
  EXPECT_FALSE(s->KnownUnreadable(144 * S, P));
  EXPECT_TRUE(s->KnownUnreadable(s->size() - P, 2 * P)) << "beyond the end";
  // The base's answer from BadBlocks() agrees with the stack's own.
  EXPECT_TRUE(s->Device::KnownUnreadable(136 * S, S));
  EXPECT_FALSE(s->Device::KnownUnreadable(144 * S, P));
  // A latent error is not known.
  ASSERT_TRUE(d1->Inject(32, 1, {.notify = false}).ok());  // stack sector 160
  EXPECT_FALSE(s->KnownUnreadable(160 * S, S));
}

TEST_F(StackTest, CanRecoverIsAnsweredPerRange) {
  auto s = Stack("s", {"0 64 linear d0 0", "64 64 error", "128 64 linear d1 0"});
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->caps().recovery);
  EXPECT_TRUE(s->CanRecover(0, 64 * S));
  EXPECT_TRUE(s->CanRecover(128 * S, 64 * S));
  EXPECT_FALSE(s->CanRecover(64 * S, P));
  EXPECT_FALSE(s->CanRecover(60 * S, 8 * S)) << "reaches into the error segment";
  EXPECT_FALSE(s->CanRecover(0, s->size()));
  EXPECT_FALSE(s->CanRecover(s->size() - P, 2 * P)) << "beyond the end";
  // Through a stack above it too.
  auto top = Stack("top", {"0 128 linear s 64"});
  ASSERT_TRUE(top);
  EXPECT_FALSE(top->CanRecover(0, P));
  EXPECT_TRUE(top->CanRecover(64 * S, P));
  auto err = Stack("e", {"0 64 error"});
  ASSERT_TRUE(err);
  EXPECT_FALSE(err->caps().recovery);
}

TEST_F(StackTest, RecoveryWriteAndZeroRepairTheBase) {
  // Chunks of 16 sectors: even ones on d0 from 0, odd ones on d1 from 1024.
  auto s = Stack("s", {"0 2048 striped 2 16 d0 0 d1 1024"});
  ASSERT_TRUE(s);
  WriteAll(*s, Pattern(s->size()));
  auto d0 = Media("d0"), d1 = Media("d1");
  ASSERT_TRUE(d1->Inject(1024 + 2, 1, {}).ok());  // stack sector 18, page 2
  ASSERT_TRUE(d0->Inject(17, 1, {}).ok());        // stack sector 33, page 4
  EXPECT_EQ(s->BadBlocks(), (std::vector<media::BadBlock>{{18, 1, false}, {33, 1, false}}));
  std::vector<uint8_t> page(P, 0x77);
  auto w = dax::WriteAt(*s, 2 * P, page.data(), P);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_FALSE(d1->HasPoison(1024 * S, P));
  EXPECT_TRUE(d1->BadBlocks().empty());
  EXPECT_EQ(std::memcmp(d1->data() + 1024 * S, page.data(), P), 0);
  // Zeroing pages 3 and 4 goes to both devices and clears the other.
  ASSERT_TRUE(dax::ZeroAt(*s, 3 * P, 2 * P).ok());
  EXPECT_TRUE(d0->BadBlocks().empty());
  EXPECT_FALSE(d0->HasPoison(16 * S, P));
  EXPECT_TRUE(s->BadBlocks().empty());
  std::vector<uint8_t> back(2 * P, 1);
  ASSERT_EQ(s->ReadMcSafe(3 * P, back.data(), back.size()).value_or(SIZE_MAX), back.size());
  EXPECT_EQ(back, std::vector<uint8_t>(2 * P, 0));
  EXPECT_EQ(d1->data()[(1024 + 8) * S], 0);
  EXPECT_EQ(d0->data()[16 * S], 0);
}

// The same device, unable to clear poison: a stand-in for a base whose
// firmware cannot, to show the stack asks per range.
class NoRecovery final : public dax::Device {
 public:
  explicit NoRecovery(std::unique_ptr<dax::PmemDax> d) : d_(std::move(d)) {}
  uint64_t size() const override { return d_->size(); }
  dax::Capabilities caps() const override { return {false, true}; }
  Result<dax::Mapping> DirectAccess(uint64_t pgoff, uint64_t n, dax::AccessMode mode) override {
    return d_->DirectAccess(pgoff, n, mode);
  }
  Result<size_t> RecoveryWrite(uint64_t, const void*, size_t) override {
    ADD_FAILURE() << "RecoveryWrite on a device that cannot recover";
    return Status::Io("cannot recover");
  }
  Status ZeroPageRange(uint64_t, uint64_t) override { return Status::Io("cannot clear"); }
  Result<size_t> ReadMcSafe(uint64_t off, void* dst, size_t len) override { return d_->ReadMcSafe(off, dst, len); }
  Status Write(uint64_t off, const void* src, size_t len) override { return d_->Write(off, src, len); }
  Status WriteBack(uint64_t off, uint64_t len) override { return d_->WriteBack(off, len); }
  void Fence() override { d_->Fence(); }
  std::vector<media::BadBlock> BadBlocks() const override { return d_->BadBlocks(); }

 protected:
  Status ClaimForHolder(uint64_t) override { return Status::Ok(); }
  void UnclaimForHolder(uint64_t) override {}

 private:
  std::unique_ptr<dax::PmemDax> d_;
};

class TestOpener final : public BaseOpener {
 public:
  explicit TestOpener(const TempDir& dir) : dir_(dir) {}
  Result<std::string> Identify(const std::string& dev) override { return dev; }
  Result<std::unique_ptr<dax::Device>> Open(const std::string& dev) override {
    auto d = dax::PmemDax::Open(dir_.File(dev == "norec" ? "d1" : dev));
    if (!d.ok()) return d.status();
    if (dev == "norec") return std::unique_ptr<dax::Device>(new NoRecovery(std::move(d).value()));
    return std::unique_ptr<dax::Device>(std::move(d).value());
  }

 private:
  const TempDir& dir_;
};

TEST_F(StackTest, WriteOverPoisonFailsWhereTheBaseCannotClear) {
  TestOpener opener(dir_);
  std::vector<TableLine> table = {{0, 64, "linear", {"d0", "0"}}, {64, 64, "linear", {"norec", "0"}}};
  auto s = dm::Stack::Build("mixed", table, opener);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  dm::Stack& st = **s;
  EXPECT_TRUE(st.caps().recovery) << "part of it can recover";
  EXPECT_TRUE(st.CanRecover(0, 64 * S));
  EXPECT_FALSE(st.CanRecover(64 * S, P));
  EXPECT_FALSE(st.CanRecover(0, 128 * S));
  auto d0 = Media("d0"), d1 = Media("d1");
  ASSERT_TRUE(d0->Inject(8, 1, {}).ok());  // stack page 1
  ASSERT_TRUE(d1->Inject(8, 1, {}).ok());  // stack page 9
  std::vector<uint8_t> page(P, 0x31);
  ASSERT_TRUE(dax::WriteAt(st, P, page.data(), P).ok());
  EXPECT_TRUE(d0->BadBlocks().empty());
  auto w = dax::WriteAt(st, 9 * P, page.data(), P);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().err(), EIO);
  EXPECT_NE(w.status().message().find("cannot clear poison"), std::string::npos) << w.status().message();
  EXPECT_EQ(d1->BadBlocks().size(), 1u);
  EXPECT_NE(d1->data()[9 * P - 64 * S], 0x31);
  // A larger write stops short at the page it cannot repair.
  std::vector<uint8_t> big(16 * P, 0x32);
  auto n = dax::WriteAt(st, 0, big.data(), big.size());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 9 * P);
}

// A base that records the persistence calls reaching it, in one log shared
// by every base of the stack: "<base> wb <off> <len>", "<base> persist
// <off> <len>", "<base> fence".
class Recording final : public dax::Device {
 public:
  Recording(std::string name, std::unique_ptr<dax::PmemDax> d, std::vector<std::string>* log)
      : name_(std::move(name)), d_(std::move(d)), log_(log) {}
  uint64_t size() const override { return d_->size(); }
  dax::Capabilities caps() const override { return d_->caps(); }
  Result<dax::Mapping> DirectAccess(uint64_t pgoff, uint64_t n, dax::AccessMode mode) override {
    return d_->DirectAccess(pgoff, n, mode);
  }
  Result<size_t> RecoveryWrite(uint64_t off, const void* src, size_t len) override {
    return d_->RecoveryWrite(off, src, len);
  }
  Status ZeroPageRange(uint64_t pgoff, uint64_t n) override { return d_->ZeroPageRange(pgoff, n); }
  Result<size_t> ReadMcSafe(uint64_t off, void* dst, size_t len) override { return d_->ReadMcSafe(off, dst, len); }
  Status Write(uint64_t off, const void* src, size_t len) override { return d_->Write(off, src, len); }
  Status WriteBack(uint64_t off, uint64_t len) override {
    Note("wb " + std::to_string(off) + " " + std::to_string(len));
    return d_->WriteBack(off, len);
  }
  void Fence() override {
    Note("fence");
    d_->Fence();
  }
  Status WritePersist(uint64_t off, const void* src, size_t len) override {
    Note("persist " + std::to_string(off) + " " + std::to_string(len));
    return d_->WritePersist(off, src, len);
  }
  std::vector<media::BadBlock> BadBlocks() const override { return d_->BadBlocks(); }

 protected:
  Status ClaimForHolder(uint64_t) override { return Status::Ok(); }
  void UnclaimForHolder(uint64_t) override {}

 private:
  void Note(const std::string& what) { log_->push_back(name_ + " " + what); }
  std::string name_;
  std::unique_ptr<dax::PmemDax> d_;
  std::vector<std::string>* log_;
};

class RecordingOpener final : public BaseOpener {
 public:
  explicit RecordingOpener(const TempDir& dir) : dir_(dir) {}
  Result<std::string> Identify(const std::string& dev) override { return dev; }
  Result<std::unique_ptr<dax::Device>> Open(const std::string& dev) override {
    auto d = dax::PmemDax::Open(dir_.File(dev));
    if (!d.ok()) return d.status();
    return std::unique_ptr<dax::Device>(new Recording(dev, std::move(d).value(), &log));
  }
  std::vector<std::string> log;

 private:
  const TempDir& dir_;
};

TEST_F(StackTest, PersistenceReachesEachRunsBaseAndFencesEveryBase) {
  RecordingOpener opener(dir_);
  // Stack sectors [0, 64) are d0's [128, 192), [64, 128) d1's [0, 64).
  std::vector<TableLine> table = {{0, 64, "linear", {"d0", "128"}}, {64, 64, "linear", {"d1", "0"}}};
  auto s = dm::Stack::Build("rec", table, opener);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  dm::Stack& st = **s;
  ASSERT_TRUE(st.WriteBack(60 * S, 8 * S).ok());
  st.Fence();
  std::vector<uint8_t> data(8 * S, 0x5a);
  ASSERT_TRUE(st.WritePersist(62 * S, data.data(), data.size()).ok());
  EXPECT_EQ(opener.log, (std::vector<std::string>{
                            "d0 wb " + std::to_string(188 * S) + " " + std::to_string(4 * S),
                            "d1 wb 0 " + std::to_string(4 * S),
                            "d0 fence",
                            "d1 fence",
                            "d0 persist " + std::to_string(190 * S) + " " + std::to_string(2 * S),
                            "d1 persist 0 " + std::to_string(6 * S),
                        }));
  EXPECT_EQ(Media("d0")->data()[191 * S], 0x5a);
  EXPECT_EQ(Media("d1")->data()[5 * S], 0x5a);
  // Out of range: refused, nothing reaches a base.
  opener.log.clear();
  EXPECT_FALSE(st.WriteBack(120 * S, 16 * S).ok());
  EXPECT_FALSE(st.WritePersist(st.size(), data.data(), 1).ok());
  EXPECT_TRUE(opener.log.empty());
}

TEST_F(StackTest, ThreeLevelsTranslateDataAndBadBlocks) {
  ASSERT_TRUE(MakeStack(dir_.File("l0"), {"0 8192 linear d0 4096"}).ok());
  ASSERT_TRUE(MakeStack(dir_.File("l1"), {"0 8192 linear d1 8192"}).ok());
  auto top = Stack("top", {"0 16384 striped 2 16 l0 0 l1 0"});
  ASSERT_TRUE(top);
  std::vector<uint8_t> data = Pattern(top->size());
  WriteAll(*top, data);
  auto d0 = Media("d0"), d1 = Media("d1");
  // Top chunk 5 (sectors 80..95) is l1's chunk 2: d1 sectors 8192+32..
  EXPECT_EQ(std::memcmp(d1->data() + (8192 + 32) * S, data.data() + 80 * S, 16 * S), 0);
  // Top chunk 4 is l0's chunk 2: d0 sectors 4096+32..
  EXPECT_EQ(std::memcmp(d0->data() + (4096 + 32) * S, data.data() + 64 * S, 16 * S), 0);
  ASSERT_TRUE(d1->Inject(8192 + 33, 2, {}).ok());
  ASSERT_TRUE(d0->Inject(4096 + 15, 2, {}).ok());  // across l0's chunks 0 and 1
  EXPECT_EQ(top->BadBlocks(),
            (std::vector<media::BadBlock>{{15, 1, false}, {32, 1, false}, {81, 2, false}}));
  auto leaves = top->Media();
  ASSERT_EQ(leaves.size(), 2u);
  auto down = top->MapToMedia(81 * S, 2 * S);
  ASSERT_TRUE(down.ok());
  ASSERT_EQ(down->size(), 1u);
  EXPECT_EQ((*down)[0].media, leaves[1]);
  EXPECT_EQ((*down)[0].offset, (8192 + 33) * S);
  EXPECT_EQ(top->MapFromMedia(*leaves[0], (4096 + 15) * S, 2 * S),
            (std::vector<ByteRange>{{15 * S, S}, {32 * S, S}}));
}

TEST_F(StackTest, OutOfRangeAccessIsRefused) {
  auto s = Stack("s", {"0 64 linear d0 0"});
  ASSERT_TRUE(s);
  std::vector<uint8_t> buf(P);
  EXPECT_EQ(s->Write(s->size() - 10, buf.data(), 11).err(), ERANGE);
  EXPECT_EQ(s->RecoveryWrite(s->size(), buf.data(), 1).status().err(), ERANGE);
  EXPECT_EQ(s->ZeroPageRange(8, 1).err(), ERANGE);
  EXPECT_EQ(s->ReadMcSafe(s->size() - 1, buf.data(), 2).status().err(), ERANGE) << "an error, not 0 bytes good";
  EXPECT_TRUE(s->Write(s->size(), buf.data(), 0).ok());
}

}  // namespace
}  // namespace daxguard::dm
