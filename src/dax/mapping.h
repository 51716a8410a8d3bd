// dax::MappedRegion: device memory mapped straight into this process, so
// that loads and stores reach the device (what mmap of a DAX file or of a
// device-dax node gives a Linux program).
//
// A region is a reserved span of address space; a device (or a filesystem,
// extent by extent) places device ranges into it. Each device translates
// the range to the one below (Device::MapInto) until a media file places
// its own pages. Pages that hold poison — known or latent — are trapped: any
// load or store there raises SIGBUS in the accessing thread with si_code
// BUS_MCEERR_AR, si_addr the faulting address and si_addr_lsb the size of
// the unit taken out (a page, or a device-dax fault unit), as Linux does
// after a machine check. A load of latent poison makes the error known, as
// consumption does on the data path. When poison appears later (in this
// process or another), every region mapping the page loses it within
// moments and its OnPoison callback is told (the BUS_MCEERR_AO of Linux);
// poison that merely becomes known (scrub, consumption) was trapped all
// along. When poison is cleared the page comes back. An owner that can
// rebuild the data (AwaitRepairs) has the load wait for that instead.
// Pages a filesystem takes back (truncate, hole punch) trap with BUS_ADRERR.
//
// How: trapped units are PROT_NONE, and a process-wide SIGSEGV handler
// (installed at the first Reserve, passing faults that are not traps to the
// handler that was there before) turns an access to one into that SIGBUS,
// queued to the faulting thread. A blocked or ignored SIGBUS is reset to
// its default action first, as the kernel does for a machine check. A region
// listens to the MediaWatch (dax/media_watch.h) of each device file whose
// pages it holds, the one its device's holder delivery hears through, and
// keeps it alive: a region does not depend on the dax::Device that placed
// it. Loads that fault are consumed (made known) on that watch's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace daxguard::dax {
namespace internal {
struct RegionState;  // dax/mapping.cc
}
class MediaWatch;  // dax/media_watch.h

enum class TrapKind : uint8_t { kPoison, kGone };

// What a trapped access hit, in the terms the region was made for.
struct FaultReport {
  const char* name = nullptr;  // the device or file path given at Reserve
  uint64_t ino = 0;            // file regions: the inode; 0 for devices
  uint64_t offset = 0;         // device or file offset of the faulting byte
  uint64_t unit_offset = 0;    // the trapped unit that holds it (same terms)
  uint64_t unit_length = 0;
  TrapKind kind = TrapKind::kPoison;
};

class MappedRegion {
 public:
  // Reserves `length` bytes (a page multiple) of address space that traps
  // (kGone) until ranges are placed in it. `name`/`ino` are what faults
  // report.
  static Result<std::unique_ptr<MappedRegion>> Reserve(uint64_t length, bool writable, std::string name,
                                                        uint64_t ino = 0);
  ~MappedRegion();
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;

  uint8_t* addr() const;
  uint64_t length() const;
  bool writable() const;

  // Media drivers only: places [media_off, media_off+len) of the emulated
  // media device `watch` watches at region offset `at`; faults there report
  // `label_off` plus the distance into the range. `fault_unit` is the unit
  // poison takes out (4 KiB, or a device-dax alignment).
  Status PlaceMedia(const std::shared_ptr<MediaWatch>& watch, uint64_t at, uint64_t media_off, uint64_t len,
                    uint64_t label_off, uint64_t fault_unit);
  // Read-only zero pages (a file's holes).
  Status PlaceZeroes(uint64_t at, uint64_t len, uint64_t label_off);
  // Traps [at, at+len) whatever the media says (a filesystem's damage
  // records, or blocks it took back); Untrap lifts only such traps.
  Status Trap(uint64_t at, uint64_t len, TrapKind kind);
  Status Untrap(uint64_t at, uint64_t len);
  // Called, from a library thread, with the region range that poison has
  // just taken out of accessible media. Poison already there when a range
  // is placed traps it from the start, without a call.
  void OnPoison(std::function<void(uint64_t at, uint64_t len)> cb);
  // The owner rebuilds poisoned units from redundancy (a read-only mapping
  // of a filesystem with parity): a load that traps on media poison waits
  // until the unit comes back and then completes, and gets SIGBUS only when
  // the owner traps the unit as lost, or it is not back within kRepairWaitMs.
  void AwaitRepairs();
  static constexpr int kRepairWaitMs = 5000;

 private:
  explicit MappedRegion(std::unique_ptr<internal::RegionState> impl);
  std::unique_ptr<internal::RegionState> impl_;
};

// Async-signal-safe: if `addr` lies in a trapped unit of a live region,
// fills `out` and returns true. For a SIGBUS handler that wants to say what
// was lost (siginfo's si_addr).
bool DescribeFault(const void* addr, FaultReport* out);

}  // namespace daxguard::dax
