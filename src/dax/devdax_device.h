// DevDaxDevice: the dax driver for a real Linux device-dax node
// (/dev/daxX.Y), the first of daxguard's real-hardware backends. The whole
// node is mapped shared; its size, fault unit and known errors come from
// sysfs (media/linux_sysfs.h): the region's badblocks clipped to the node,
// read at open and again every second while held, each new one told to the
// holder as an emulated error is. Copies out of the node are
// machine-check safe (dax/mc_copy.h): a load of poison nobody knew of stops
// the copy at the line before, and the error becomes known here and to the
// holder. Stores are non-temporal or written back (clwb) and fenced
// (sfence) through libpmem. The kernel is not asked to clear errors yet:
// recovery writes and zeroing over a known error fail (CanRecover says so),
// and the error stays. Not mappable through dax::MappedRegion yet. One
// holder across processes: a POSIX record lock on the node.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dax/dax_device.h"
#include "media/linux_sysfs.h"

namespace daxguard::dax {

class DevDaxDevice final : public Device {
 public:
  // `path` names the node; `node` is its sysfs name ("dax0.0").
  static Result<std::unique_ptr<DevDaxDevice>> Open(const std::string& path, const std::string& node,
                                                    bool writable = true, const std::string& sysfs_root = "/sys");
  ~DevDaxDevice() override;

  const media::sysfs::DevDaxInfo& info() const { return info_; }
  uint64_t size() const override { return info_.size; }
  Capabilities caps() const override { return {false, true, false, kPageSize}; }
  Result<Mapping> DirectAccess(uint64_t pgoff, uint64_t nr_pages, AccessMode mode) override;
  Result<size_t> RecoveryWrite(uint64_t off, const void* src, size_t len) override;
  Status ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) override;
  Result<size_t> ReadMcSafe(uint64_t off, void* dst, size_t len) override;
  Status Write(uint64_t off, const void* src, size_t len) override;
  Status WriteBack(uint64_t off, uint64_t len) override;
  void Fence() override;
  Status WritePersist(uint64_t off, const void* src, size_t len) override;
  std::vector<media::BadBlock> BadBlocks() const override;
  bool KnownUnreadable(uint64_t off, uint64_t len) const override;
  bool CanRecover(uint64_t, uint64_t) const override { return false; }
  uint32_t HolderPid() const override;

 protected:
  Status ClaimForHolder(uint64_t token) override;
  void UnclaimForHolder(uint64_t token) override;
  void OnHolderRegistered() override;
  void OnHolderReleasing() override;
  std::vector<Failure> CollectFailures() override;
  void FailureTold(const Failure& f) override;
  Result<std::vector<MediaRun>> MediaRunsOf(uint64_t, uint64_t) override {
    return Status::Error(ENOTSUP, path_ + ": real hardware has no emulated media below it");
  }

 private:
  DevDaxDevice(std::string path, media::sysfs::DevDaxInfo info, int fd, uint8_t* base, bool writable);
  Status CheckWritable() const;
  // Rereads the region's list; whether it changed.
  bool Rescan();
  void Poll();
  void StopPolling();
  bool KnownIn(uint64_t off, uint64_t len) const;  // under mu_

  const std::string path_;
  const media::sysfs::DevDaxInfo info_;
  const int fd_;
  uint8_t* const base_;
  const bool writable_;
  mutable std::mutex mu_;
  std::vector<media::BadBlock> sysfs_bad_;  // the kernel's, in our sectors
  std::set<uint64_t> consumed_;             // sectors our copies met poison in
  std::set<uint64_t> told_;                 // sectors this holder has heard of
  std::thread poller_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
};

}  // namespace daxguard::dax
