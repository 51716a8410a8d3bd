// CleanPath: a vouched range is copied without the test only while the
// device's clean epoch holds; poison or a known error added anywhere, by any
// handle of the device file, sends the next copy back to the test.
#include "dax/clean_path.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "common/test_util.h"
#include "dax_test_util.h"

namespace daxguard::dax {
namespace {

using daxguard::testing::TempDir;
constexpr uint64_t P = kPageSize;

class CleanPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dax_ = testing::NewPmemDax(dir_.File("dev"), 4ull << 20);
    ASSERT_TRUE(dax_);
    std::vector<uint8_t> data(dax_->size(), 0x3c);
    ASSERT_TRUE(dax_->Write(0, data.data(), data.size()).ok());
    // Another handle on the file, as another process would have.
    auto other = media::PmemDevice::Open(dir_.File("dev"));
    ASSERT_TRUE(other.ok()) << other.status().ToString();
    other_ = std::move(other).value();
  }
  static media::InjectOptions Latent() {
    media::InjectOptions o;
    o.notify = false;
    return o;
  }

  TempDir dir_;
  std::unique_ptr<PmemDax> dax_;
  std::unique_ptr<media::PmemDevice> other_;
};

TEST_F(CleanPathTest, VouchesOnlyForCleanRangesOfDeviceFiles) {
  CleanPath path(*dax_);
  EXPECT_NE(path.Vouch(0, 64 * P), CleanPath::kNoEpoch);
  ASSERT_TRUE(other_->Inject(10 * 8 + 1, 1, Latent()).ok());
  EXPECT_EQ(path.Vouch(0, 64 * P), CleanPath::kNoEpoch) << "latent poison in the range";
  EXPECT_NE(path.Vouch(11 * P, 64 * P), CleanPath::kNoEpoch);
  ASSERT_TRUE(other_->Inject(100 * 8, 1, {}).ok());
  EXPECT_EQ(path.Vouch(64 * P, 64 * P), CleanPath::kNoEpoch) << "a known error in the range";
  EXPECT_EQ(path.Vouch(dax_->size() - P, 2 * P), CleanPath::kNoEpoch) << "beyond the end";
}

TEST_F(CleanPathTest, AVouchedReadFallsBackToTheTestOnceTheEpochMoves) {
  CleanPath path(*dax_);
  uint64_t vouched = path.Vouch(0, 64 * P);
  ASSERT_NE(vouched, CleanPath::kNoEpoch);
  std::vector<uint8_t> buf(P, 0);
  ASSERT_TRUE(path.Read(5 * P, buf.data(), P, vouched));
  EXPECT_EQ(buf[0], 0x3c);
  // Latent poison under the vouched range, put there by the other handle:
  // the page is refused, its neighbours still read.
  ASSERT_TRUE(other_->Inject(5 * 8 + 2, 1, Latent()).ok());
  std::memset(buf.data(), 0, P);
  EXPECT_FALSE(path.Read(5 * P, buf.data(), P, vouched));
  EXPECT_EQ(buf[0], 0) << "nothing copied";
  EXPECT_TRUE(path.Read(6 * P, buf.data(), P, vouched));
  EXPECT_EQ(buf[0], 0x3c);
  // A known error elsewhere refuses writes only where it is.
  ASSERT_TRUE(other_->Inject(40 * 8, 1, {}).ok());
  EXPECT_FALSE(path.Write(40 * P, buf.data(), P, vouched));
  EXPECT_TRUE(path.Write(41 * P, buf.data(), P, vouched));
}

TEST_F(CleanPathTest, KnownErrorsAndScrubMoveTheEpoch) {
  CleanPath path(*dax_);
  uint64_t e0 = path.Vouch(0, P);
  std::vector<uint8_t> buf(P, 1);
  ASSERT_TRUE(dax_->Write(0, buf.data(), P).ok());
  ASSERT_EQ(dax_->ReadMcSafe(0, buf.data(), P).value_or(SIZE_MAX), P);
  EXPECT_EQ(path.Vouch(0, P), e0) << "plain reads and writes leave it";
  ASSERT_TRUE(other_->AddKnown({{200 * 8, 8}}).ok());
  uint64_t e1 = path.Vouch(0, P);
  EXPECT_NE(e1, e0) << "a known error recorded";
  ASSERT_TRUE(other_->Inject(300 * 8, 1, Latent()).ok());
  uint64_t e2 = path.Vouch(0, P);
  EXPECT_NE(e2, e1) << "latent poison";
  ASSERT_TRUE(other_->BeginScrub(1).ok());
  ASSERT_TRUE(other_->RunScrub().ok());
  EXPECT_NE(path.Vouch(0, P), e2) << "scrub made the latent poison known";
}

}  // namespace
}  // namespace daxguard::dax
