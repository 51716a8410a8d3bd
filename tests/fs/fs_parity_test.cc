// daxfs made with parity (mkfs --data-protection parity), under 10,000
// errors put at random under file data, reflinked data, the metadata log
// and free space (poison known at once or latent until a read finds it,
// and stray stores into file data): every error parity or the log's second
// copy can undo is undone, every file reads back byte-identical, and the
// filesystem is never told of damage. Two bad strips in one block are past
// what parity rebuilds: they are the owners' loss, reported, and never read
// as wrong bytes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "fs/fs_fixture.h"
#include "fs/fsck.h"
#include "fs/meta_log.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t S = kSectorSize;
constexpr uint64_t kStrips = kBlockSize / kStripBytes;
constexpr uint64_t kMiB = 1ull << 20;

// Polls `cond` every 5 ms for up to 2 s.
bool Eventually(const std::function<bool()>& cond) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

class FsParityTest : public FsTest {
 protected:
  DataProtection Protection() const override { return DataProtection::kParity; }

  struct Owner {
    std::string path;
    uint64_t fblk = 0;
  };
  // Where every file's blocks are: device block -> its owners.
  struct Placement {
    std::map<uint64_t, std::vector<Owner>> owners;
    std::vector<uint64_t> owned, shared;  // device blocks
  };

  std::vector<uint8_t> Random(uint64_t len) {
    std::vector<uint8_t> v(len);
    for (uint8_t& b : v) b = static_cast<uint8_t>(rng_());
    return v;
  }
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
  // 16 files (three of several MiB, the rest up to 300 KiB, sizes mostly
  // not whole blocks) and 4 reflinked copies, each rewritten at its start
  // so that only the rest stays shared.
  void WriteFiles() {
    for (int i = 0; i < 16; ++i) {
      uint64_t size = i < 3 ? 1 * kMiB + rng_() % (2 * kMiB) : 1 + rng_() % (300 * 1024);
      Write("/f" + std::to_string(i), 0, Random(size));
    }
    for (int i : {0, 4, 5, 6}) {
      std::string c = "/c" + std::to_string(i);
      Clone("/f" + std::to_string(i), c);
      Write(c, 0, Random(std::min<uint64_t>(files_[c].size(), 8192)));
    }
  }
  Placement Place() {
    Placement p;
    for (const auto& entry : files_) {
      const std::string& path = entry.first;
      auto f = fs_->Open(path);
      EXPECT_TRUE(f.ok()) << path;
      if (!f.ok()) continue;
      auto m = (*f)->Fiemap();
      EXPECT_TRUE(m.ok()) << path;
      if (!m.ok()) continue;
      for (const FiemapExtent& e : *m)
        for (uint64_t i = 0; i * kBlockSize < e.length; ++i)
          p.owners[e.physical / kBlockSize + i].push_back({path, e.logical / kBlockSize + i});
    }
    for (const auto& [pblk, who] : p.owners) {
      p.owned.push_back(pblk);
      if (who.size() > 1) p.shared.push_back(pblk);
    }
    return p;
  }
  // How many of block pblk's bytes lie within the file, for every owner.
  uint64_t InFileBytes(const Placement& p, uint64_t pblk) {
    uint64_t n = kBlockSize;
    for (const Owner& o : p.owners.at(pblk)) {
      uint64_t size = files_[o.path].size(), at = o.fblk * kBlockSize;
      n = std::min(n, size > at ? size - at : 0);
    }
    return n;
  }
  // [off, +len) of a file as reads return it: stops at the first error
  // (*st) or at a read of nothing.
  std::vector<uint8_t> ReadRange(const std::string& path, uint64_t off, uint64_t len, Status* st) {
    auto f = fs_->Open(path);
    if (!f.ok()) {
      *st = f.status();
      return {};
    }
    std::vector<uint8_t> out(len);
    uint64_t done = 0;
    while (done < len) {
      auto n = (*f)->Read(off + done, out.data() + done, len - done);
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
      std::vector<uint8_t> got = ReadRange(path, 0, want.size(), &st);
      ASSERT_TRUE(st.ok()) << when << ": " << path << ": " << st.ToString();
      if (got != want) {
        size_t i = 0;
        while (i < got.size() && got[i] == want[i]) ++i;
        size_t j = i;
        while (j < got.size() && got[j] != want[j]) ++j;
        FAIL() << when << ": " << path << " reads back different bytes at " << i << " to " << j << " of "
               << want.size() << " (read " << got.size() << ")";
      }
    }
  }
  bool HasPoison(uint64_t pblk) { return media().HasPoison(pblk * kBlockSize, kBlockSize); }
  // Whether device block pblk, under file data, holds what its owner's
  // bytes say (within the file) and no poison: rebuilt and written back.
  bool DataBlockWhole(uint64_t pblk) {
    if (HasPoison(pblk)) return false;
    auto who = fs_->Who(pblk * kBlockSize, kBlockSize);
    if (!who.ok()) return false;
    for (const OwnerInfo& o : *who) {
      if (o.kind != OwnerInfo::Kind::kFile) continue;
      auto it = files_.find(o.path);
      if (it == files_.end()) return false;
      const std::vector<uint8_t>& want = it->second;
      uint64_t fo = o.file_offset - o.file_offset % kBlockSize;
      uint64_t n = want.size() > fo ? std::min(kBlockSize, want.size() - fo) : 0;
      return std::memcmp(media().data() + pblk * kBlockSize, want.data() + fo, n) == 0;
    }
    return true;  // no longer a file's
  }
  // The log's active slot, as blocks from a copy's area start (the same
  // in both copies), and how many of them are live (hold records).
  struct ActiveSlot {
    uint64_t first = 0, live = 1;
  };
  ActiveSlot ActiveLog() {
    std::optional<SuperBlock> sb = MetaLog::FindSuper(*dev_);
    EXPECT_TRUE(sb.has_value());
    uint64_t used = DivRoundUp(fs_->log_usage().used, kBlockSize);
    return {(sb ? sb->active_slot : 0) * geo_.SlotBlocks(), std::clamp<uint64_t>(used, 1, geo_.SlotBlocks())};
  }
  bool IsFree(const Placement& p, uint64_t b) { return !geo_.IsMeta(b) && !p.owners.count(b); }
  void Scrub() {
    ASSERT_TRUE(media().BeginScrub(static_cast<uint32_t>(getpid())).ok());
    ASSERT_TRUE(media().RunScrub().ok());
  }

