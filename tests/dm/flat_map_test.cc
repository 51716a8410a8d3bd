// The flattened clean path: stacks that reduce to legs on device files copy
// straight to and from them, byte for byte as the level-by-level walk does,
// and refuse (false) wherever that walk would meet poison.
#include "dm/flat_map.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <random>

#include "common/units.h"
#include "dax/clean_path.h"
#include "dax/dax_io.h"
#include "dm_test_util.h"

namespace daxguard::dm {
namespace {

using namespace testing;  // NOLINT: the dm test helpers
constexpr uint64_t P = kPageSize;
constexpr uint64_t kDevSize = 8 * kMiB;

class FlatMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* d : {"d0", "d1", "d2"}) MakeDevice(dir_.File(d), kDevSize);
  }
  Stack* Open(const std::string& name, const std::vector<std::string>& lines) {
    Status s = MakeStack(dir_.File(name), lines);
    EXPECT_TRUE(s.ok()) << s.ToString();
    opened_ = OpenOrDie(dir_.File(name));
    return static_cast<Stack*>(opened_.get());
  }
  void Linear(const std::string& name, const std::string& dev, uint64_t off_sectors, uint64_t sectors) {
    ASSERT_TRUE(MakeStack(dir_.File(name), {"0 " + std::to_string(sectors) + " linear " + dev + " " +
                                                std::to_string(off_sectors)})
                    .ok());
  }
  // Random clean writes and reads, each checked against a model of the
  // whole stack read back through the level-by-level walk (ReadMcSafe).
  static void CheckAgainstModel(Stack& s, int rounds) {
    std::mt19937_64 rng(7);
    std::vector<uint8_t> model(s.size()), back(s.size()), buf;
    ASSERT_EQ(s.ReadMcSafe(0, model.data(), model.size()).value_or(SIZE_MAX), model.size());
    for (int i = 0; i < rounds; ++i) {
      uint64_t off = rng() % s.size(), len = 1 + rng() % std::min<uint64_t>(s.size() - off, 200 * 1024);
      buf.resize(len);
      for (uint8_t& b : buf) b = static_cast<uint8_t>(rng());
      ASSERT_TRUE(s.WriteClean(off, buf.data(), len)) << "write " << off << "+" << len;
      std::memcpy(model.data() + off, buf.data(), len);
      ASSERT_EQ(s.ReadMcSafe(0, back.data(), back.size()).value_or(SIZE_MAX), back.size());
      ASSERT_TRUE(back == model) << "after a clean write of " << off << "+" << len;
      std::vector<uint8_t> got(len);
      ASSERT_TRUE(s.ReadClean(off, got.data(), len)) << "read " << off << "+" << len;
      ASSERT_EQ(std::memcmp(got.data(), model.data() + off, len), 0) << "clean read of " << off << "+" << len;
    }
  }

  TempDir dir_;
  std::unique_ptr<dax::Device> opened_;
};

TEST_F(FlatMapTest, StripedOverLinearMatchesTheWalk) {
  Linear("l0", "d0", 64, 4096);
  Linear("l1", "d1", 0, 4096);
  Stack* s = Open("s", {"0 8192 striped 2 8 l0 0 l1 0"});
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->flattened());
  CheckAgainstModel(*s, 150);
}

TEST_F(FlatMapTest, OddChunksAndThreeStripesMatchTheWalk) {
  Linear("l0", "d0", 0, 3 * 1024);
  Linear("l1", "d1", 8, 3 * 1024);
  Linear("l2", "d2", 2048, 3 * 1024);
  Stack* s = Open("s", {"0 6912 striped 3 24 l0 8 l1 0 l2 24"});  // 12 KiB chunks
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->flattened());
  CheckAgainstModel(*s, 150);
}

// Linear windows of a striped stack that start on a row of its chunks, and
// a second segment on another device: still flat, across the segment edge.
TEST_F(FlatMapTest, LinearOverARowOfStripesMatchesTheWalk) {
  ASSERT_TRUE(MakeStack(dir_.File("st"), {"0 8192 striped 2 16 d0 0 d1 0"}).ok());
  Stack* s = Open("s", {"0 4096 linear st 64", "4096 2048 linear d2 8"});
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->flattened());
  CheckAgainstModel(*s, 150);
}

