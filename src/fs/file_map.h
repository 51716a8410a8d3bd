// FileMapping: a range of a daxfs file mapped into the process, as mmap of
// a file on a Linux DAX filesystem: the file's extents are placed in place,
// so loads and stores reach the device with no copy.
//
// The filesystem keeps every mapping in step with its file. When an extent
// moves (copy-on-write by write(), truncate, hole punch, clone) the pages are
// placed again or taken back (BUS_ADRERR); damaged file ranges trap as
// poison (BUS_MCEERR_AR) even where the media itself is clean; and a
// writable mapping never shares a block with another owner: its blocks are
// unshared when it is made and whenever a clone would share them, so stores
// through it change this file alone.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "dax/mapping.h"

namespace daxguard::fs {

class DataPath;

class FileMapping {
 public:
  ~FileMapping();
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;

  uint8_t* addr() const { return region_->addr(); }
  uint64_t offset() const { return off_; }  // file offset of addr()
  uint64_t length() const { return region_->length(); }
  bool writable() const { return region_->writable(); }
  dax::MappedRegion& region() { return *region_; }
  // Told, from a library thread, of file ranges that poison has just taken
  // out of this mapping (Linux's BUS_MCEERR_AO).
  void OnPoison(std::function<void(uint64_t file_off, uint64_t len)> cb) {
    region_->OnPoison([off = off_, cb = std::move(cb)](uint64_t at, uint64_t len) { cb(off + at, len); });
  }

 private:
  friend class DataPath;
  friend class File;
  FileMapping(DataPath* dp, uint64_t ino, uint64_t off, uint64_t size, std::unique_ptr<dax::MappedRegion> r)
      : dp_(dp), ino_(ino), off_(off), size_(size), region_(std::move(r)) {}

  DataPath* dp_;  // null once the filesystem is gone (the pages are taken back)
  uint64_t ino_;
  uint64_t off_;
  uint64_t size_;   // the file size the pages were last placed for
  std::unique_ptr<dax::MappedRegion> region_;
};

}  // namespace daxguard::fs
