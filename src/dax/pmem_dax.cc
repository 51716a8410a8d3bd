#include "dax/pmem_dax.h"

#include <algorithm>
#include <utility>

namespace daxguard::dax {

PmemDax::PmemDax(std::shared_ptr<media::PmemDevice> media)
    : media_(std::move(media)), watch_(MediaWatch::Create(media_)), direct_(*this, *media_) {
  media_->SetErrorListener([this] { DeliverFailures(true); });
}

PmemDax::~PmemDax() {
  StopListening();
  StopDelivering();
  media_->SetErrorListener(nullptr);
  // A holder that never released: its claim lives in the device file and
  // would keep the device held, for this process and others, until exit.
  if (claim_token_) media_->ReleaseHolder(claim_token_);
}

Result<std::unique_ptr<PmemDax>> PmemDax::Open(const std::string& path, media::OpenMode mode) {
  auto media = media::PmemDevice::Open(path, mode);
  if (!media.ok()) return media.status();
  return std::make_unique<PmemDax>(std::move(media).value());
}

Result<Mapping> PmemDax::DirectAccess(uint64_t pgoff, uint64_t nr_pages, AccessMode mode) {
  DG_RETURN_IF_ERROR(CheckPages(pgoff, nr_pages));
  if (media_->shrunk()) return media_->ShrankError();
  Mapping m{media_->data() + pgoff * kPageSize, nr_pages, this, pgoff * kPageSize};
  auto bad = media_->FirstKnownSector(pgoff * kPageSize, nr_pages * kPageSize);
  if (!bad) [[likely]] return m;
  uint64_t bad_page = *bad * kSectorSize / kPageSize;
  if (bad_page > pgoff) {
    m.pages = bad_page - pgoff;
    return m;
  }
  if (mode == AccessMode::kAccess)
    return Status::Poison("page " + std::to_string(pgoff) + " holds known poison (sector " +
                          std::to_string(*bad) + ")");
  m.pages = 1;  // recovery goes one page at a time, as the firmware clears reliably so
  return m;
}

Capabilities PmemDax::caps() const {
  const media::Geometry& geo = media_->geometry();
  bool devdax = geo.mode == media::Mode::kDevdax;
  return {true, true, devdax, devdax ? geo.align : kPageSize};
}

Result<size_t> PmemDax::RecoveryWrite(uint64_t off, const void* src, size_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  if (!media_->HasPoison(off, len) && !media_->HasKnownErrors(off, len)) {
    DG_RETURN_IF_ERROR(media_->Write(off, src, len));
    DG_RETURN_IF_ERROR(media_->WriteBack(off, len));
    return len;
  }
  if (!IsAligned(off, kPageSize) || !IsAligned(len, kPageSize))
    return Status::Io("recovery write over poison must cover whole 4096-byte pages; nothing written");
  // The new data first, durable under the poison (a power failure there
  // leaves pages that still fail reads); then only the poisoned clear units
  // are cleared, the data kept; then the known-error records go. No moment
  // shows the clear's zeroes, to a read or to a mapping's load.
  DG_RETURN_IF_ERROR(media_->Write(off, src, len));
  DG_RETURN_IF_ERROR(media_->WriteBack(off, len));
  media_->Fence();
  const uint64_t unit = media_->clear_unit();
  for (const media::MediaError& e : media_->MediaErrorsIn(off, len)) {
    uint64_t lo = AlignDown(e.offset, unit), hi = AlignUp(e.offset + e.length, unit);
    DG_RETURN_IF_ERROR(media_->ClearPoisonUnder(lo, hi - lo));
  }
  DG_RETURN_IF_ERROR(media_->ForgetKnown(off, len));
  return len;
}

Status PmemDax::ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) {
  DG_RETURN_IF_ERROR(CheckPages(pgoff, nr_pages));
  // The clear's zeroes are durable when it returns (firmware), before the
  // known-error records go.
  DG_RETURN_IF_ERROR(media_->ClearPoison(pgoff * kPageSize, nr_pages * kPageSize));
  return media_->ForgetKnown(pgoff * kPageSize, nr_pages * kPageSize);
}

Result<size_t> PmemDax::ReadMcSafe(uint64_t off, void* dst, size_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  size_t n = media_->ReadMcSafe(off, dst, len);
  if (media_->shrunk()) return media_->ShrankError();
  return n;
}

Status PmemDax::Write(uint64_t off, const void* src, size_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  return media_->Write(off, src, len);
}

Status PmemDax::WriteBack(uint64_t off, uint64_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  return media_->WriteBack(off, len);
}

Status PmemDax::WritePersist(uint64_t off, const void* src, size_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  return media_->WritePersist(off, src, len);
}

Status PmemDax::MapInto(MappedRegion& region, uint64_t at, uint64_t off, uint64_t len, uint64_t label_off) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  Capabilities c = caps();
  bool devdax = c.devdax;
  uint64_t unit = c.fault_unit;
  if (len == 0 || !IsAligned(off, unit) || !IsAligned(len, unit))
    return Status::Invalid(media_->path() + ": " + (devdax ? "device-dax" : "fsdax") + " mappings must start and end on " +
                           HumanBytes(double(unit)) + " boundaries (offset " + std::to_string(off) + ", length " +
                           std::to_string(len) + ")");
  return region.PlaceMedia(watch_, at, off, len, label_off, unit);
}

std::vector<Failure> PmemDax::CollectFailures() {
  // Errors cleared before any holder heard of them are told like the rest:
  // their data is gone, and whoever owns it must learn so.
  media_->RestoreUntold();
  std::vector<Failure> out;
  for (const media::BadBlock& b : media_->Unacknowledged())
    out.push_back({b.sector * kSectorSize, b.count * kSectorSize, kFailureMedia});
  return out;
}

void PmemDax::FailureTold(const Failure& f) {
  (void)media_->Acknowledge({f.offset / kSectorSize, f.len / kSectorSize, false});
}

Status PmemDax::ClaimForHolder(uint64_t token) {
  DG_RETURN_IF_ERROR(media_->ClaimHolder(token));
  claim_token_ = token;
  return Status::Ok();
}

void PmemDax::UnclaimForHolder(uint64_t token) {
  media_->ReleaseHolder(token);
  claim_token_ = 0;
}

// Errors found by other processes: the watch asks the delivery to look.
void PmemDax::OnHolderRegistered() {
  listening_ = watch_->Listen([this] { DeliverFailures(false); });
}

void PmemDax::OnHolderReleasing() { StopListening(); }

void PmemDax::StopListening() {
  if (uint64_t id = std::exchange(listening_, 0)) watch_->Unlisten(id);
}

}  // namespace daxguard::dax
