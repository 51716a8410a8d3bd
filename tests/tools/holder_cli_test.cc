// The device's holder against the commands of other processes: formatting
// and raw writes are refused while a filesystem holds the device, and
// errors no holder was told of outlive a clear.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "dax/pmem_dax.h"
#include "fs/filesystem.h"
#include "tools/cli_harness.h"

namespace daxguard::testing {
namespace {

// A process with the filesystem on `dev` mounted and /held open: writes
// 8 KiB of 0x5a and fsyncs, says so on `ready`, waits for a byte on `go`,
// then writes 4 KiB of 0x6b after it and exits 0 only if all of it reads
// back. Runs in the forked child: nothing of the test runs there.
[[noreturn]] void HoldAndWrite(const std::string& dev, int ready, int go) {
  int rc = 1;
  {
    auto d = dax::PmemDax::Open(dev);
    auto f = d.ok() ? fs::Filesystem::Mount(**d) : Result<std::unique_ptr<fs::Filesystem>>(d.status());
    auto file = f.ok() ? (*f)->Open("/held", fs::kCreate) : Result<std::unique_ptr<fs::File>>(f.status());
    std::vector<uint8_t> a(8192, 0x5a), b(4096, 0x6b), back(12288);
    if (file.ok() && (*file)->Write(0, a.data(), a.size()).ok() && (*file)->Fsync().ok()) {
      char c = 'r';
      if (write(ready, &c, 1) == 1 && read(go, &c, 1) == 1 && (*file)->Write(8192, b.data(), b.size()).ok() &&
          (*file)->Fsync().ok()) {
        auto r = (*file)->Read(0, back.data(), back.size());
        bool same = r.ok() && *r == back.size() && std::equal(a.begin(), a.end(), back.begin()) &&
                    std::equal(b.begin(), b.end(), back.begin() + 8192);
        rc = same ? 0 : 4;
      }
    }
  }
  _exit(rc);
}

class HolderCli : public CliHarness {
 protected:
  void SetUp() override {
    CliHarness::SetUp();
    dev_ = Path("pmem0");
    ASSERT_EQ(Dg({"create-device", dev_, "--size", "32m"}).rc, 0);
    CliRun r = Dg({"mkfs", dev_});
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  std::string F(const std::string& p) { return dev_ + ":" + p; }
  static void ExpectRefused(const CliRun& r, const std::string& what) {
    EXPECT_NE(r.rc, 0) << r.out;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  std::string dev_;
};

TEST_F(HolderCli, FormatAndRawWritesAreRefusedWhileAnotherProcessHoldsTheDevice) {
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) HoldAndWrite(dev_, ready[1], go[0]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1) << "the holder did not get going";
  std::string held = "held by pid " + std::to_string(pid);

  ExpectRefused(Dg({"mkfs", "-f", dev_}), held);
  ExpectRefused(Dg({"mkfs", dev_}), "");
  ExpectRefused(Dg({"io", dev_, "-c", "pwrite -S 0 0 4k"}), held);
  ExpectRefused(Dg({"io", dev_, "-c", "pread 0 4k", "-c", "zero 0 4k"}), held);
  ExpectRefused(Dg({"io", dev_, "-c", "mmap 0 4096", "-c", "mwrite -S 0"}), held);
  ExpectRefused(Dg({"io", F("/held"), "-c", "pwrite 0 4k"}), held);
  ExpectRefused(Dg({"fsck", "--repair", dev_}), held);
  CliRun raw_read = Dg({"io", dev_, "-c", "pread 0 4k", "-c", "mmap -r 0 4096", "-c", "mread"});
  EXPECT_EQ(raw_read.rc, 0) << "raw reads stay allowed: " << raw_read.err;

  ASSERT_EQ(write(go[1], &c, 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the holder lost its data (status " << status << ")";
  CliRun after = Dg({"io", F("/held"), "-c", "pread -v 8190 4", "-c", "stat"});
  ASSERT_EQ(after.rc, 0) << after.err;
  EXPECT_NE(after.out.find("00001ffe:  5a 5a 6b 6b"), std::string::npos) << after.out;
  EXPECT_NE(after.out.find("stat.size = 12288"), std::string::npos) << after.out;
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0);
}

TEST_F(HolderCli, AnErrorClearedBeforeAnyMountIsDamageAfterIt) {
  ASSERT_EQ(Dg({"io", "-f", F("/x"), "-c", "pwrite -S 0x61 0 16k"}).rc, 0);
  uint64_t sector = SectorOf(F("/x"), 4096);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", std::to_string(sector)}).rc, 0);  // unmounted: nobody told
  CliRun clear = Dg({"clear-errors", dev_});
  ASSERT_EQ(clear.rc, 0) << clear.err;
  EXPECT_NE(clear.out.find("1 of them no holder had been told of yet"), std::string::npos) << clear.out;
  EXPECT_EQ(DgJson({"list", dev_})["badblock_count"], 0) << "the media is clear";

  CliRun lost = Dg({"io", F("/x"), "-c", "pread 4096 512"});
  EXPECT_NE(lost.rc, 0) << "the cleared bytes read as zeroes: " << lost.out;
  EXPECT_NE(lost.err.find("Input/output error"), std::string::npos) << lost.err;
  EXPECT_EQ(Dg({"io", F("/x"), "-c", "pread 0 4096", "-c", "pread 8192 8192"}).rc, 0) << "the rest reads";
  nlohmann::json h = DgJson({"health", dev_});
  ASSERT_EQ(h["damaged_files"].size(), 1u) << h.dump();
  EXPECT_EQ(h["damaged_files"][0]["path"], "/x");
  EXPECT_EQ(h["damaged_files"][0]["damaged"][0]["offset"], 4096);

  CliRun rewrite = Dg({"io", F("/x"), "-c", "pwrite -S 0x62 4096 4096", "-c", "pread -v 4096 4"});
  ASSERT_EQ(rewrite.rc, 0) << rewrite.err;
  EXPECT_NE(rewrite.out.find("00001000:  62 62 62 62"), std::string::npos) << rewrite.out;
  EXPECT_TRUE(DgJson({"health", dev_})["damaged_files"].empty());
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0);
}

}  // namespace
}  // namespace daxguard::testing
