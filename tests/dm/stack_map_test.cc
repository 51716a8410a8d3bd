// Mapping a stack: each contiguous run is placed from the device below it,
// labelled in the stack's offsets, and poison on a bottom device traps the
// stack page it backs.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstring>

#include "common/fault_probe.h"
#include "common/units.h"
#include "dax/mapping.h"
#include "dm_test_util.h"

namespace daxguard::dm {
namespace {

using namespace testing;  // NOLINT: the dm test helpers
using daxguard::testing::BusCatcher;
using daxguard::testing::BusFault;
using daxguard::testing::Probe;
constexpr uint64_t S = kSectorSize;
constexpr uint64_t P = kPageSize;

class StackMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeDevice(dir_.File("d0"), 8 * kMiB);
    MakeDevice(dir_.File("d1"), 8 * kMiB);
  }
  std::unique_ptr<dax::MappedRegion> MapAll(dax::Device& dev) {
    auto r = dax::MappedRegion::Reserve(dev.size(), false, "top");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    Status s = dev.MapInto(**r, 0, 0, dev.size(), 0);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return std::move(r).value();
  }

  TempDir dir_;
  BusCatcher catcher_;
};

TEST_F(StackMapTest, ThreeLevelsPlaceTheRightBytesAndTrapTheRightPage) {
  ASSERT_TRUE(MakeStack(dir_.File("l0"), {"0 8192 linear d0 4096"}).ok());
  ASSERT_TRUE(MakeStack(dir_.File("l1"), {"0 8192 linear d1 8192"}).ok());
  ASSERT_TRUE(MakeStack(dir_.File("top"), {"0 16384 striped 2 16 l0 0 l1 0"}).ok());
  auto top = OpenOrDie(dir_.File("top"));
  ASSERT_TRUE(top);
  std::vector<uint8_t> data(top->size());
  for (uint64_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + i / 4093);
  ASSERT_TRUE(top->Write(0, data.data(), data.size()).ok());
  auto region = MapAll(*top);
  ASSERT_TRUE(region);
  EXPECT_EQ(std::memcmp(region->addr(), data.data(), data.size()), 0);
  // Top chunk 5 (sectors 80..95, pages 10 and 11) is l1's chunk 2: d1 sectors 8192+32..
  auto d1 = media::PmemDevice::Open(dir_.File("d1"));
  ASSERT_TRUE(d1.ok());
  media::InjectOptions latent;
  latent.notify = false;
  ASSERT_TRUE((*d1)->Inject(8192 + 33, 1, latent).ok());
  uint8_t* hit = region->addr() + 81 * S + 7;
  dax::FaultReport rep;
  ASSERT_TRUE(Eventually([&] { return dax::DescribeFault(hit, &rep); }));
  EXPECT_STREQ(rep.name, "top");
  EXPECT_EQ(rep.offset, 81 * S + 7);
  EXPECT_EQ(rep.unit_offset, 10 * P);
  EXPECT_EQ(rep.unit_length, P);
  BusFault f = Probe(hit);
  EXPECT_TRUE(f.hit);
  EXPECT_EQ(f.code, BUS_MCEERR_AR);
  EXPECT_EQ(f.addr, hit);
  EXPECT_FALSE(Probe(region->addr() + 11 * P).hit);  // same chunk, other page
  EXPECT_FALSE(Probe(region->addr() + 9 * P).hit);   // the chunk before, on l0
}

TEST_F(StackMapTest, ErrorTargetFailsBeforeAnythingIsPlaced) {
  ASSERT_TRUE(MakeStack(dir_.File("s"), {"0 64 linear d0 0", "64 64 error", "128 64 linear d1 0"}).ok());
  auto s = OpenOrDie(dir_.File("s"));
  ASSERT_TRUE(s);
  auto r = dax::MappedRegion::Reserve(s->size(), false, "s");
  ASSERT_TRUE(r.ok());
  Status st = s->MapInto(**r, 0, 0, s->size(), 0);
  EXPECT_EQ(st.err(), EIO) << st.ToString();
  EXPECT_EQ(Probe((*r)->addr()).code, BUS_ADRERR);  // the linear run before it stayed unplaced
  EXPECT_TRUE(s->MapInto(**r, 128 * S, 128 * S, 64 * S, 128 * S).ok());
  EXPECT_FALSE(Probe((*r)->addr() + 128 * S).hit);
}

}  // namespace
}  // namespace daxguard::dm
