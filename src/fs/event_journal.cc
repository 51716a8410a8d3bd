#include "fs/event_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>

#include "media/pmem_device.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t kStartOverBytes = 4ull << 20;

std::string RuntimeDir() {
  if (const char* d = std::getenv("DAXGUARD_RUNTIME_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) return std::string(x) + "/daxguard";
  return "/tmp/daxguard-" + std::to_string(getuid());
}

}  // namespace

std::string EventTimestamp() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%lld.%09ld", static_cast<long long>(ts.tv_sec), ts.tv_nsec);
  return stamp;
}

std::string EventJournalPath(dax::Device& dev) {
  std::vector<media::PmemDevice*> media = dev.Media();
  if (media.empty()) return "";
  std::string key = std::to_string(dev.size());
  for (media::PmemDevice* m : media) {
    struct stat st {};
    if (stat(m->path().c_str(), &st) != 0) return "";
    key += ":" + std::to_string(st.st_dev) + "." + std::to_string(st.st_ino);
  }
  char name[40];
  std::snprintf(name, sizeof name, "events-%016zx.jsonl", std::hash<std::string>{}(key));
  return RuntimeDir() + "/" + name;
}

void EventJournal::Open() {
  if (path_.empty()) return;
  std::string dir = path_.substr(0, path_.rfind('/'));
  (void)mkdir(dir.c_str(), 0700);  // the only level we make; an existing one stays as it is
  fd_ = open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  struct stat st {};
  if (fd_ >= 0 && fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) > kStartOverBytes)
    (void)ftruncate(fd_, 0);
}

EventJournal::~EventJournal() {
  if (fd_ >= 0) close(fd_);
}

void EventJournal::Publish(const char* name, const nlohmann::json& detail) {
  std::call_once(opened_, [this] { Open(); });
  if (fd_ < 0) return;
  nlohmann::json j{{"timestamp", EventTimestamp()}, {"holder_pid", getpid()}, {"event", {{name, true}}}};
  for (const auto& [k, v] : detail.items()) j[k] = v;
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  (void)!write(fd_, line.data(), line.size());
}

EventJournalReader::EventJournalReader(std::string path) : path_(std::move(path)) { Open(true); }

EventJournalReader::~EventJournalReader() {
  if (fd_ >= 0) close(fd_);
}

bool EventJournalReader::Open(bool at_end) {
  if (path_.empty()) return false;
  fd_ = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) return false;
  struct stat st {};
  pos_ = at_end && fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  return true;
}

std::vector<nlohmann::json> EventJournalReader::Next() {
  std::vector<nlohmann::json> out;
  if (fd_ < 0 && !Open(false)) return out;
  struct stat st {};
  if (fstat(fd_, &st) != 0) return out;
  if (static_cast<uint64_t>(st.st_size) < pos_) {  // started over
    pos_ = 0;
    partial_.clear();
  }
  char buf[1 << 16];
  for (ssize_t n; (n = pread(fd_, buf, sizeof buf, static_cast<off_t>(pos_))) > 0;) {
    pos_ += static_cast<uint64_t>(n);
    partial_.append(buf, static_cast<size_t>(n));
  }
  size_t start = 0;
  for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
    auto j = nlohmann::json::parse(partial_.begin() + static_cast<long>(start),
                                   partial_.begin() + static_cast<long>(nl), nullptr, false);
    if (!j.is_discarded() && j.is_object()) out.push_back(std::move(j));  // anything else is not ours
  }
  partial_.erase(0, start);
  return out;
}

}  // namespace daxguard::fs
