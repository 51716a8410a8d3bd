// dm::Stack: a remapping device in the manner of Linux device-mapper. It is
// a dax::Device built from a table of segments, each mapped by a target
// onto base devices (device files or other stacks), and it registers as the
// holder of every base while it has a holder itself, so that poison found
// on any device below reaches its own holder at the stack's offsets (queued
// to the stack's delivery, dax::Device's, moments after the base reported).
// Unlike Linux, opening a stack claims nothing: tools may open a stack that
// a filesystem holds, as they may open a held device.
//
// Offsets are translated here, at the layer boundary, and nowhere else: the
// data path maps a stack range down to (base, offset, contiguous length),
// and notifications map a base range up to every stack range it backs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "dax/dax_device.h"
#include "dm/flat_map.h"
#include "dm/table.h"
#include "dm/target.h"

namespace daxguard::dm {

// How a stack reaches the devices its table names.
class BaseOpener {
 public:
  virtual ~BaseOpener() = default;
  // Says which device DEV names, so that two spellings of one device
  // share one base (a device has one holder).
  virtual Result<std::string> Identify(const std::string& dev) = 0;
  virtual Result<std::unique_ptr<dax::Device>> Open(const std::string& dev) = 0;
};

// What `dm status` shows of one segment.
struct SegmentStatus {
  TableLine line;
  std::vector<std::string> devices;  // as the table names them
  bool can_recover = false;
  std::vector<media::BadBlock> bad;  // known errors within, in stack sectors
  // raid1: each leg's known bad sectors (those another leg still holds
  // are rebuilt while the stack is held)
  std::vector<uint64_t> leg_bad;
};

class Stack final : public dax::Device {
 public:
  // Checks the table and opens its devices; `name` is how errors and
  // listings name the stack (its file). Refuses a table in which two
  // segments, or two stripes, reach the same bytes of one base.
  static Result<std::unique_ptr<Stack>> Build(std::string name, std::vector<TableLine> table, BaseOpener& opener);
  ~Stack() override;
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  const std::string& name() const { return name_; }
  const std::vector<TableLine>& table() const { return table_; }
  size_t base_count() const { return bases_.size(); }
  dax::Device& base(size_t i) { return *bases_[i].dev; }
  const std::string& base_label(size_t i) const { return bases_[i].label; }
  std::vector<SegmentStatus> SegmentStatuses() const;
  // Whether the clean path goes straight to the device files (dm/flat_map.h).
  bool flattened() const { return flat_ != nullptr; }
  // What a stack above composes with: the flattened translation's window.
  std::optional<dax::DirectLayout> DirectLayoutOf(uint64_t off, uint64_t len) const override;

  // One level of translation. Down: the contiguous runs of [off, off+len),
  // in order. Up: the stack ranges [off, off+len) of base `base` backs,
  // sorted and merged.
  std::vector<Extent> MapDown(uint64_t off, uint64_t len) const;
  std::vector<ByteRange> MapUp(size_t base, uint64_t off, uint64_t len) const;

  uint64_t size() const override { return size_; }
  dax::Capabilities caps() const override { return caps_; }
  Result<dax::Mapping> DirectAccess(uint64_t pgoff, uint64_t nr_pages, dax::AccessMode mode) override;
  Result<size_t> RecoveryWrite(uint64_t off, const void* src, size_t len) override;
  Status ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) override;
  // An error-target run ends the copy as poison would.
  Result<size_t> ReadMcSafe(uint64_t off, void* dst, size_t len) override;
  Status Write(uint64_t off, const void* src, size_t len) override;
  // Each run's base writes back (or copies persistently) its part; a fence
  // fences every base.
  Status WriteBack(uint64_t off, uint64_t len) override;
  void Fence() override;
  Status WritePersist(uint64_t off, const void* src, size_t len) override;
  bool ReadClean(uint64_t off, void* dst, size_t len) override;
  bool WriteClean(uint64_t off, const void* src, size_t len) override;
  std::vector<media::BadBlock> BadBlocks() const override;
  bool KnownUnreadable(uint64_t off, uint64_t len) const override;
  bool CanRecover(uint64_t off, uint64_t len) const override;
  // A stack's holder holds every base, so the bases answer for any process.
  uint32_t HolderPid() const override;
  // Each contiguous run goes to its base; an error-target run fails (EIO)
  // before anything is placed.
  Status MapInto(dax::MappedRegion& region, uint64_t at, uint64_t off, uint64_t len, uint64_t label_off) override;
  // Through the bases, each once (dm/stack_media.cc).
  std::vector<media::PmemDevice*> Media() override;

