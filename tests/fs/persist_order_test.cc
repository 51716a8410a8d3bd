// daxfs keeps the persistence contract: each operation but a fast store in
// place leaves nothing it stored un-written-back; a metadata operation,
// fsync and unmount return with everything fenced (durable); and no log
// record or superblock is stored while data it may point to is not yet
// durable. The device below is a PersistTracker, which sees every store.
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <string>

#include "common/test_util.h"
#include "dax/dax_test_util.h"
#include "dax/pmem_dax.h"
#include "fs/filesystem.h"
#include "fs/persist_tracker.h"

namespace daxguard::fs {
namespace {

class PersistOrderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = dax::testing::NewPmemDax(dir_.File("pmem0"), 32ull << 20);
    ASSERT_NE(base_, nullptr);
    Geometry g = GeometryFor(base_->size());
    dev_ = std::make_unique<PersistTracker>(*base_, [g](uint64_t off) { return g.IsMeta(off / kBlockSize); });
    ASSERT_TRUE(Filesystem::Mkfs(*dev_).ok());
    ExpectDurable("mkfs");
    auto f = Filesystem::Mount(*dev_);
    ASSERT_TRUE(f.ok()) << f.status().message();
    fs_ = std::move(f).value();
  }
  void TearDown() override {
    fs_.reset();
    dev_.reset();
    base_.reset();
  }
  // Everything stored is written back; with `fenced`, durable too; and no
  // metadata went down ahead of its data.
  void Expect(const std::string& what, bool fenced) {
    EXPECT_TRUE(dev_->dirty().empty()) << what << ": " << dev_->dirty().Total() << " bytes stored, not written back";
    if (fenced) {
      EXPECT_TRUE(dev_->pending().empty()) << what << ": " << dev_->pending().Total() << " bytes not fenced";
    }
    for (const std::string& v : dev_->violations()) ADD_FAILURE() << what << ": " << v;
  }
  void ExpectDurable(const std::string& what) { Expect(what, true); }
  std::unique_ptr<File> Create(const std::string& path) {
    auto f = fs_->Open(path, kCreate);
    EXPECT_TRUE(f.ok()) << f.status().message();
    return f.ok() ? std::move(f).value() : nullptr;
  }

  daxguard::testing::TempDir dir_;
  std::unique_ptr<dax::PmemDax> base_;
  std::unique_ptr<PersistTracker> dev_;
  std::unique_ptr<Filesystem> fs_;
};

TEST_F(PersistOrderTest, MetadataOperationsAreDurableWhenTheyReturn) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  ExpectDurable("mkdir");
  auto f = Create("/d/a");
  ASSERT_TRUE(f);
  ExpectDurable("create");
  f.reset();
  ASSERT_TRUE(fs_->Rename("/d/a", "/d/b").ok());
  ExpectDurable("rename");
  ASSERT_TRUE(fs_->Link("/d/b", "/c").ok());
  ExpectDurable("link");
  ASSERT_TRUE(fs_->Unlink("/d/b").ok());
  ExpectDurable("unlink");
  ASSERT_TRUE(fs_->RemoveTree("/d").ok());
  ExpectDurable("rm -r");
  EXPECT_GT(dev_->fences(), 5u);
}

TEST_F(PersistOrderTest, DataIsDurableBeforeTheRecordThatNamesIt) {
  auto f = Create("/f");
  ASSERT_TRUE(f);
  std::string data(3 * kBlockSize + 100, 'x');
  ASSERT_TRUE(f->Write(0, data.data(), data.size()).ok());  // fills holes, then commits
  Expect("write into holes", false);
  ASSERT_TRUE(f->Write(50, "overwrite", 9).ok());  // in place, no commit
  Expect("overwrite in place", false);
  ASSERT_TRUE(f->Fsync().ok());
  ExpectDurable("fsync");
  auto g = Create("/g");
  ASSERT_TRUE(g);
  ASSERT_TRUE(g->CloneFrom(*f, 0, 0, 0).ok());
  ExpectDurable("reflink");
  ASSERT_TRUE(g->Write(kBlockSize + 10, "cow", 3).ok());  // copy-on-write of a shared block
  Expect("copy-on-write", false);
  ASSERT_TRUE(f->Fallocate(kFallocPunchHole | kFallocKeepSize, 0, kBlockSize).ok());
  ExpectDurable("punch hole");
  ASSERT_TRUE(f->Fallocate(kFallocZeroRange, kBlockSize, 2 * kBlockSize).ok());
  ExpectDurable("zero range");
  ASSERT_TRUE(f->Truncate(kBlockSize + 7).ok());
  ExpectDurable("truncate");
  ASSERT_TRUE(g->Fsync().ok());
  ExpectDurable("fsync of the clone");
}

