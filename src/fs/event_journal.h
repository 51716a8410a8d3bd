// fs::EventJournal: what a filesystem does about media errors (a block
// rebuilt, a file's bytes lost, free space quarantined), published for
// monitors in other processes (daxguard monitor), as Linux publishes a
// filesystem's errors through fanotify (FAN_FS_ERROR). One JSON object per
// line, appended to a journal per device in the runtime directory:
// $DAXGUARD_RUNTIME_DIR, else $XDG_RUNTIME_DIR/daxguard, else
// /tmp/daxguard-UID. The journal is a notice board, not a record: what
// persists is the filesystem's own (health).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "dax/dax_device.h"

namespace daxguard::fs {

// Now, as monitors print it: "SECONDS.NANOSECONDS" of CLOCK_REALTIME.
std::string EventTimestamp();

// The journal of device `dev`, named by its media files and size (so a
// stack and its legs have their own); "" for a device without media.
std::string EventJournalPath(dax::Device& dev);

class EventJournal {
 public:
  // Appends to `path`, made at the first event (a journal grown past 4 MiB
  // starts over). One that cannot be opened publishes nothing: events are a
  // courtesy.
  explicit EventJournal(std::string path) : path_(std::move(path)) {}
  ~EventJournal();
  EventJournal(const EventJournal&) = delete;
  EventJournal& operator=(const EventJournal&) = delete;

  // {"timestamp", "holder_pid", "event": {name: true}, detail...}, as one
  // write: safe from any thread, and lines of several writers never mix.
  void Publish(const char* name, const nlohmann::json& detail);

 private:
  void Open();
  std::string path_;
  std::once_flag opened_;
  int fd_ = -1;
};

// The monitor's side: the events appended since the last call, from the
// end of the journal as it was when made (or its start, if it appears
// later or starts over).
class EventJournalReader {
 public:
  explicit EventJournalReader(std::string path);
  ~EventJournalReader();
  EventJournalReader(const EventJournalReader&) = delete;
  EventJournalReader& operator=(const EventJournalReader&) = delete;
  std::vector<nlohmann::json> Next();

 private:
  bool Open(bool at_end);
  std::string path_;
  int fd_ = -1;
  uint64_t pos_ = 0;
  std::string partial_;  // a line whose end is not written yet
};

}  // namespace daxguard::fs