  const Geometry geo_ = GeometryFor(kDevSize, DataProtection::kParity);
  std::mt19937_64 rng_{20261208};
  std::map<std::string, std::vector<uint8_t>> files_;
};

TEST_F(FsParityTest, TenThousandSingleStripErrorsAreAllRepaired) {
  WriteFiles();
  enum Kind { kData, kReflinked, kMeta, kFree };
  uint64_t counts[4] = {}, known_free = 0, latent_meta = 0, scribbles = 0;
  std::set<uint64_t> free_hit;  // device blocks of free space ever poisoned
  constexpr int kRounds = 100, kPerRound = 100, kMaxMetaPerRound = 3;
  for (int round = 0; round < kRounds; ++round) {
    std::string when = "round " + std::to_string(round);
    Placement p = Place();
    ASSERT_FALSE(p.shared.empty()) << when << ": no reflinked blocks left";
    ActiveSlot log = ActiveLog();
    std::set<uint64_t> hit;                      // device blocks given an error this round
    std::vector<uint64_t> data_hit, meta_known;  // to see repaired before the next round
    int meta = 0;
    for (int e = 0; e < kPerRound;) {
      Kind kind = static_cast<Kind>(rng_() % 4);
      if (kind == kMeta && meta >= kMaxMetaPerRound) continue;
      bool known = rng_() % 2 == 0;
      if (kind == kMeta) {
        // One copy of a block of the active slot (half the time a live
        // one) whose other copy is clean (a latent error of an earlier
        // round may still sit in it).
        uint64_t rel = log.first + rng_() % (rng_() % 2 ? log.live : geo_.SlotBlocks());
        int copy = static_cast<int>(rng_() % 2);
        uint64_t b = geo_.AreaStart(copy) + rel, other = geo_.AreaStart(1 - copy) + rel;
        if (hit.count(b) || hit.count(other) || HasPoison(b) || HasPoison(other)) continue;
        ASSERT_TRUE(media().Inject(b * kBlockSize / S + rng_() % kStrips, 1, {.notify = known, .saturate = true}).ok());
        hit.insert(b);
        hit.insert(other);
        if (known) meta_known.push_back(b);
        latent_meta += !known;
        ++meta;
      } else if (kind == kFree) {
        uint64_t b = rng_() % geo_.ProtectStart();
        if (!IsFree(p, b) || hit.count(b) || HasPoison(b)) continue;
        ASSERT_TRUE(media().Inject(b * kBlockSize / S + rng_() % kStrips, 1, {.notify = known, .saturate = true}).ok());
        hit.insert(b);
        free_hit.insert(b);
        known_free += known;
      } else {
        const std::vector<uint64_t>& from = kind == kData ? p.owned : p.shared;
        uint64_t b = from[rng_() % from.size()];
        if (hit.count(b) || HasPoison(b)) continue;
        uint64_t valid = InFileBytes(p, b);
        if (rng_() % 2 == 0 && valid > 0) {  // a stray store of a few bytes, in one strip, within the file
          uint64_t strip = rng_() % DivRoundUp(valid, kStripBytes);
          uint64_t end = std::min(valid, (strip + 1) * kStripBytes);
          uint64_t at = strip * kStripBytes + rng_() % (end - strip * kStripBytes);
          uint64_t n = 1 + rng_() % std::min<uint64_t>(16, end - at);
          std::vector<uint8_t> junk = Random(n);
          ASSERT_TRUE(dev_->Write(b * kBlockSize + at, junk.data(), n).ok());
          ++scribbles;
        } else {
          uint64_t sector = b * kBlockSize / S + rng_() % kStrips;
          ASSERT_TRUE(media().Inject(sector, 1, {.notify = known, .saturate = true}).ok());
        }
        hit.insert(b);
        data_hit.push_back(b);
      }
      ++counts[kind];
      ++e;
    }
    // A write among the errors (it may meet one of them).
    auto it = files_.begin();
    std::advance(it, rng_() % files_.size());
    std::string path = it->first;
    Write(path, rng_() % (it->second.size() + 1), Random(1 + rng_() % 20000));
    ExpectEveryFileIntact(when);  // the reads meet the latent errors and the stray stores
    if (HasFatalFailure()) return;
    // Every error under file data is rebuilt on the media, and every known
    // one under metadata rewritten from the other copy, before the next
    // round (else its next error could be a block's second).
    ASSERT_TRUE(Eventually([&] {
      for (uint64_t b : data_hit)
        if (!DataBlockWhole(b)) return false;
      for (uint64_t b : meta_known)
        if (HasPoison(b)) return false;
      return true;
    })) << when << ": an error was not repaired on the media";
    HealthReport h = fs_->Health();
    ASSERT_TRUE(h.files.empty()) << when << ": " << h.files[0].path << " reported damaged";
    ASSERT_TRUE(h.lost_metadata.empty()) << when << ": " << h.lost_metadata[0];
    ASSERT_FALSE(h.read_only) << when;
  }
  // Parity rebuilt every error under file data. What it reports are the
  // blocks of free space that never held data (their record protects
  // nothing): known poison there, which the filesystem quarantines (once
  // the last round's have gone through the delivery threads).
  HealthReport h;
  uint64_t quarantined = 0;
  EXPECT_TRUE(Eventually([&] {
    h = fs_->Health();
    quarantined = 0;
    for (const auto& iv : h.quarantined) quarantined += iv.second / kBlockSize;
    return h.unrepaired_blocks == quarantined;
  })) << h.unrepaired_blocks << " blocks parity could not rebuild, " << quarantined << " quarantined";
  EXPECT_TRUE(h.files.empty());
  EXPECT_GT(h.repaired_blocks, 0u);
  EXPECT_GT(h.checksum_mismatches, 0u);
  EXPECT_GT(h.metadata_repairs, 0u);
  for (const auto& [off, len] : h.quarantined) {
    for (uint64_t b = off / kBlockSize; b < (off + len) / kBlockSize; ++b)
      EXPECT_TRUE(free_hit.count(b)) << "block " << b << " quarantined, but no error was put there";
  }
  EXPECT_LE(h.unrepaired_blocks, known_free) << "parity failed to rebuild something under file data";
  EXPECT_EQ(h.unrepaired_blocks, quarantined);
  std::cout << "errors: " << counts[kData] << " under file data, " << counts[kReflinked] << " under reflinked data ("
            << scribbles << " of these stray stores), " << counts[kMeta] << " metadata (" << latent_meta
            << " latent), " << counts[kFree] << " free space (" << known_free << " known); blocks repaired "
            << h.repaired_blocks << ", unrepaired " << h.unrepaired_blocks << ", mismatched "
            << h.checksum_mismatches << ", metadata repairs " << h.metadata_repairs << ", quarantined " << quarantined
            << "\n";

  Remount();
  ExpectEveryFileIntact("after remount");
  if (HasFatalFailure()) return;
  // Latent errors nothing read (free space, the log copy replay did not
  // need) made known, as a scrub would: the log copies are made whole again.
  Scrub();
  ASSERT_TRUE(Eventually([&] {
    for (const media::BadBlock& bb : media().BadBlocks())
      for (uint64_t s = bb.sector; s < bb.sector + bb.count; ++s)
        if (!free_hit.count(s * S / kBlockSize)) return false;
    return fs_->Health().files.empty();
  })) << "an error outside free space stayed after the scrub";
  h = fs_->Health();
  EXPECT_TRUE(h.files.empty());
  EXPECT_TRUE(h.lost_metadata.empty());
  ExpectEveryFileIntact("after the scrub");
  fs_.reset();
  auto report = Fsck(*dev_, false);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->problems.empty()) << report->problems[0];
}

