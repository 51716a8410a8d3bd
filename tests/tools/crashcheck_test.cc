// crashcheck as CI runs it: at least 10,000 distinct crash states of daxfs
// workloads (fewer under the sanitizers, which are ~10x slower), each
// checked by fsck, a mount and the model of what the tree may hold; none
// may fail. Also: the checker itself catches a filesystem that breaks its
// promises (a model that disagrees with what was run).
#include "tools/crash_check.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>

#include "dax/pmem_dax.h"
#include "tools/crash_model.h"
#include "tools/crash_workloads.h"

namespace daxguard::tools {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr uint64_t kStates = 1500;
#else
constexpr uint64_t kStates = 10000;
#endif

TEST(CrashCheck, EveryCrashStateIsConsistent) {
  CrashCheckOptions opt;
  opt.states = kStates;
  opt.seed = 20261206;
  opt.dir = ::testing::TempDir();
  auto r = RunCrashCheck(opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::printf("crashcheck: %llu workloads, %llu crash points, %llu states generated, %llu checked, %.1f s, %.0f/s\n",
              (unsigned long long)r->workloads, (unsigned long long)r->fences, (unsigned long long)r->generated,
              (unsigned long long)r->checked, r->seconds, r->checked / r->seconds);
  EXPECT_EQ(r->checked, kStates);
  EXPECT_EQ(r->failed, 0u);
  for (const std::string& f : r->failures) ADD_FAILURE() << f;
}

// The same workloads on daxfs made with parity: records and parity a crash
// left behind their data are recomputed from it at mount (the write-intent
// bitmap), so no block ever reads as not matching its checksum.
TEST(CrashCheck, EveryCrashStateOfAFilesystemWithParityIsConsistent) {
  CrashCheckOptions opt;
  opt.states = kStates / 4;
  opt.seed = 20261207;
  opt.dir = ::testing::TempDir();
  opt.protection = fs::DataProtection::kParity;
  auto r = RunCrashCheck(opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::printf("crashcheck (parity): %llu workloads, %llu states checked, %.1f s\n", (unsigned long long)r->workloads,
              (unsigned long long)r->checked, r->seconds);
  EXPECT_EQ(r->checked, kStates / 4);
  EXPECT_EQ(r->failed, 0u);
  for (const std::string& f : r->failures) ADD_FAILURE() << f;
}

// The model's verdicts, on trees made by hand.
TEST(CrashModel, AllowsBeforeOrAfterAndOnlyBytesTheFileHeld) {
  ModelTree before;
  before.Add("/f", false);
  before.Find("/f")->versions = {{1, 1, 1, 1}};
  ModelTree after = before;
  after.Find("/f")->Change() = {1, 2, 2, 1};
  auto seen = [](std::vector<uint8_t> bytes) {
    std::map<std::string, SeenEntry> t;
    t["/f"] = {5, S_IFREG | 0644, std::move(bytes), {}, {}};
    return t;
  };
  EXPECT_EQ(CheckTree(seen({1, 1, 1, 1}), before, &after), "");
  EXPECT_EQ(CheckTree(seen({1, 2, 1, 1}), before, &after), "");  // not fsynced: any mix
  EXPECT_NE(CheckTree(seen({1, 3, 1, 1}), before, &after), "");  // never held
  EXPECT_NE(CheckTree(seen({1, 2, 1, 1}), before, nullptr), "");  // not in flight
  EXPECT_NE(CheckTree(seen({1, 1, 1}), before, &after), "");     // size is metadata: exact
  ModelTree renamed = before;
  renamed.Rename("/f", "/g");
  std::map<std::string, SeenEntry> both = seen({1, 1, 1, 1});
  both["/g"] = both["/f"];
  EXPECT_NE(CheckTree(both, before, &renamed), "");  // a rename is all or nothing
  ModelTree linked = before;
  linked.names["/g"] = linked.names["/f"];
  EXPECT_EQ(CheckTree(both, before, &linked), "");
  both["/g"].ino = 6;
  EXPECT_NE(CheckTree(both, before, &linked), "");  // a hard link is one inode
}

// An untorn write in flight: the file whole as before it or whole as after.
TEST(CrashModel, AnUntornWriteIsSeenWholeOrNotAtAll) {
  ModelTree before;
  before.Add("/f", false);
  before.Find("/f")->versions = {{1, 1, 1, 1}};
  ModelTree after = before;
  ModelFile* f = after.Find("/f");
  f->Change() = {1, 2, 2, 1};
  f->Synced();
  f->untorn = true;
  auto seen = [](std::vector<uint8_t> bytes) {
    std::map<std::string, SeenEntry> t;
    t["/f"] = {5, S_IFREG | 0644, std::move(bytes), {}, {}};
    return t;
  };
  EXPECT_EQ(CheckTree(seen({1, 1, 1, 1}), before, &after), "");
  EXPECT_EQ(CheckTree(seen({1, 2, 2, 1}), before, &after), "");
  EXPECT_NE(CheckTree(seen({1, 2, 1, 1}), before, &after), "") << "torn";
  f->untorn = false;
  EXPECT_EQ(CheckTree(seen({1, 2, 1, 1}), before, &after), "") << "a plain write may tear";
}

// Lost bytes may read as EIO, or hold only what was written there since
// the loss; once that write is fsynced they must hold it.
TEST(CrashModel, LostBytesFailOrHoldOnlyWhatWasWrittenSince) {
  ModelTree lost;
  lost.Add("/f", false);
  lost.Find("/f")->versions = {std::vector<uint8_t>(128, 1)};
  lost.Find("/f")->Lose(64, 64);
  auto seen = [](uint8_t second_line, bool fails) {
    std::map<std::string, SeenEntry> t;
    std::vector<uint8_t> bytes(128, 1);
    std::fill(bytes.begin() + 64, bytes.end(), fails ? 0 : second_line);
    t["/f"] = {5, S_IFREG | 0644, bytes, fails ? std::vector<ByteRange>{{64, 64}} : std::vector<ByteRange>{}, {}};
    return t;
  };
  EXPECT_EQ(CheckTree(seen(0, true), lost, nullptr), "");
  EXPECT_NE(CheckTree(seen(1, false), lost, nullptr), "") << "the data from before the loss is gone";
  std::map<std::string, SeenEntry> first_line_fails = seen(0, true);
  first_line_fails["/f"].failed = {{0, 64}, {64, 64}};
  EXPECT_NE(CheckTree(first_line_fails, lost, nullptr), "") << "nothing was lost there";
  ModelTree rewritten = lost;
  ModelFile* f = rewritten.Find("/f");
  std::vector<uint8_t>& v = f->Change();
  std::fill(v.begin() + 64, v.end(), 2);
  f->Rewrote(64, 64);
  EXPECT_EQ(CheckTree(seen(2, false), lost, &rewritten), "");
  EXPECT_EQ(CheckTree(seen(0, true), lost, &rewritten), "") << "not fsynced: the write may be lost";
  EXPECT_NE(CheckTree(seen(1, false), lost, &rewritten), "");
  ModelTree synced = rewritten;
  synced.Find("/f")->Synced();
  EXPECT_EQ(CheckTree(seen(2, false), synced, nullptr), "");
  EXPECT_NE(CheckTree(seen(0, true), synced, nullptr), "") << "fsynced: the new data must read";
}

// Modes, link targets and extended attributes are metadata: exact, as one
// tree or the other has them; an exchange swaps both names or neither.
TEST(CrashModel, MetadataIsOneTreeOrTheOther) {
  ModelTree before;
  before.Add("/f", false);
  before.AddNode("/s", S_IFLNK | 0777, {'f'});
  before.Add("/d", true);
  before.Find("/f")->xattrs["user.k"] = "v";
  auto seen = [](uint32_t file_mode, std::string value, std::vector<uint8_t> target) {
    std::map<std::string, SeenEntry> t;
    t["/f"] = {5, file_mode, {}, {}, {{"user.k", value}}};
    t["/s"] = {6, S_IFLNK | 0777, std::move(target), {}, {}};
    t["/d"] = {7, S_IFDIR | 0755, {}, {}, {}};
    return t;
  };
  EXPECT_EQ(CheckTree(seen(S_IFREG | 0644, "v", {'f'}), before, nullptr), "");
  EXPECT_NE(CheckTree(seen(S_IFREG | 0600, "v", {'f'}), before, nullptr), "");
  EXPECT_NE(CheckTree(seen(S_IFREG | 0644, "w", {'f'}), before, nullptr), "");
  EXPECT_NE(CheckTree(seen(S_IFREG | 0644, "v", {'g'}), before, nullptr), "");
  ModelTree after = before;
  after.Find("/f")->mode = S_IFREG | 0600;
  after.Find("/f")->xattrs["user.k"] = "w";
  EXPECT_EQ(CheckTree(seen(S_IFREG | 0600, "w", {'f'}), before, &after), "");
  EXPECT_NE(CheckTree(seen(S_IFREG | 0600, "v", {'f'}), before, &after), "") << "half of the trees";
  ModelTree swapped = before;
  swapped.Exchange("/f", "/d");
  std::map<std::string, SeenEntry> both = seen(S_IFREG | 0644, "v", {'f'});
  std::swap(both["/f"], both["/d"]);
  EXPECT_EQ(CheckTree(both, before, &swapped), "");
  both["/f"] = both["/d"];
  EXPECT_NE(CheckTree(both, before, &swapped), "") << "one name swapped, not the other";
}

// Runs `steps` (each must succeed) on a fresh filesystem holding the base
// tree, then reads it back into *tree; *model is what the model says of it.
void RunOnFreshFs(const std::string& what, const std::vector<CrashStep>& steps,
                  std::map<std::string, SeenEntry>* tree, ModelTree* model) {
  std::string path = ::testing::TempDir() + "/fresh-fs";
  std::filesystem::remove(path);
  media::CreateOptions co;
  co.size = 16ull << 20;
  auto made = media::PmemDevice::Create(path, co);
  ASSERT_TRUE(made.ok()) << made.status().message();
  dax::PmemDax dev(std::move(made).value());
  ASSERT_TRUE(fs::Filesystem::Mkfs(dev).ok());
  auto fs = fs::Filesystem::Mount(dev);
  ASSERT_TRUE(fs.ok()) << fs.status().message();
  ASSERT_TRUE(MakeCrashBaseTree(**fs, model).ok());
  for (const CrashStep& s : steps) {
    Status st = s.run(**fs, *model, [] {});
    EXPECT_TRUE(st.ok()) << what << ": " << s.name << ": " << st.message();
  }
  auto read = ReadTree(**fs);
  ASSERT_TRUE(read.ok()) << what << ": " << read.status().message();
  *tree = std::move(read).value();
}

// crashcheck ignores a step that fails (a failed call must change nothing),
// so each must be seen to work: alone on the base tree, every step runs,
// and the tree it leaves is the model's.
TEST(CrashWorkloads, EveryStepRunsAloneAsTheModelSays) {
  for (const CrashStep& step : CrashSteps()) {
    std::map<std::string, SeenEntry> tree;
    ModelTree model;
    ASSERT_NO_FATAL_FAILURE(RunOnFreshFs(step.name, {step}, &tree, &model));
    EXPECT_EQ(CheckTree(tree, model, nullptr), "") << step.name;
  }
}

// The poison workloads do what their names say: each runs to its end, and
// the data poisoned reads as EIO until something replaces it.
TEST(CrashWorkloads, PoisonWorkloadsRunToTheEnd) {
  int ran = 0;
  for (const CrashWorkload& w : SpecialCrashWorkloads()) {
    if (!w.name.starts_with("poison")) continue;
    std::map<std::string, SeenEntry> tree;
    ModelTree model;
    ASSERT_NO_FATAL_FAILURE(RunOnFreshFs(w.name, w.steps, &tree, &model));
    EXPECT_EQ(CheckTree(tree, model, nullptr), "") << w.name;
    if (w.name == "poison /big 8192" || w.name == "poison /big 8192; fsync /big") {
      EXPECT_EQ(tree.at("/big").failed, (std::vector<ByteRange>{{8192, 512}})) << w.name;
    }
    ++ran;
  }
  EXPECT_GE(ran, 8);
}

}  // namespace
}  // namespace daxguard::tools
