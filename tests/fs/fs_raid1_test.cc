// daxfs on a raid1 stack, under 10,000 errors put at random on its legs
// (under file data, reflinked data, metadata and free space; some known at
// once, some latent until a read or a scrub finds them): every error one
// leg still holds is rebuilt, every file reads back byte-identical, and the
// filesystem is never told of damage. Errors on both legs at once are the
// file's loss, reported, and never read as wrong bytes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <map>
#include <random>
#include <set>

#include "common/units.h"
#include "dm/dm_test_util.h"
#include "fs/filesystem.h"
#include "dm/replace.h"
#include "fs/fsck.h"

namespace daxguard::fs {
namespace {

using dm::testing::Eventually;
using dm::testing::MakeDevice;
using dm::testing::MakeStack;
using dm::testing::TempDir;

constexpr uint64_t S = kSectorSize;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kSectors = 65536;   // the mirror: 32 MiB
constexpr uint64_t kLeg1Start = 8192;  // d1's sector of the mirror's sector 0

class FsRaid1Test : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeDevice(dir_.File("d0"), 40 * kMiB);
    MakeDevice(dir_.File("d1"), 40 * kMiB);
    ASSERT_TRUE(MakeStack(dir_.File("m"), {"0 65536 raid1 2 d0 0 d1 8192"}).ok());
    Open();
    ASSERT_TRUE(Filesystem::Mkfs(*m_).ok());
    Mount();
  }
  void TearDown() override {
    fs_.reset();
    m_.reset();
  }
  void Open() {
    m_ = dm::testing::OpenOrDie(dir_.File("m"));
    ASSERT_TRUE(m_);
  }
  void Mount() {
    auto f = Filesystem::Mount(*m_);
    ASSERT_TRUE(f.ok()) << f.status().message();
    fs_ = std::move(f).value();
  }
  media::PmemDevice& Leg(int i) { return *m_->Media()[i]; }
  uint64_t LegSector(int i, uint64_t sector) const { return i == 0 ? sector : kLeg1Start + sector; }

  void Write(const std::string& path, uint64_t off, const std::vector<uint8_t>& bytes) {
    auto f = fs_->Open(path, kCreate);
    ASSERT_TRUE(f.ok()) << f.status().message();
    auto n = (*f)->Write(off, bytes.data(), bytes.size());
    ASSERT_TRUE(n.ok() && *n == bytes.size()) << path << ": " << n.status().ToString();
    std::vector<uint8_t>& want = files_[path];
    want.resize(std::max<uint64_t>(want.size(), off + bytes.size()));
    std::copy(bytes.begin(), bytes.end(), want.begin() + off);
  }
  void Clone(const std::string& from, const std::string& to) {
    auto src = fs_->Open(from);
    auto dst = fs_->Open(to, kCreate);
    ASSERT_TRUE(src.ok() && dst.ok());
    ASSERT_TRUE((*dst)->CloneFrom(**src, 0, 0, 0).ok());
    files_[to] = files_[from];
  }
  std::vector<uint8_t> Random(uint64_t len) {
    std::vector<uint8_t> v(len);
    for (uint8_t& b : v) b = static_cast<uint8_t>(rng_());
    return v;
  }
  // A file's bytes as a reader sees them; `ok` false at the first error.
  std::vector<uint8_t> ReadAll(const std::string& path, Status* st) {
    auto f = fs_->Open(path);
    if (!f.ok()) {
      *st = f.status();
      return {};
    }
    std::vector<uint8_t> out(files_[path].size());
    uint64_t done = 0;
    while (done < out.size()) {
      auto n = (*f)->Read(done, out.data() + done, out.size() - done);
      if (!n.ok()) {
        *st = n.status();
        break;
      }
      if (*n == 0) break;
      done += *n;
    }
    out.resize(done);
    return out;
  }
  void ExpectEveryFileIntact(const std::string& when) {
    for (const auto& [path, want] : files_) {
      Status st;
      std::vector<uint8_t> got = ReadAll(path, &st);
      ASSERT_TRUE(st.ok()) << when << ": " << path << ": " << st.ToString();
      if (got != want) {
        size_t i = 0;
        while (i < got.size() && got[i] == want[i]) ++i;
        size_t j = i;
        while (j < got.size() && got[j] != want[j]) ++j;
        FAIL() << when << ": " << path << " reads back different bytes at " << i << " to " << j << " of " << want.size()
               << " (got " << int(got[i]) << " want " << int(want[i]) << ")";
      }
    }
  }
  bool LegsClean() { return Leg(0).BadBlocks().empty() && Leg(1).BadBlocks().empty(); }
  void Scrub(int leg) {
    ASSERT_TRUE(Leg(leg).BeginScrub(static_cast<uint32_t>(getpid())).ok());
    ASSERT_TRUE(Leg(leg).RunScrub().ok());
  }