// What does not reduce takes the walk, with the same results.
TEST_F(FlatMapTest, StacksThatDoNotReduceWalkTheirLevels) {
  ASSERT_TRUE(MakeStack(dir_.File("st"), {"0 8192 striped 2 16 d0 0 d1 0"}).ok());
  Stack* off_row = Open("a", {"0 4096 linear st 8"});  // starts inside a row
  ASSERT_TRUE(off_row);
  EXPECT_FALSE(off_row->flattened());
  CheckAgainstModel(*off_row, 60);

  ASSERT_TRUE(MakeStack(dir_.File("s0"), {"0 4096 striped 2 8 d0 0 d1 0"}).ok());
  ASSERT_TRUE(MakeStack(dir_.File("s1"), {"0 4096 striped 1 8 d2 0"}).ok());
  Stack* nested = Open("b", {"0 8192 striped 2 16 s0 0 s1 0"});  // stripes over stripes
  ASSERT_TRUE(nested);
  EXPECT_FALSE(nested->flattened());
  CheckAgainstModel(*nested, 60);

  Stack* with_error = Open("c", {"0 64 linear d0 0", "64 64 error"});
  ASSERT_TRUE(with_error);
  EXPECT_FALSE(with_error->flattened());
}

// A stack that is one run of one device file hands CleanPath that file's
// memory (Device::DirectLayoutOf), offset by where the stack starts, and
// bounded by the stack, not the file; striped stacks take the table.
TEST_F(FlatMapTest, CleanPathOverALinearStackCopiesStraightToItsFile) {
  Linear("l0", "d0", 2048, 4096);  // 2 MiB of d0, from 1 MiB on
  Stack* s = Open("s", {"0 4096 linear l0 0"});
  ASSERT_TRUE(s && s->flattened());
  dax::CleanPath path(*s);
  uint64_t vouched = path.Vouch(0, s->size());
  ASSERT_NE(vouched, dax::CleanPath::kNoEpoch);
  std::vector<uint8_t> buf(P, 0xa7);
  ASSERT_TRUE(path.Write(3 * P, buf.data(), P, vouched));
  auto d0 = media::PmemDevice::Open(dir_.File("d0"));
  ASSERT_TRUE(d0.ok());
  EXPECT_EQ((*d0)->data()[2048 * kSectorSize + 3 * P], 0xa7);
  EXPECT_EQ((*d0)->data()[2048 * kSectorSize + 4 * P], 0);
  std::vector<uint8_t> got(P);
  ASSERT_TRUE(path.Read(3 * P, got.data(), P, dax::CleanPath::kNoEpoch));
  EXPECT_EQ(got, buf);
  EXPECT_EQ(path.Vouch(s->size() - P, 2 * P), dax::CleanPath::kNoEpoch) << "past the stack, within the file";
  EXPECT_FALSE(path.Read(s->size(), got.data(), P, dax::CleanPath::kNoEpoch));
  // Poison under the stack moves the file's epoch: the vouched copy is refused.
  media::InjectOptions latent;
  latent.notify = false;
  ASSERT_TRUE((*d0)->Inject(2048 + 3 * 8 + 1, 1, latent).ok());
  EXPECT_FALSE(path.Read(3 * P, got.data(), P, vouched));
  EXPECT_TRUE(path.Read(5 * P, got.data(), P, vouched));

  Linear("l1", "d1", 0, 4096);
  Stack* striped = Open("t", {"0 8192 striped 2 8 l0 0 l1 0"});
  ASSERT_TRUE(striped && striped->flattened());
  EXPECT_EQ(dax::CleanPath(*striped).Vouch(0, P), dax::CleanPath::kNoEpoch);
}