TEST_F(FsParityTest, TwoBadStripsInOneBlockAreReportedNeverWrongBytes) {
  WriteFiles();
  Placement p = Place();
  // 50 distinct blocks of file data (reflinked ones too), two adjacent
  // strips of each poisoned at once, within every owner's size: half
  // known, half latent until the reads below.
  std::map<std::string, IntervalSet> lost;  // file bytes
  std::set<uint64_t> chosen;
  uint64_t shared = 0;
  while (chosen.size() < 50) {
    uint64_t b = p.owned[rng_() % p.owned.size()];
    uint64_t strips = InFileBytes(p, b) / kStripBytes;
    if (chosen.count(b) || strips < 2) continue;
    uint64_t k = rng_() % (strips - 1);
    bool known = chosen.size() % 2 == 0;
    ASSERT_TRUE(media().Inject((b * kBlockSize + k * kStripBytes) / S, 2, {.notify = known, .saturate = true}).ok());
    for (const Owner& o : p.owners.at(b)) lost[o.path].Add(o.fblk * kBlockSize + k * kStripBytes, 2 * kStripBytes);
    shared += p.owners.at(b).size() > 1;
    chosen.insert(b);
  }
  ASSERT_GT(shared, 0u) << "no reflinked block among the 50";
  // Block by block, every read returns the file's bytes, and stops short
  // of a block only where it lost strips, at or before them.
  for (const auto& [path, want] : files_) {
    for (uint64_t off = 0; off < want.size(); off += kBlockSize) {
      uint64_t len = std::min<uint64_t>(kBlockSize, want.size() - off);
      Status st;
      std::vector<uint8_t> got = ReadRange(path, off, len, &st);
      ASSERT_LE(got.size(), len);
      EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin() + off))
          << path << " block " << off / kBlockSize << ": wrong bytes";
      if (got.size() == len) continue;
      auto it = lost.find(path);
      bool damaged = it != lost.end() && it->second.Overlaps(off, len);
      EXPECT_TRUE(damaged) << path << " block " << off / kBlockSize << " read short (" << got.size() << " of "
                           << len << ": " << st.ToString() << ") with no lost strips";
      if (!damaged) continue;
      EXPECT_LE(off + got.size(), it->second.FirstOverlap(off, len)->first) << path << ": read past the lost strips";
      if (!st.ok()) {
        EXPECT_EQ(st.err(), EIO) << path << ": " << st.ToString();
      }
    }
  }
  // Health names exactly the files owning the lost blocks, with every lost
  // byte, once the delivery threads have told the filesystem of all 50
  // (a file is named at its first block: wait for the rest too).
  std::set<std::string> want_damaged, damaged;
  for (const auto& entry : lost) want_damaged.insert(entry.first);
  HealthReport h;
  auto all_reported = [&] {
    for (const DamagedFile& d : h.files) {
      auto it = lost.find(d.path);
      if (it == lost.end()) return false;
      IntervalSet reported;
      for (const auto& [s, l] : d.ranges) reported.Add(s, l);
      for (const auto& [s, l] : it->second.intervals())
        if (!reported.Contains(s, l)) return false;
    }
    return true;
  };
  EXPECT_TRUE(Eventually([&] {
    h = fs_->Health();
    damaged.clear();
    for (const DamagedFile& d : h.files) damaged.insert(d.path);
    return damaged == want_damaged && h.unrepaired_blocks == 50 && all_reported();
  })) << damaged.size() << " files reported damaged, " << want_damaged.size() << " own lost strips";
  EXPECT_EQ(damaged, want_damaged);
  EXPECT_EQ(h.unrepaired_blocks, 50u);
  EXPECT_TRUE(h.quarantined.empty());
  for (const DamagedFile& d : h.files) {
    IntervalSet reported;
    for (const auto& [s, l] : d.ranges) reported.Add(s, l);
    auto it = lost.find(d.path);
    if (it == lost.end()) continue;  // named above
    for (const auto& [s, l] : it->second.intervals())
      EXPECT_TRUE(reported.Contains(s, l)) << d.path << ": lost bytes " << s << "+" << l << " not reported";
  }
  // A whole read of each file: the bytes before its first loss, then EIO
  // or a short count; a file without loss reads back whole.
  for (const auto& [path, want] : files_) {
    Status st;
    std::vector<uint8_t> got = ReadRange(path, 0, want.size(), &st);
    ASSERT_LE(got.size(), want.size());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin())) << path << ": wrong bytes before the damage";
    auto it = lost.find(path);
    if (it == lost.end()) {
      EXPECT_EQ(got.size(), want.size()) << path << ": " << st.ToString();
      EXPECT_TRUE(st.ok()) << path << ": " << st.ToString();
      continue;
    }
    EXPECT_LE(got.size(), it->second.intervals().begin()->first) << path << ": read past its first loss";
    if (!st.ok()) {
      EXPECT_EQ(st.err(), EIO) << path << ": " << st.ToString();
    }
  }
}

}  // namespace
}  // namespace daxguard::fs