  // raid1 (dm replace): StartResync marks legs (segment index, leg index)
  // as holding nothing yet, so no read or rebuild takes a byte from them;
  // call it before a holder registers, whose rebuilds would. RunResync then
  // copies onto each its segment's bytes from the other legs, a chunk at a
  // time under the mirror lock, so stores go on in between and a leg's
  // bytes are read again as the copy passes them. A sector no other leg
  // holds is poisoned on the new leg, so it reads as lost, never as what
  // the new device held; it is left latent (lost_media) for the caller to
  // make known once the holder that must hear of it holds the stack.
  // `progress` sees bytes copied of the total.
  struct ResyncReport {
    uint64_t bytes = 0;
    std::vector<uint64_t> lost_sectors;      // stack sectors no other leg held
    std::vector<dax::MediaRun> lost_media;   // where they are on the new legs
  };
  using Progress = std::function<void(uint64_t done, uint64_t total)>;
  Status StartResync(const std::vector<std::pair<size_t, size_t>>& legs);
  Result<ResyncReport> RunResync(const Progress& progress = {});
  std::vector<ByteRange> MapFromMedia(const media::PmemDevice& m, uint64_t off, uint64_t len) override;
  // On every leg of a mirror.
  Status Retell(uint64_t off, uint64_t len) override;

 protected:
  Status ClaimForHolder(uint64_t token) override;
  void UnclaimForHolder(uint64_t token) override;
  void OnHolderReleasing() override;
  // raid1: rebuilds what its legs reported lost from another leg; tells
  // the holder only of what no leg holds (dm/stack_mirror.cc).
  std::vector<dax::Failure> CollectFailures() override;
  // An error-target run fails, naming its first sector.
  Result<std::vector<dax::MediaRun>> MediaRunsOf(uint64_t off, uint64_t len) override;

 private:
  struct Segment {
    uint64_t start;  // bytes
    uint64_t len;    // bytes
    bool error;      // the error target: no base, every access fails
    std::unique_ptr<Target> target;
    std::vector<Layout::Leg> mirror;  // raid1: every leg (Map answers with the first)
  };
  struct Base {
    std::string label;  // the DEV argument that first named it
    std::unique_ptr<dax::Device> dev;
  };
  class Link;  // the stack as the holder of one base

  Stack(std::string name, std::vector<TableLine> table);
  Status AddSegment(const TableLine& line, BaseOpener& opener, std::map<std::string, size_t>* by_id);
  // No byte of a base backs two stack bytes. With bases that do not alias
  // themselves and share no device file (dm/open.h), no byte of any device
  // file below does either.
  Status CheckNoAliasing() const;
  void Finish();
  // The translation composed down to device files, if every segment
  // reduces to legs on them (see dm/flat_map.h).
  std::unique_ptr<FlatMap> Flatten() const;
  // What [leg.offset, +len) of base leg.base is, flattened.
  std::optional<dax::DirectLayout> FlattenBase(const Layout::Leg& leg, uint64_t len) const;
  size_t SegmentAt(uint64_t off) const;
  // Calls fn(extent, stack offset) for each contiguous run of [off,
  // off+len) until fn returns false; returns whether it never did.
  template <typename Fn>
  bool ForEachRun(uint64_t off, uint64_t len, Fn&& fn) const;
  // EIO if [off, off+len) touches an error segment, checked before any
  // base is touched so that a refused write changes nothing.
  Status CheckNoErrorTarget(uint64_t off, uint64_t len) const;
  // A store's way down: [off, off+len) checked (in range, no error
  // segment), then fn(base, base offset, stack offset, length) for each run
  // until one fails.
  template <typename Fn>
  Status StoreEachRun(uint64_t off, uint64_t len, Fn&& fn);
  Status ErrorTargetError(uint64_t off) const;
  // Calls fn(extent) for the run `e` at stack offset `pos`, and for a
  // mirror once per leg, until fn returns false.
  template <typename Fn>
  bool ForEachCopy(const Extent& e, uint64_t pos, Fn&& fn) const;
  // EOPNOTSUPP if [off, off+len) touches a mirror: a store through a
  // mapping would reach one leg only.
  Status CheckNoMirror(uint64_t off, uint64_t len) const;

