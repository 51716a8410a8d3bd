// Replacing a file all or nothing: CreateUnnamed writes a file no path
// names, Publish names it in one log transaction.
#include <sys/wait.h>
#include <unistd.h>

#include "fs/fs_fixture.h"
#include "fs/fsck.h"

namespace daxguard::fs {
namespace {

class PublishTest : public FsTest {
 protected:
  uint64_t FreeBytes() {
    uint64_t free = 0;
    auto who = fs_->Who(0, kDevSize);
    EXPECT_TRUE(who.ok()) << who.status().message();
    for (const OwnerInfo& o : *who)
      if (o.kind == OwnerInfo::Kind::kFree) free += o.length;
    return free;
  }
  std::vector<uint8_t> Content(const std::string& path) {
    auto f = OpenFile(path);
    return f ? ReadAll(*f, 0, f->Stat()->attr.size) : std::vector<uint8_t>{};
  }
  void ExpectClean() {
    fs_.reset();
    auto r = Fsck(*dev_, false);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(r->problems.empty()) << r->problems.front();
    Mount();
  }
};

TEST_F(PublishTest, TheOldFileStaysUntilPublishReplacesItWhole) {
  auto old = Create("/f");
  Fill(*old, 0, 3 * 4096, 0x11);
  old.reset();
  uint64_t free = FreeBytes();
  auto nf = fs_->CreateUnnamed("/f");
  ASSERT_TRUE(nf.ok()) << nf.status().message();
  Fill(**nf, 0, 4096, 0x22);
  EXPECT_EQ(Content("/f"), std::vector<uint8_t>(3 * 4096, 0x11)) << "unpublished";
  auto ls = fs_->ReadDir("/");
  ASSERT_EQ(ls->size(), 1u) << "the unnamed file is in no directory";
  ASSERT_TRUE(fs_->Publish(**nf, "/f").ok());
  EXPECT_EQ(Content("/f"), std::vector<uint8_t>(4096, 0x22));
  EXPECT_EQ(fs_->Stat("/f")->attr.nlink, 1u);
  EXPECT_EQ(FreeBytes(), free + 2 * 4096) << "the replaced file's blocks are free";
  EXPECT_EQ(fs_->Publish(**nf, "/g").err(), EINVAL) << "a published file is named already";
  nf->reset();
  Remount();
  EXPECT_EQ(Content("/f"), std::vector<uint8_t>(4096, 0x22));
  ExpectClean();
}

TEST_F(PublishTest, AnUnpublishedFileIsFreedWhenClosed) {
  uint64_t free = FreeBytes();
  auto nf = fs_->CreateUnnamed("/new");
  ASSERT_TRUE(nf.ok());
  Fill(**nf, 0, 1 << 20, 0x33);
  EXPECT_LT(FreeBytes(), free);
  nf->reset();
  EXPECT_EQ(FreeBytes(), free);
  EXPECT_EQ(fs_->Stat("/new").status().err(), ENOENT);
  ExpectClean();
}

TEST_F(PublishTest, ACrashBeforePublishLeavesNothingAfterTheNextMount) {
  auto old = Create("/f");
  Fill(*old, 0, 4096, 0x11);
  old.reset();
  uint64_t free = FreeBytes();
  fs_.reset();
  dev_.reset();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // mounts, writes an unnamed file, and dies without closing it
    auto dev = dax::PmemDax::Open(path_);
    if (!dev.ok()) _exit(2);
    auto fs = Filesystem::Mount(**dev);
    if (!fs.ok()) _exit(2);
    auto nf = (*fs)->CreateUnnamed("/f");
    std::vector<uint8_t> buf(1 << 20, 0x44);
    if (!nf.ok() || !(*nf)->Write(0, buf.data(), buf.size()).ok()) _exit(3);
    _exit(0);
  }
  int status;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  OpenDevice();
  auto check = Fsck(*dev_, false);
  ASSERT_TRUE(check.ok()) << check.status().message();
  EXPECT_TRUE(check->problems.empty()) << "an orphan is no inconsistency: " << check->problems.front();
  Mount();
  EXPECT_EQ(Content("/f"), std::vector<uint8_t>(4096, 0x11));
  EXPECT_EQ(FreeBytes(), free) << "the orphan is freed at mount";
  ExpectClean();
}

TEST_F(PublishTest, OnlyARegularFileOrNothingMayBeReplaced) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  EXPECT_EQ(fs_->CreateUnnamed("/d").status().err(), EISDIR);
  EXPECT_EQ(fs_->CreateUnnamed("/missing/f").status().err(), ENOENT);
  EXPECT_EQ(fs_->CreateUnnamed("/").status().err(), EINVAL);
  auto nf = fs_->CreateUnnamed("/f");
  ASSERT_TRUE(nf.ok());
  ASSERT_TRUE(fs_->Mkdir("/f").ok());  // the name turned into a directory meanwhile
  EXPECT_EQ(fs_->Publish(**nf, "/f").err(), EISDIR);
  EXPECT_TRUE(fs_->Publish(**nf, "/d/f").ok());
  EXPECT_TRUE(fs_->Stat("/d/f").ok());
}

TEST_F(PublishTest, TheNewFileTakesTheModeOfTheFileItReplaces) {
  ASSERT_TRUE(fs_->Open("/f", kCreate, 0600).ok());
  auto nf = fs_->CreateUnnamed("/f", 0644);
  ASSERT_TRUE(nf.ok());
  ASSERT_TRUE(fs_->Publish(**nf, "/f").ok());
  EXPECT_EQ(fs_->Stat("/f")->attr.mode & 07777, 0600u);
  auto g = fs_->CreateUnnamed("/g", 0640);
  ASSERT_TRUE(g.ok());
  ASSERT_TRUE(fs_->Publish(**g, "/g").ok());
  EXPECT_EQ(fs_->Stat("/g")->attr.mode & 07777, 0640u);
}

TEST_F(PublishTest, ReplacingOneNameLeavesTheFilesOtherLinks) {
  auto old = Create("/f");
  Fill(*old, 0, 4096, 0x11);
  old.reset();
  ASSERT_TRUE(fs_->Link("/f", "/other").ok());
  auto nf = fs_->CreateUnnamed("/f");
  Fill(**nf, 0, 10, 0x22);
  ASSERT_TRUE(fs_->Publish(**nf, "/f").ok());
  EXPECT_EQ(Content("/other"), std::vector<uint8_t>(4096, 0x11));
  EXPECT_EQ(fs_->Stat("/other")->attr.nlink, 1u);
  ExpectClean();
}

}  // namespace
}  // namespace daxguard::fs
