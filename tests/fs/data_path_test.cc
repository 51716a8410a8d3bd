// The data path against a core of its own: file handles need nothing of
// the filesystem but DataPath's operations. This core has no log and no
// namespace; it applies commits to a State and records what it was asked.
#include "fs/data_path.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <mutex>

#include "common/test_util.h"
#include "dax/dax_test_util.h"
#include "dax/pmem_dax.h"
#include "fs/filesystem.h"

namespace daxguard::fs {
namespace {

class MemoryCore : public DataPath {
 public:
  explicit MemoryCore(dax::Device& dev) : DataPath(dev), dev_(dev), state_(GeometryFor(dev.size())) {
    Attr a;
    a.mode = S_IFREG | 0644;
    a.nlink = 1;
    EXPECT_TRUE(state_.Apply(Op::SetInode(kIno, a)).ok());
  }
  static constexpr uint64_t kIno = 2;

  dax::Device& device() override { return dev_; }
  State& state() override { return state_; }
  Status Writable() const override { return writable_ ? Status::Ok() : Status::Error(EROFS, "read-only core"); }
  bool gone() const override { return false; }
  Status Commit(std::vector<Op> ops) override {
    ++commits_;
    return state_.ApplyAll(ops);
  }
  std::vector<Op> FreeBlocksOps(Inode* in, uint64_t fblk, uint64_t len) override {
    return {Op::Unmap(in->ino, fblk, len)};
  }
  void OpenInode(uint64_t) override { ++open_; }
  void CloseInode(uint64_t) override { --open_; }
  void BeginOp() override { mu_.lock(); }
  void EndOp() override { mu_.unlock(); }

  dax::Device& dev_;
  State state_;
  std::mutex mu_;
  bool writable_ = true;
  int commits_ = 0, open_ = 0;
};

class DataPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dev_ = dax::testing::NewPmemDax(dir_.File("pmem0"), 32ull << 20);
    ASSERT_NE(dev_, nullptr);
    core_ = std::make_unique<MemoryCore>(*dev_);
  }
  void TearDown() override {
    core_.reset();
    dev_.reset();
  }
  daxguard::testing::TempDir dir_;
  std::unique_ptr<dax::Device> dev_;
  std::unique_ptr<MemoryCore> core_;
};

TEST_F(DataPathTest, WritesReachTheCoreAsCommitsAndReadBack) {
  auto f = core_->NewHandle(MemoryCore::kIno);
  std::vector<uint8_t> data(10000), back(10000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  auto w = f->Write(100, data.data(), data.size());
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_GT(core_->commits_, 0);
  const Inode* in = core_->state_.Find(MemoryCore::kIno);
  EXPECT_EQ(in->attr.size, 10100u);
  EXPECT_FALSE(in->extents.empty());
  auto r = f->Read(100, back.data(), back.size());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, back.size());
  EXPECT_EQ(back, data);
}

TEST_F(DataPathTest, ARefusingCoreTakesNoChangeButServesReads) {
  auto f = core_->NewHandle(MemoryCore::kIno);
  uint8_t b[4096] = {1, 2, 3};
  ASSERT_TRUE(f->Write(0, b, sizeof b).ok());
  int before = core_->commits_;
  core_->writable_ = false;
  core_->Quiesce();  // as the core does whenever it stops taking writes
  auto w = f->Write(0, b, sizeof b);
  EXPECT_EQ(w.status().err(), EROFS);
  EXPECT_EQ(f->Truncate(0).err(), EROFS);
  EXPECT_EQ(core_->commits_, before);
  uint8_t back[4096];
  auto r = f->Read(0, back, sizeof back);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(back[2], 3);
}

TEST_F(DataPathTest, HandlesHoldTheirInodeOpenUntilClosed) {
  auto a = core_->NewHandle(MemoryCore::kIno);
  auto b = core_->NewHandle(MemoryCore::kIno);
  EXPECT_EQ(core_->open_, 2);
  EXPECT_TRUE(core_->Holds(*a));
  a.reset();
  EXPECT_EQ(core_->open_, 1);
  b.reset();
  EXPECT_EQ(core_->open_, 0);
}

TEST_F(DataPathTest, AFilledFastMapMakesQuiesceStartANewGeneration) {
  auto f = core_->NewHandle(MemoryCore::kIno);
  uint8_t b[4096] = {};
  ASSERT_TRUE(f->Write(0, b, sizeof b).ok());
  core_->Quiesce();
  uint64_t gen = core_->data_gen(std::memory_order_relaxed);
  core_->Quiesce();  // nothing filled since: the generation stands
  EXPECT_EQ(core_->data_gen(std::memory_order_relaxed), gen);
  ASSERT_TRUE(f->Read(0, b, sizeof b).ok());  // a slow read refills the map
  core_->Quiesce();
  EXPECT_EQ(core_->data_gen(std::memory_order_relaxed), gen + 1);
}

TEST_F(DataPathTest, DamageNoticesGoToThatInodesHandlesOnly) {
  Attr a;
  a.mode = S_IFREG | 0644;
  a.nlink = 1;
  ASSERT_TRUE(core_->state_.Apply(Op::SetInode(3, a)).ok());
  auto mine = core_->NewHandle(MemoryCore::kIno), other = core_->NewHandle(3);
  std::vector<std::pair<uint64_t, uint64_t>> heard_mine, heard_other;
  mine->OnDamage([&](uint64_t off, uint64_t len) { heard_mine.emplace_back(off, len); });
  other->OnDamage([&](uint64_t off, uint64_t len) { heard_other.emplace_back(off, len); });
  std::vector<std::function<void()>> notices;
  core_->NoticeDamage(MemoryCore::kIno, 4096, 64, &notices);
  for (auto& n : notices) n();
  EXPECT_EQ(heard_mine, (std::vector<std::pair<uint64_t, uint64_t>>{{4096, 64}}));
  EXPECT_TRUE(heard_other.empty());
}

TEST_F(DataPathTest, HandlesLeftOpenFailCleanlyOnceDetached) {
  auto f = core_->NewHandle(MemoryCore::kIno);
  core_->DetachAll();
  uint8_t b[16] = {};
  EXPECT_EQ(f->Write(0, b, sizeof b).status().err(), EBADF);
  EXPECT_EQ(f->Read(0, b, sizeof b).status().err(), EBADF);
  EXPECT_FALSE(core_->Holds(*f));
}

}  // namespace
}  // namespace daxguard::fs
