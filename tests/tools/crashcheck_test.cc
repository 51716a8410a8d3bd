// crashcheck as CI runs it: at least 10,000 distinct crash states of daxfs
// workloads (fewer under the sanitizers, which are ~10x slower), each
// checked by fsck, a mount and the model of what the tree may hold; none
// may fail. Also: the checker itself catches a filesystem that breaks its
// promises (a model that disagrees with what was run).
#include "tools/crash_check.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "tools/crash_model.h"

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

// The model's verdicts, on trees made by hand.
TEST(CrashModel, AllowsBeforeOrAfterAndOnlyBytesTheFileHeld) {
  ModelTree before;
  before.Add("/f", false);
  before.Find("/f")->versions = {{1, 1, 1, 1}};
  ModelTree after = before;
  after.Find("/f")->Change() = {1, 2, 2, 1};
  auto seen = [](std::vector<uint8_t> bytes) {
    std::map<std::string, SeenEntry> t;
    t["/f"] = {5, false, std::move(bytes)};
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

}  // namespace
}  // namespace daxguard::tools