// The fast path writes back as it stores (non-temporal stores): nothing it
// stores is left dirty, and fsync (or unmount) has only to fence.
TEST_F(PersistOrderTest, FastStoresAreWrittenBackAndDurableAfterFsyncAndUnmount) {
  auto f = Create("/f");
  ASSERT_TRUE(f);
  std::string data(4 * kBlockSize, 'a');
  ASSERT_TRUE(f->Write(0, data.data(), data.size()).ok());  // slow: fills holes, then the fast map
  Expect("write into holes", false);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(f->Write(kBlockSize + 64 * i, "fast", 4).ok());
  EXPECT_TRUE(dev_->dirty().empty()) << "fast stores left dirty";
  ASSERT_FALSE(dev_->pending().empty()) << "the overwrites did not take the fast path";
  for (const std::string& v : dev_->violations()) ADD_FAILURE() << "fast stores: " << v;
  ASSERT_TRUE(f->Fsync().ok());
  ExpectDurable("fsync after fast stores");
  // fsync's commit made the fast map stale: the first write refills it.
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(f->Write(2 * kBlockSize, "again", 5).ok());
  ASSERT_FALSE(dev_->pending().empty()) << "the overwrite did not take the fast path";
  f.reset();
  fs_.reset();
  ExpectDurable("unmount after fast stores");
}

// What each common operation pays for durability, in fences and
// write-backs: a bound each, so a change that adds some shows here.
TEST_F(PersistOrderTest, FencesAndWriteBacksPerOperation) {
  struct Cost {
    uint64_t fences, write_backs;
  };
  auto measure = [&](const std::function<void()>& op) {
    uint64_t f0 = dev_->fences(), w0 = dev_->write_backs();
    op();
    return Cost{dev_->fences() - f0, dev_->write_backs() - w0};
  };
  std::string page(kBlockSize, 'p');
  auto f = Create("/f");
  ASSERT_TRUE(f);
  ASSERT_TRUE(f->Write(0, page.data(), page.size()).ok());
  ASSERT_TRUE(f->Fsync().ok());
  Cost overwrite_fsync = measure([&] {
    ASSERT_TRUE(f->Write(0, page.data(), page.size()).ok());
    ASSERT_TRUE(f->Fsync().ok());
  });
  Cost create_write_fsync = measure([&] {
    auto g = Create("/g");
    ASSERT_TRUE(g);
    ASSERT_TRUE(g->Write(0, page.data(), page.size()).ok());
    ASSERT_TRUE(g->Fsync().ok());
  });
  Cost rename = measure([&] { ASSERT_TRUE(fs_->Rename("/g", "/h").ok()); });
  std::printf("fences / write-backs per operation: 4 KiB overwrite + fsync %lu / %lu, create + 4 KiB write + fsync "
              "%lu / %lu, rename %lu / %lu\n",
              overwrite_fsync.fences, overwrite_fsync.write_backs, create_write_fsync.fences,
              create_write_fsync.write_backs, rename.fences, rename.write_backs);
  EXPECT_LE(overwrite_fsync.fences, 2u);
  EXPECT_LE(create_write_fsync.fences, 8u);
  EXPECT_LE(rename.fences, 2u);
  EXPECT_LE(rename.write_backs, 2u);
}

TEST_F(PersistOrderTest, UnmountAndMountLeaveEverythingDurable) {
  auto f = Create("/f");
  ASSERT_TRUE(f);
  std::string data(10000, 'y');
  ASSERT_TRUE(f->Write(0, data.data(), data.size()).ok());
  f.reset();
  fs_.reset();
  ExpectDurable("unmount");
  auto m = Filesystem::Mount(*dev_);
  ASSERT_TRUE(m.ok()) << m.status().message();
  fs_ = std::move(m).value();
  ExpectDurable("mount");
}

}  // namespace
}  // namespace daxguard::fs
