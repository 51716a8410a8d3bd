// The persistence model: what a tracked device records, and which images a
// power failure could leave according to media/crash_states.h.
#include "media/crash_states.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "media/pmem_device.h"

namespace daxguard::media {
namespace {

using Image = std::vector<uint8_t>;
using Kind = TraceEvent::Kind;

struct Visited {
  std::vector<CrashPoint> points;
  std::vector<Image> images;
};

Visited Enumerate(const PersistTrace& t, CrashStateOptions opt = {}) {
  Visited v;
  CrashStats stats = ForEachCrashState(t, opt, [&](const CrashPoint& p, std::span<const uint8_t> img) {
    v.points.push_back(p);
    v.images.emplace_back(img.begin(), img.end());
    return true;
  });
  EXPECT_EQ(stats.distinct, v.images.size());
  EXPECT_GE(stats.generated, stats.distinct);
  return v;
}

std::vector<uint8_t> Bytes(size_t n, uint8_t b) { return std::vector<uint8_t>(n, b); }

// A store as a tracked device makes it: into its memory, then reported.
void Put(Image& dev, PersistTrace& t, uint64_t off, const std::vector<uint8_t>& bytes) {
  std::copy(bytes.begin(), bytes.end(), dev.begin() + off);
  t.Store(off, bytes.data(), bytes.size());
}

TEST(PersistTrace, RecordsStoresWriteBacksFencesAndMarkers) {
  Image dev(4096, 0);
  PersistTrace t(dev);
  Put(dev, t, 100, Bytes(16, 0xaa));
  t.WriteBack(64, 64, dev.data());
  t.Fence(dev.data());
  t.Mark(7);
  ASSERT_EQ(t.events().size(), 4u);
  EXPECT_EQ(t.events()[0].kind, Kind::kStore);
  EXPECT_EQ(t.events()[0].off, 100u);
  EXPECT_EQ(t.events()[0].len, 16u);
  EXPECT_EQ(t.bytes(t.events()[0])[0], 0xaa);
  EXPECT_EQ(t.events()[1].kind, Kind::kWriteBack);
  EXPECT_EQ(t.events()[2].kind, Kind::kFence);
  EXPECT_EQ(t.events()[3].kind, Kind::kMarker);
  EXPECT_EQ(t.events()[3].off, 7u);
}

// A store made straight into the device's memory shows up at the next
// write-back of its range, or else at the next fence, with its bytes.
TEST(PersistTrace, FindsStoresMadeAroundTheDevice) {
  Image dev(8192, 0);
  PersistTrace t(dev);
  dev[10] = 1;      // written back below
  dev[5000] = 2;    // only a fence finds it
  dev[5050] = 3;    // close to it: the same store
  t.WriteBack(0, 64, dev.data());
  t.Fence(dev.data());
  ASSERT_EQ(t.events().size(), 4u);
  EXPECT_EQ(t.events()[0].kind, Kind::kStore);
  EXPECT_EQ(t.events()[0].off, 8u);
  EXPECT_EQ(t.events()[0].len, 8u);
  EXPECT_EQ(t.bytes(t.events()[0])[2], 1);
  EXPECT_EQ(t.events()[1].kind, Kind::kWriteBack);
  EXPECT_EQ(t.events()[2].kind, Kind::kStore);
  EXPECT_EQ(t.events()[2].off, 5000u);
  EXPECT_EQ(t.events()[2].len, 5056u - 5000u);
  EXPECT_EQ(t.events()[3].kind, Kind::kFence);
  t.Fence(dev.data());  // nothing new
  EXPECT_EQ(t.events().size(), 5u);
}

// A store not written back may or may not survive; written back and
// fenced, it always does.
TEST(CrashStates, WrittenBackAndFencedIsDurable) {
  Image dev(4096, 0);
  PersistTrace t(dev);
  Put(dev, t, 0, Bytes(8, 1));
  t.Fence(dev.data());  // not written back: in flight
  t.WriteBack(0, 8, dev.data());
  t.Fence(dev.data());  // now durable
  Put(dev, t, 64, Bytes(8, 2));
  Visited v = Enumerate(t);
  // Each image once: (0, 0) and (1, 0) before the first fence (the same
  // two before the second); then the first store is durable, so (0, 2)
  // never appears.
  std::set<std::pair<uint8_t, uint8_t>> seen;
  for (const Image& img : v.images) EXPECT_TRUE(seen.insert({img[0], img[64]}).second);
  EXPECT_EQ(seen, (std::set<std::pair<uint8_t, uint8_t>>{{0, 0}, {1, 0}, {1, 2}}));
}

// The cache writes back a line's latest value: two stores to one line
// persist as the first, or both, never the second alone where they overlap.
TEST(CrashStates, ALinePersistsAsAPrefixOfItsStores) {
  Image dev(4096, 0);
  PersistTrace t(dev);
  Put(dev, t, 0, Bytes(16, 'a'));
  Put(dev, t, 8, Bytes(16, 'b'));
  Visited v = Enumerate(t);
  bool saw_both = false;
  for (const Image& img : v.images) {
    if (img[8] == 'b' && img[16] == 'b') {
      EXPECT_EQ(img[0], 'a');  // b whole: a came first
    }
    saw_both = saw_both || (img[0] == 'a' && img[8] == 'b');
  }
  EXPECT_TRUE(saw_both);
}

// A store over several lines may persist in part, line by line, and the
// last store torn at 8 bytes.
TEST(CrashStates, PartLinesAndTornWords) {
  Image dev(4096, 0);
  PersistTrace t(dev);
  Put(dev, t, 0, Bytes(256, 7));
  Visited v = Enumerate(t);
  bool partial_lines = false, torn_word = false;
  for (const Image& img : v.images) {
    int lines = 0;
    for (int l = 0; l < 4; ++l) lines += img[l * 64] == 7;
    partial_lines = partial_lines || (lines > 0 && lines < 4);
    torn_word = torn_word || (img[0] == 7 && img[8] == 0);
    for (size_t i = 0; i < 256; i += 8)  // 8 bytes are atomic
      for (size_t j = 1; j < 8; ++j) EXPECT_EQ(img[i + j], img[i]);
  }
  EXPECT_TRUE(partial_lines);
  EXPECT_TRUE(torn_word);
}

TEST(CrashStates, ManyStoresInFlightAreSampled) {
  Image dev(1 << 16, 0);
  PersistTrace t(dev);
  for (int i = 0; i < 40; ++i) Put(dev, t, i * 128, Bytes(8, static_cast<uint8_t>(i + 1)));
  CrashStateOptions opt;
  Visited v = Enumerate(t, opt);
  // Prefixes, singles, all-but-one (each 40 or 41) and random ones; not 2^40.
  EXPECT_GT(v.images.size(), 3u * 40);
  EXPECT_LT(v.images.size(), 200u);
  opt.max_states = 10;
  EXPECT_EQ(Enumerate(t, opt).images.size(), 10u);
}

// The device in tracked mode reports its stores, write-backs, fences and
// firmware clears; untracked it reports nothing.
TEST(CrashStates, TrackedDeviceRecordsItsTrace) {
  std::string path = ::testing::TempDir() + "/crash_states_dev";
  std::filesystem::remove(path);
  CreateOptions co;
  co.size = 1 << 20;
  auto dev = PmemDevice::Create(path, co);
  ASSERT_TRUE(dev.ok()) << dev.status().message();
  PmemDevice& d = **dev;
  PersistTrace t(std::span<const uint8_t>(d.data(), d.size()));
  auto a = Bytes(64, 9);
  ASSERT_TRUE(d.Write(4096, a.data(), a.size()).ok());  // untracked
  d.Track(&t);
  ASSERT_TRUE(d.Write(8192, a.data(), a.size()).ok());
  ASSERT_TRUE(d.WriteBack(8192, 64).ok());
  d.Fence();
  ASSERT_TRUE(d.WritePersist(12288, a.data(), a.size()).ok());
  d.Track(nullptr);
  d.Fence();
  std::vector<Kind> kinds;
  for (const TraceEvent& e : t.events()) kinds.push_back(e.kind);
  // The untracked store is found by the first fence, as a store made around the device.
  EXPECT_EQ(kinds, (std::vector<Kind>{Kind::kStore, Kind::kWriteBack, Kind::kStore, Kind::kFence, Kind::kStore,
                                      Kind::kWriteBack, Kind::kFence}));
  Visited v = Enumerate(t);
  std::set<uint8_t> before_first_fence;
  for (size_t i = 0; i < v.images.size(); ++i) {
    if (v.points[i].event == 3)
      before_first_fence.insert(v.images[i][8192]);
    else
      EXPECT_EQ(v.images[i][8192], 9);  // written back and fenced
  }
  EXPECT_EQ(before_first_fence, (std::set<uint8_t>{0, 9}));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace daxguard::media
