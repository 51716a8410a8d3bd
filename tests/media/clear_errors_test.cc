// clear-errors on the media: a cleared error no holder was told of stays
// owed to the next holder (PmemDevice::ClearErrors, Untold, RestoreUntold).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "media/pmem_device.h"

namespace daxguard::media {
namespace {

class ClearErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/daxguard-clear-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/pmem0";
    CreateOptions opt;
    opt.size = 8 << 20;
    auto d = PmemDevice::Create(path_, opt);
    ASSERT_TRUE(d.ok()) << d.status().message();
    dev_ = std::move(d).value();
  }
  void TearDown() override {
    dev_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    dev_.reset();
    auto d = PmemDevice::Open(path_);
    ASSERT_TRUE(d.ok()) << d.status().message();
    dev_ = std::move(d).value();
  }
  std::string dir_, path_;
  std::unique_ptr<PmemDevice> dev_;
};

TEST_F(ClearErrorsTest, AnErrorNobodyWasToldOfOutlivesTheClear) {
  ASSERT_TRUE(dev_->Inject(8, 1, {}).ok());   // known, nobody told
  ASSERT_TRUE(dev_->Inject(40, 2, {}).ok());
  ASSERT_TRUE(dev_->Acknowledge({40, 2, false}).ok());  // a holder heard of this one
  uint64_t untold = 0;
  ASSERT_TRUE(dev_->ClearErrors(0, 1 << 20, &untold).ok());
  EXPECT_EQ(untold, 1u);
  EXPECT_TRUE(dev_->BadBlocks().empty()) << "the media and its records are clear";
  EXPECT_FALSE(dev_->HasPoison(0, 1 << 20));
  EXPECT_EQ(dev_->Untold(), (std::vector<BadBlock>{{8, 1, false}})) << "only the error nobody heard of is owed";

  Reopen();  // the debt lives in the device file
  EXPECT_EQ(dev_->Untold().size(), 1u);
  dev_->RestoreUntold();
  EXPECT_TRUE(dev_->Untold().empty());
  EXPECT_EQ(dev_->Unacknowledged(), (std::vector<BadBlock>{{8, 1, false}})) << "known again, for the holder to hear";
  ASSERT_TRUE(dev_->ClearErrors(0, 1 << 20, &untold).ok());
  EXPECT_EQ(untold, 1u) << "still nobody told: still owed";
}

TEST_F(ClearErrorsTest, AClearThatFailsKeepsEverything) {
  ASSERT_TRUE(dev_->Inject(8, 1, {}).ok());
  uint64_t untold = 7;
  EXPECT_FALSE(dev_->ClearErrors(8 * 512 + 64, 256, &untold).ok()) << "misaligned";
  EXPECT_EQ(untold, 0u);
  EXPECT_EQ(dev_->BadBlocks().size(), 1u);
  EXPECT_TRUE(dev_->Untold().empty());
}

TEST_F(ClearErrorsTest, PoisonLeftInASectorKeepsItsRecordAndOwesNothing) {
  InjectOptions whole;
  whole.saturate = true;
  ASSERT_TRUE(dev_->Inject(8, 1, whole).ok());
  uint64_t untold = 0;
  ASSERT_TRUE(dev_->ClearErrors(8 * 512, 256, &untold).ok());  // half the sector
  EXPECT_EQ(untold, 0u);
  EXPECT_EQ(dev_->Unacknowledged().size(), 1u) << "the sector still holds poison";
  EXPECT_TRUE(dev_->Untold().empty());
}

}  // namespace
}  // namespace daxguard::media