// The clean test is made on the device file under each chunk: latent poison
// refuses reads of its page only, known poison refuses writes too.
TEST_F(FlatMapTest, PoisonBelowRefusesOnlyTheChunksOverIt) {
  Linear("l0", "d0", 0, 4096);
  Linear("l1", "d1", 0, 4096);
  Stack* s = Open("s", {"0 8192 striped 2 8 l0 0 l1 0"});
  ASSERT_TRUE(s && s->flattened());
  auto d1 = media::PmemDevice::Open(dir_.File("d1"));
  ASSERT_TRUE(d1.ok());
  // d1's page 5 is the stack's chunk 11 (stripe 1, row 5).
  media::InjectOptions latent;
  latent.notify = false;
  ASSERT_TRUE((*d1)->Inject(5 * 8 + 3, 1, latent).ok());
  std::vector<uint8_t> buf(64 * P, 0x5a);
  EXPECT_FALSE(s->ReadClean(0, buf.data(), 64 * P)) << "a stripe over the poisoned page";
  EXPECT_FALSE(s->ReadClean(11 * P + 100, buf.data(), 10));
  EXPECT_TRUE(s->ReadClean(0, buf.data(), 11 * P));
  EXPECT_TRUE(s->ReadClean(12 * P, buf.data(), 52 * P));
  EXPECT_TRUE(s->ReadClean(10 * P, buf.data(), P)) << "the same row on the other stripe";
  EXPECT_TRUE(s->WriteClean(0, buf.data(), 64 * P)) << "latent poison does not refuse a write";
  // The careful path reads up to the poisoned line and makes it known.
  auto n = dax::ReadAt(*s, 0, buf.data(), 64 * P);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 11 * P + 3 * kSectorSize);
  std::vector<uint8_t> other(8 * P, 0xa5), before(P), after(P);
  ASSERT_TRUE(s->ReadClean(8 * P, before.data(), P));
  ASSERT_NE(before[0], 0xa5);
  EXPECT_FALSE(s->WriteClean(8 * P, other.data(), 8 * P)) << "known poison refuses a write";
  ASSERT_TRUE(s->ReadClean(8 * P, after.data(), P));
  EXPECT_EQ(after, before) << "a refused write changed the clean stripe's chunk";
  EXPECT_TRUE(s->WriteClean(12 * P, buf.data(), 8 * P));
}

TEST_F(FlatMapTest, RangesBeyondTheStackAreRefused) {
  Linear("l0", "d0", 0, 4096);
  Linear("l1", "d1", 0, 4096);
  Stack* s = Open("s", {"0 8192 striped 2 8 l0 0 l1 0"});
  ASSERT_TRUE(s && s->flattened());
  std::vector<uint8_t> buf(2 * P);
  EXPECT_FALSE(s->ReadClean(s->size() - P, buf.data(), 2 * P));
  EXPECT_FALSE(s->WriteClean(s->size() + 1, buf.data(), 1));
  EXPECT_TRUE(s->ReadClean(s->size() - P, buf.data(), P));
}

// A device file truncated under the stack gives zero pages where it lost
// its bytes (the shrink guard): the flat copy fails instead of handing
// them out, and the careful path says why.
TEST_F(FlatMapTest, ADeviceFileThatShrankFailsTheCopy) {
  Linear("l0", "d0", 0, 4096);
  Linear("l1", "d1", 0, 4096);
  Stack* s = Open("s", {"0 8192 striped 2 8 l0 0 l1 0"});
  ASSERT_TRUE(s && s->flattened());
  std::vector<uint8_t> buf(64 * P, 0x5a);
  ASSERT_TRUE(s->WriteClean(0, buf.data(), buf.size()));
  auto d1 = media::PmemDevice::Open(dir_.File("d1"));
  ASSERT_TRUE(d1.ok());
  off_t keep = static_cast<off_t>((*d1)->geometry().data_off + 4 * P);
  d1->reset();
  ASSERT_EQ(truncate(dir_.File("d1").c_str(), keep), 0);
  EXPECT_FALSE(s->ReadClean(0, buf.data(), 64 * P)) << "a stripe over the lost pages";
  EXPECT_FALSE(s->ReadClean(9 * P, buf.data(), P)) << "one chunk on the lost pages";
  auto r = dax::ReadAt(*s, 0, buf.data(), 64 * P);
  EXPECT_FALSE(r.ok() && *r == 64 * P) << "the careful path must not read zero pages as data";
}

}  // namespace
}  // namespace daxguard::dm
