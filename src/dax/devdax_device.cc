#include "dax/devdax_device.h"

#include <fcntl.h>
#include <libpmem.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/units.h"
#include "dax/mc_copy.h"

namespace daxguard::dax {
namespace {

constexpr auto kRescanPeriod = std::chrono::seconds(1);

std::vector<uint64_t> Sectors(const std::vector<media::BadBlock>& runs) {
  std::vector<uint64_t> out;
  for (const media::BadBlock& b : runs)
    for (uint64_t s = b.sector; s < b.sector + b.count; ++s) out.push_back(s);
  return out;
}

}  // namespace

Result<std::unique_ptr<DevDaxDevice>> DevDaxDevice::Open(const std::string& path, const std::string& node,
                                                         bool writable, const std::string& sysfs_root) {
  DG_ASSIGN_OR_RETURN(media::sysfs::DevDaxInfo info, media::sysfs::DescribeDevDax(sysfs_root, node));
  DG_ASSIGN_OR_RETURN(std::vector<media::BadBlock> bad, media::sysfs::DevDaxBadBlocks(info));
  if (info.size % info.align) return Status::Corrupt(path + ": size is not a multiple of its fault unit");
  int fd = open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "cannot open " + path);
  // Device-dax maps only whole fault units, at addresses aligned to them:
  // reserve one unit more and map at the first aligned address in it.
  void* span = mmap(nullptr, info.size + info.align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (span == MAP_FAILED) {
    close(fd);
    return Status::FromErrno(errno, "cannot reserve address space for " + path);
  }
  auto at = reinterpret_cast<uint8_t*>(AlignUp(reinterpret_cast<uintptr_t>(span), info.align));
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* p = mmap(at, info.size, prot, MAP_SHARED | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    munmap(span, info.size + info.align);
    close(fd);
    return Status::FromErrno(e, "cannot map " + path);
  }
  auto* s = static_cast<uint8_t*>(span);
  if (at > s) munmap(s, static_cast<size_t>(at - s));
  if (uint64_t tail = info.align - static_cast<uint64_t>(at - s); tail) munmap(at + info.size, tail);
  std::unique_ptr<DevDaxDevice> d(new DevDaxDevice(path, std::move(info), fd, at, writable));
  d->sysfs_bad_ = std::move(bad);
  return d;
}

DevDaxDevice::DevDaxDevice(std::string path, media::sysfs::DevDaxInfo info, int fd, uint8_t* base, bool writable)
    : path_(std::move(path)), info_(std::move(info)), fd_(fd), base_(base), writable_(writable) {}

DevDaxDevice::~DevDaxDevice() {
  StopPolling();
  StopDelivering();
  munmap(base_, info_.size);
  close(fd_);
}

Status DevDaxDevice::CheckWritable() const {
  if (writable_) return Status::Ok();
  return Status::Error(EROFS, path_ + " was opened read-only");
}

bool DevDaxDevice::KnownIn(uint64_t off, uint64_t len) const {
  if (len == 0) return false;
  uint64_t s0 = off / kSectorSize, s1 = (off + len - 1) / kSectorSize + 1;
  for (const media::BadBlock& b : sysfs_bad_)
    if (b.sector < s1 && s0 < b.sector + b.count) return true;
  auto it = consumed_.lower_bound(s0);
  return it != consumed_.end() && *it < s1;
}

bool DevDaxDevice::KnownUnreadable(uint64_t off, uint64_t len) const {
  if (!BytesOk(off, len)) return true;
  std::lock_guard<std::mutex> g(mu_);
  return KnownIn(off, len);
}

std::vector<media::BadBlock> DevDaxDevice::BadBlocks() const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<uint64_t> all = Sectors(sysfs_bad_);
  all.insert(all.end(), consumed_.begin(), consumed_.end());
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  std::vector<media::BadBlock> out;
  for (uint64_t s : all) {
    if (!out.empty() && out.back().sector + out.back().count == s)
      ++out.back().count;
    else
      out.push_back({s, 1, false});
  }
  return out;
}

Result<Mapping> DevDaxDevice::DirectAccess(uint64_t pgoff, uint64_t nr_pages, AccessMode mode) {
  DG_RETURN_IF_ERROR(CheckPages(pgoff, nr_pages));
  uint64_t n = 0;
  {
    std::lock_guard<std::mutex> g(mu_);
    while (n < nr_pages && !KnownIn((pgoff + n) * kPageSize, kPageSize)) ++n;
  }
  if (n == 0 && nr_pages > 0) {
    if (mode == AccessMode::kAccess)
      return Status::Poison(path_ + ": page " + std::to_string(pgoff) + " holds a known error");
    n = 1;  // recovery mode: the page is handed out, to be rewritten whole
  }
  return Mapping{base_ + pgoff * kPageSize, n, this, pgoff * kPageSize};
}