  // Rounds of `per_round` errors at random sectors of either leg (never
  // one sector on both legs in a round), known or latent, with a write
  // among them; after each, every file reads back whole, a scrub of both
  // legs leaves none bad, and the filesystem heard of nothing.
  void InjectRounds(int rounds, int per_round) {
    for (int round = 0; round < rounds; ++round) {
      std::set<uint64_t> hit;
      for (int e = 0; e < per_round; ++e) {
        uint64_t sector = rng_() % kSectors;
        if (!hit.insert(sector).second) continue;
        int leg = static_cast<int>(rng_() % 2);
        bool known = rng_() % 2 == 0;
        ASSERT_TRUE(Leg(leg).Inject(LegSector(leg, sector), 1, {.notify = known}).ok());
      }
      auto it = files_.begin();
      std::advance(it, rng_() % files_.size());
      std::string path = it->first;
      Write(path, rng_() % (it->second.size() + 1), Random(1 + rng_() % 20000));
      std::string when = "round " + std::to_string(round);
      ExpectEveryFileIntact(when);  // reads meet the latent ones
      Scrub(0);
      Scrub(1);
      ASSERT_TRUE(Eventually([&] { return LegsClean(); })) << when << ": a leg was not rebuilt";
      HealthReport h = fs_->Health();
      ASSERT_TRUE(h.files.empty()) << when << ": " << h.files[0].path << " reported damaged";
      ASSERT_TRUE(h.lost_metadata.empty()) << when << ": " << h.lost_metadata[0];
      ASSERT_EQ(h.metadata_repairs, 0u) << when << ": the filesystem saw a metadata error a leg held";
    }
  }
  void WriteFiles() {
    for (int i = 0; i < 24; ++i) Write("/f" + std::to_string(i), 0, Random(4096 + rng_() % (600 * 1024)));
    for (int i = 0; i < 6; ++i) {
      Clone("/f" + std::to_string(i), "/c" + std::to_string(i));
      Write("/c" + std::to_string(i), 0, Random(8192));  // shared past the first two blocks
    }
  }
  // The mirror's sector of file offset `off`.
  uint64_t SectorOf(const std::string& path, uint64_t off) {
    auto f = fs_->Open(path);
    EXPECT_TRUE(f.ok());
    auto m = (*f)->Fiemap();
    EXPECT_TRUE(m.ok());
    for (const FiemapExtent& e : *m)
      if (off >= e.logical && off < e.logical + e.length) return (e.physical + off - e.logical) / S;
    ADD_FAILURE() << path << " offset " << off << " is not mapped";
    return 0;
  }

  TempDir dir_;
  std::mt19937_64 rng_{20261207};
  std::unique_ptr<dax::Device> m_;
  std::unique_ptr<Filesystem> fs_;
  std::map<std::string, std::vector<uint8_t>> files_;
};

TEST_F(FsRaid1Test, TenThousandSingleLegErrorsAreRebuiltAndEveryFileKept) {
  WriteFiles();
  InjectRounds(100, 100);
  fs_.reset();
  auto report = Fsck(*m_, false);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty()) << report->problems[0];
  Mount();
  ExpectEveryFileIntact("after remount");
}

