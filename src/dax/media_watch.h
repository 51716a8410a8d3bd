// dax::MediaWatch: the one thread per emulated device file in this process
// that hears what changes in its poison and its known errors, whichever
// process changed them, and has its listeners look again: the device's
// delivery (PmemDax asks its holder delivery to collect) and the mappings of
// the device's memory (dax/mapping.cc retraps their pages). Both learn of
// the media through the same handle the device uses; nothing is opened again.
//
// Shared: a mapping keeps the watch (and the media handle in it) alive after
// the device that placed it is gone. The thread runs while anyone listens,
// and is joined when the last listener lets go (unless it lets go from its
// own call), so nothing touches the device file after that.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "media/pmem_device.h"

namespace daxguard::dax {

class MediaWatch : public std::enable_shared_from_this<MediaWatch> {
 public:
  static std::shared_ptr<MediaWatch> Create(std::shared_ptr<media::PmemDevice> media);
  ~MediaWatch();
  MediaWatch(const MediaWatch&) = delete;
  MediaWatch& operator=(const MediaWatch&) = delete;

  media::PmemDevice& media() const { return *media_; }

  // `fn` runs on the watch thread after each change (one listener at a
  // time, never while Unlisten for it has returned).
  uint64_t Listen(std::function<void()> fn);
  // Once it returns, `fn` is not running and will not run again, except
  // when called from `fn` itself, which then finishes. The last listener's
  // Unlisten ends the thread.
  void Unlisten(uint64_t id);

 private:
  explicit MediaWatch(std::shared_ptr<media::PmemDevice> media) : media_(std::move(media)) {}
  // The thread of generation `gen`: it ends once gen_ moves on.
  void Run(uint64_t gen, uint32_t seen);
  bool Current(uint64_t gen);
  void CallListeners(uint64_t gen);

  std::shared_ptr<media::PmemDevice> media_;
  std::recursive_mutex calls_mu_;  // held while listeners run
  std::mutex mu_;                  // guards everything below
  std::map<uint64_t, std::function<void()>> listeners_;
  uint64_t next_id_ = 1;
  uint64_t gen_ = 0;      // moves when a thread starts or is told to end
  bool running_ = false;  // a thread of generation gen_ runs
  std::thread thread_;
};

}  // namespace daxguard::dax