  // --- raid1 (dm/stack_mirror.cc)
  static Extent OnLeg(const Segment& seg, size_t leg, uint64_t in, uint64_t len);
  // Direct access to [in, in+len) of mirror `seg`: no leg's memory (a store
  // there would reach one leg) but the stack itself as the source, so that
  // copies take the mirrored path; up to the first page no leg holds.
  Result<dax::Mapping> MirrorAccess(const Segment& seg, uint64_t in, uint64_t len, dax::AccessMode mode);
  // [in, in+len) of mirror `seg`, each byte from the first leg that holds
  // it; the count read before a byte no leg holds.
  // Leg `skip` (if any) is not read: a leg that reported a loss may hold
  // zeroes there without poison once the error is cleared.
  Result<size_t> ReadMirrored(const Segment& seg, uint64_t in, uint8_t* out, uint64_t len,
                              std::optional<size_t> skip = std::nullopt);
  // Whether some page of [in, in+len) is known unreadable on every leg.
  bool MirrorUnreadable(const Segment& seg, uint64_t in, uint64_t len) const;
  // What leg `leg` of `seg` lost: [off, off+len) of the segment.
  struct LegLoss {
    const Segment* seg;
    size_t leg;
    uint64_t off, len;
  };
  // Queues what [off, off+len) of base `base` backs on the legs of `seg`;
  // whether anything was.
  bool QueueRebuild(const Segment& seg, size_t base, uint64_t off, uint64_t len);
  // Page `in` of `loss.seg`, read from the legs between them (the lost
  // bytes not from the leg that lost them), rewritten on that leg and on
  // every leg known unable to read it (a recovery write: the poison goes);
  // false if some byte of it no leg holds.
  bool RebuildPage(const LegLoss& loss, uint64_t in);
  // A leg being resynced: bytes from `upto` on are not yet its segment's.
  struct Resync {
    const Segment* seg;
    size_t leg;
    uint64_t upto;
  };
  // How many bytes from `in` leg `leg` of `seg` may be read from (all of
  // `len` unless it is being resynced).
  uint64_t SyncedRun(const Segment& seg, size_t leg, uint64_t in, uint64_t len) const;
  // Page `in` of `seg` onto leg `leg` from the others; the sectors no
  // other leg holds are poisoned there and added to `report`.
  Status ResyncPage(const Segment& seg, size_t leg, uint64_t in, ResyncReport* report);
  // Queued, not told: a base calls this with its own holder lock held,
  // and the stack takes its lock and then the bases' when a holder
  // registers; telling from the delivery thread keeps those two orders from
  // meeting. It also lets the bases report what they had pending the moment
  // the stack claims them, before its holder is in place.
  void OnBaseFailure(size_t base, uint64_t off, uint64_t len, int flags);
  void ReleaseBases();

  std::string name_;
  std::vector<TableLine> table_;
  std::vector<Segment> segments_;
  std::vector<Base> bases_;
  std::vector<std::unique_ptr<Link>> links_;
  uint64_t size_ = 0;
  dax::Capabilities caps_;
  std::unique_ptr<FlatMap> flat_;  // null if the stack does not reduce
  bool mirrored_ = false;          // a segment is raid1
  // A mirror's stores and rebuilds one at a time, so that a rebuild never
  // puts back bytes a store has just replaced on the other legs; reads
  // share it, so none sees a leg half rebuilt (a recovery write clears the
  // poisoned units to zeroes before it writes the page).
  std::shared_mutex mirror_mu_;
  std::mutex rebuild_mu_;
  std::vector<LegLoss> to_rebuild_;
  std::vector<Resync> resyncing_;  // under mirror_mu_

};

}  // namespace daxguard::dm