TEST_F(FsRaid1Test, ErrorsOnBothLegsAreReportedAndNeverReadAsWrongBytes) {
  for (int i = 0; i < 8; ++i) Write("/f" + std::to_string(i), 0, Random(64 * 1024 + rng_() % (256 * 1024)));
  Clone("/f0", "/c0");
  // The same sectors on both legs, under file data and elsewhere.
  std::set<uint64_t> lost;
  for (int e = 0; e < 200; ++e) lost.insert(rng_() % kSectors);
  for (uint64_t sector : lost)
    for (int leg : {0, 1}) ASSERT_TRUE(Leg(leg).Inject(LegSector(leg, sector), 1, {.notify = false}).ok());
  Scrub(0);
  Scrub(1);
  // Every byte a read returns is the file's; a read stops at the damage.
  for (const auto& [path, want] : files_) {
    Status st;
    std::vector<uint8_t> got = ReadAll(path, &st);
    ASSERT_LE(got.size(), want.size());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin())) << path << ": wrong bytes before the damage";
    if (got.size() < want.size()) {
      EXPECT_EQ(st.err(), EIO) << path << ": " << st.ToString();
    }
  }
  // Health names a file exactly when its reads stopped short (once the
  // stack's delivery thread has told the filesystem).
  std::set<std::string> short_read, damaged;
  for (const auto& [path, want] : files_) {
    Status st;
    if (ReadAll(path, &st).size() < want.size() || !st.ok()) short_read.insert(path);
  }
  EXPECT_TRUE(Eventually([&] {
    damaged.clear();
    for (const DamagedFile& d : fs_->Health().files) damaged.insert(d.path);
    return damaged == short_read;
  })) << damaged.size() << " files reported damaged, " << short_read.size() << " read short";
  EXPECT_FALSE(damaged.empty()) << "200 lost sectors over 2 MiB of files hit none";
}

// d0 is lost whole; d2 takes its place, resynced from d1, where one sector
// under a file was latent poison: that sector is the file's loss (named by
// health, EIO, never other bytes); everything else is intact, and the new
// pair of legs goes on rebuilding each other through 1,000 more errors.
TEST_F(FsRaid1Test, AWholeLegLostIsReplacedAndEveryFileKept) {
  WriteFiles();
  uint64_t lost = SectorOf("/f3", 5000);
  ASSERT_TRUE(Leg(1).Inject(LegSector(1, lost), 1, {.notify = false}).ok());
  fs_.reset();
  m_.reset();
  ASSERT_EQ(unlink(dir_.File("d0").c_str()), 0);
  MakeDevice(dir_.File("d2"), 40 * kMiB);
  auto r = dm::ReplaceLeg(dir_.File("m"), dir_.File("d0"), dir_.File("d2"), std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->lost_sectors, std::vector<uint64_t>{lost});
  Open();
  Mount();
  const std::vector<IntervalSet::Interval> damage = {{AlignDown(5000, S), S}};
  EXPECT_TRUE(Eventually([&] {
    HealthReport h = fs_->Health();
    return h.files.size() == 1 && h.files[0].path == "/f3" && h.files[0].ranges == damage;
  })) << "the loss was not told to the filesystem";
  Status st;
  std::vector<uint8_t> got = ReadAll("/f3", &st);
  EXPECT_EQ(st.err(), EIO);
  EXPECT_EQ(got.size(), AlignDown(5000, S));
  EXPECT_TRUE(std::equal(got.begin(), got.end(), files_["/f3"].begin()));
  // The lost page rewritten from a backup (the model), the rest as it was.
  std::vector<uint8_t> page(files_["/f3"].begin() + 4096, files_["/f3"].begin() + 8192);
  Write("/f3", 4096, page);
  ExpectEveryFileIntact("after the replace");
  InjectRounds(10, 100);
}

}  // namespace
}  // namespace daxguard::fs