Result<size_t> DevDaxDevice::ReadMcSafe(uint64_t off, void* dst, size_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  size_t stop = len;
  {
    std::lock_guard<std::mutex> g(mu_);  // a known error is never touched: that would be a machine check
    for (uint64_t at = AlignDown(off, kSectorSize); at < off + len; at += kSectorSize)
      if (KnownIn(at, kSectorSize)) {
        stop = at > off ? static_cast<size_t>(at - off) : 0;
        break;
      }
  }
  McCopyResult r = McCopy(dst, base_ + off, stop);
  if (r.poisoned) {
    uint64_t sector = (off + r.fault) / kSectorSize;
    {
      std::lock_guard<std::mutex> g(mu_);
      consumed_.insert(sector);
    }
    DeliverFailures(true);  // as a consumed error on the emulated path: the holder hears before we return
  }
  return r.copied;
}

Status DevDaxDevice::Write(uint64_t off, const void* src, size_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  DG_RETURN_IF_ERROR(CheckWritable());
  if (KnownUnreadable(off, len))
    return Status::Io(path_ + ": a store over a known error (offset " + std::to_string(off) + ") is refused");
  pmem_memcpy_nodrain(base_ + off, src, len);
  return Status::Ok();
}

Status DevDaxDevice::WriteBack(uint64_t off, uint64_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  if (len) pmem_flush(base_ + off, len);
  return Status::Ok();
}

void DevDaxDevice::Fence() { pmem_drain(); }

Status DevDaxDevice::WritePersist(uint64_t off, const void* src, size_t len) {
  DG_RETURN_IF_ERROR(Write(off, src, len));
  pmem_drain();
  return Status::Ok();
}

Result<size_t> DevDaxDevice::RecoveryWrite(uint64_t off, const void* src, size_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  if (KnownUnreadable(off, len))
    return Status::Io(path_ + ": clearing a known error on real hardware is not supported yet; nothing written");
  DG_RETURN_IF_ERROR(Write(off, src, len));
  return len;
}

Status DevDaxDevice::ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) {
  DG_RETURN_IF_ERROR(CheckPages(pgoff, nr_pages));
  DG_RETURN_IF_ERROR(CheckWritable());
  if (KnownUnreadable(pgoff * kPageSize, nr_pages * kPageSize))
    return Status::Io(path_ + ": clearing a known error on real hardware is not supported yet");
  pmem_memset_nodrain(base_ + pgoff * kPageSize, 0, nr_pages * kPageSize);
  return Status::Ok();
}

// One holder across processes: a write lock on the node's first byte,
// which the kernel drops if the process dies.
Status DevDaxDevice::ClaimForHolder(uint64_t) {
  struct flock l {};
  l.l_type = F_WRLCK;
  l.l_whence = SEEK_SET;
  l.l_len = 1;
  if (fcntl(fd_, F_SETLK, &l) == 0) return Status::Ok();
  if (errno == EACCES || errno == EAGAIN) {
    uint32_t pid = HolderPid();
    return Status::Busy(path_ + " is held by pid " + std::to_string(pid) + " (a mounted filesystem?)");
  }
  return Status::FromErrno(errno, "cannot claim " + path_);
}

void DevDaxDevice::UnclaimForHolder(uint64_t) {
  struct flock l {};
  l.l_type = F_UNLCK;
  l.l_whence = SEEK_SET;
  l.l_len = 1;
  (void)fcntl(fd_, F_SETLK, &l);
}

uint32_t DevDaxDevice::HolderPid() const {
  if (HasHolder()) return static_cast<uint32_t>(getpid());
  struct flock l {};
  l.l_type = F_WRLCK;
  l.l_whence = SEEK_SET;
  l.l_len = 1;
  if (fcntl(fd_, F_GETLK, &l) != 0 || l.l_type == F_UNLCK) return 0;
  return static_cast<uint32_t>(l.l_pid);
}

bool DevDaxDevice::Rescan() {
  auto bad = media::sysfs::DevDaxBadBlocks(info_);
  if (!bad.ok()) return false;  // a list we cannot read now keeps what we knew
  std::lock_guard<std::mutex> g(mu_);
  if (*bad == sysfs_bad_) return false;
  sysfs_bad_ = std::move(bad).value();
  return true;
}

void DevDaxDevice::Poll() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_cv_.wait_for(l, kRescanPeriod, [this] { return stop_; })) {
    l.unlock();
    if (Rescan()) DeliverFailures(false);
    l.lock();
  }
}

void DevDaxDevice::OnHolderRegistered() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = false;
  }
  poller_ = std::thread([this] { Poll(); });
}

void DevDaxDevice::OnHolderReleasing() { StopPolling(); }

void DevDaxDevice::StopPolling() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (poller_.joinable() && poller_.get_id() != std::this_thread::get_id()) poller_.join();
}

std::vector<Failure> DevDaxDevice::CollectFailures() {
  std::vector<Failure> out;
  for (const media::BadBlock& b : BadBlocks()) {
    std::lock_guard<std::mutex> g(mu_);
    for (uint64_t s = b.sector; s < b.sector + b.count; ++s) {
      if (told_.count(s)) continue;
      if (!out.empty() && out.back().offset + out.back().len == s * kSectorSize)
        out.back().len += kSectorSize;
      else
        out.push_back({s * kSectorSize, kSectorSize, kFailureMedia});
    }
  }
  return out;
}

void DevDaxDevice::FailureTold(const Failure& f) {
  std::lock_guard<std::mutex> g(mu_);
  for (uint64_t s = f.offset / kSectorSize; s < (f.offset + f.len) / kSectorSize; ++s) told_.insert(s);
}

}  // namespace daxguard::dax
