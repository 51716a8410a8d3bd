// PmemDax: the dax driver for an emulated persistent-memory device (what
// drivers/nvdimm/pmem.c is to Linux). Its delivery (dax::Device) collects
// the media's unacknowledged known-error records and acknowledges each once
// the holder has been told, so no error goes unreported even if it became
// known while nobody held the device. It is asked to look by the media in
// this process at once, and for other processes by the device file's
// MediaWatch, which its mappings listen to as well.
#pragma once

#include <cstring>
#include <memory>
#include <string>

#include "dax/dax_device.h"
#include "dax/direct_memory.h"
#include "dax/media_watch.h"
#include "media/pmem_device.h"

namespace daxguard::dax {

class PmemDax final : public Device {
 public:
  explicit PmemDax(std::shared_ptr<media::PmemDevice> media);
  ~PmemDax() override;
  static Result<std::unique_ptr<PmemDax>> Open(const std::string& path,
                                               media::OpenMode mode = media::OpenMode::kReadWrite);

  media::PmemDevice& media() { return *media_; }

  uint64_t size() const override { return media_->size(); }
  Capabilities caps() const override;
  Result<Mapping> DirectAccess(uint64_t pgoff, uint64_t nr_pages, AccessMode mode) override;
  Result<size_t> RecoveryWrite(uint64_t off, const void* src, size_t len) override;
  Status ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) override;
  Result<size_t> ReadMcSafe(uint64_t off, void* dst, size_t len) override;
  Status Write(uint64_t off, const void* src, size_t len) override;
  Status WriteBack(uint64_t off, uint64_t len) override;
  void Fence() override { media_->Fence(); }
  Status WritePersist(uint64_t off, const void* src, size_t len) override;
  // Inline: bounds, then a word of each of the media's filters. A file
  // that shrank under the copy fails it; the slow path says why. Writes
  // are written back as they store: durable at the next Fence.
  bool ReadClean(uint64_t off, void* dst, size_t len) override { return direct_.ReadClean(off, dst, len); }
  bool WriteClean(uint64_t off, const void* src, size_t len) override { return direct_.WriteClean(off, src, len); }
  std::optional<DirectLayout> DirectLayoutOf(uint64_t off, uint64_t len) const override {
    if (!BytesOk(off, len)) return std::nullopt;
    return DirectLayout{0, len, len, {{&direct_, off}}};
  }
  std::vector<media::PmemDevice*> Media() override { return {media_.get()}; }
  std::vector<ByteRange> MapFromMedia(const media::PmemDevice& m, uint64_t off, uint64_t len) override {
    if (&m != media_.get()) return {};
    return {{off, len}};
  }
  std::vector<media::BadBlock> BadBlocks() const override { return media_->BadBlocks(); }
  bool KnownUnreadable(uint64_t off, uint64_t len) const override {
    return !BytesOk(off, len) || media_->HasKnownErrors(off, len);
  }
  uint32_t HolderPid() const override { return media_->HolderPid(); }
  // Fault unit: a page, or for device-dax its alignment, which the range
  // must then start and end on (a fixed fault size, as device-dax has).
  Status MapInto(MappedRegion& region, uint64_t at, uint64_t off, uint64_t len, uint64_t label_off) override;

 protected:
  Status ClaimForHolder(uint64_t token) override;
  void UnclaimForHolder(uint64_t token) override;
  void OnHolderRegistered() override;
  void OnHolderReleasing() override;
  std::vector<Failure> CollectFailures() override;
  void FailureTold(const Failure& f) override;
  Result<std::vector<MediaRun>> MediaRunsOf(uint64_t off, uint64_t len) override {
    return std::vector<MediaRun>{{media_.get(), off, len}};
  }

 private:
  void StopListening();

  std::shared_ptr<media::PmemDevice> media_;
  std::shared_ptr<MediaWatch> watch_;
  DirectMemory direct_;
  uint64_t listening_ = 0;  // our id with watch_ while held, else 0
  uint64_t claim_token_ = 0;  // the holder's claim on the device file, 0 if none
};

}  // namespace daxguard::dax
