#include "tools/crash_check.h"

#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <random>

#include "common/units.h"
#include "dax/pmem_dax.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "media/crash_states.h"
#include "tools/crash_model.h"
#include "tools/crash_workloads.h"

namespace daxguard::tools {
namespace {

constexpr uint64_t kDeviceSize = 16ull << 20;  // daxfs's smallest
constexpr size_t kKeepFailures = 20;
constexpr uint64_t kRecoveryEvery = 8;
constexpr uint64_t kRecoveryStates = 4;

// The order workloads run in: the special ones (mkfs, compaction, poison),
// each operation alone, then seeded pairs and triples, as many as the state
// budget reaches (a small budget, as under the sanitizers, still reaches
// the poison paths).
class WorkloadSource {
 public:
  explicit WorkloadSource(uint64_t seed) : rng_(seed), special_(SpecialCrashWorkloads()) {}
  CrashWorkload Next() {
    const auto& all = CrashSteps();
    size_t n = n_++;
    if (n < special_.size()) return special_[n];
    n -= special_.size();
    if (n < all.size()) return {all[n].name, nullptr, false, {all[n]}};
    CrashWorkload w;
    for (size_t i = 0, len = n % 3 == 0 ? 3 : 2; i < len; ++i) {
      w.steps.push_back(all[rng_() % all.size()]);
      w.name += (i ? "; " : "") + w.steps.back().name;
    }
    return w;
  }

 private:
  std::mt19937_64 rng_;
  std::vector<CrashWorkload> special_;
  size_t n_ = 0;
};

class Checker {
 public:
  Checker(const CrashCheckOptions& opt, CrashCheckReport* report) : opt_(opt), r_(report) {}

  Status Init() {
    // Named by the process: two checks in one directory keep apart.
    std::string pid = std::to_string(getpid());
    work_path_ = opt_.dir + "/crash-work." + pid;
    scratch_path_ = opt_.dir + "/crash-scratch." + pid;
    unlink(scratch_path_.c_str());
    media::CreateOptions co;
    co.size = kDeviceSize;
    auto made = media::PmemDevice::Create(scratch_path_, co);
    if (!made.ok()) return made.status();
    scratch_ = std::make_unique<dax::PmemDax>(std::move(made).value());
    return Status::Ok();
  }
  ~Checker() {
    scratch_.reset();
    unlink(scratch_path_.c_str());
    unlink(work_path_.c_str());
  }

  // Records `w` and checks its crash states; false once the budget is spent.
  Result<bool> Run(const CrashWorkload& w) {
    std::vector<ModelTree> trees;
    auto trace = Record(w, &trees);
    if (!trace.ok()) return trace.status();
    ++r_->workloads;
    media::CrashStateOptions co;
    co.seed = opt_.seed + r_->workloads;
    co.max_states = opt_.states - r_->checked;
    const media::PersistTrace& t = **trace;
    auto stats = media::ForEachCrashState(t, co, [&](const media::CrashPoint& p, std::span<const uint8_t> img) {
      ++r_->checked;
      std::string why = Check(img, t.error_state(p.errors), trees.at(p.markers),
                              p.markers + 1 < trees.size() ? &trees[p.markers + 1] : nullptr);
      if (!why.empty()) Fail(w, p, why);
      return true;
    });
    r_->fences += stats.points;
    r_->generated += stats.generated;
    return r_->checked < opt_.states;
  }

 private:
  // Runs `w` on a tracked device, from its mkfs or mount to its unmount.
  // trees[k]: what the image may hold once k markers have passed (each
  // call the workload made returned).
  Result<std::unique_ptr<media::PersistTrace>> Record(const CrashWorkload& w, std::vector<ModelTree>* trees) {
    unlink(work_path_.c_str());
    media::CreateOptions co;
    co.size = kDeviceSize;
    ModelTree model;
    {
      auto made = media::PmemDevice::Create(work_path_, co);
      if (!made.ok()) return made.status();
      dax::PmemDax dev(std::move(made).value());
      DG_RETURN_IF_ERROR(fs::Filesystem::Mkfs(dev, opt_.protection));
      auto fs = fs::Filesystem::Mount(dev);
      if (!fs.ok()) return fs.status();
      DG_RETURN_IF_ERROR(MakeCrashBaseTree(**fs, &model));
      if (w.prepare) DG_RETURN_IF_ERROR(w.prepare(**fs, model));
    }
    auto dev = dax::PmemDax::Open(work_path_);
    if (!dev.ok()) return dev.status();
    media::PmemDevice& media = (*dev)->media();
    auto trace = std::make_unique<media::PersistTrace>(std::span<const uint8_t>(media.data(), media.size()),
                                                       media.ErrorState());
    media.Track(trace.get());
    trees->assign(1, model);
    auto returned = [&] {
      trees->push_back(model);
      trace->Mark(trees->size() - 1);
    };
    if (w.mkfs) {
      DG_RETURN_IF_ERROR(fs::Filesystem::Mkfs(**dev, opt_.protection));
      model = ModelTree();
      returned();
    }
    {
      auto fs = fs::Filesystem::Mount(**dev);
      if (!fs.ok()) return fs.status();
      returned();
      for (const CrashStep& s : w.steps) {
        (void)s.run(**fs, model, returned);  // a failed call changes nothing, in the model or (checked) on the device
        returned();
      }
    }
    returned();  // unmounted
    media.Track(nullptr);
    return trace;
  }

  // "" when the crash image is one the workload allows. Every
  // kRecoveryEvery-th image's mount-time recovery is itself crashed: its
  // own crash states (up to kRecoveryStates) must be allowed too.
  std::string Check(std::span<const uint8_t> img, const media::MediaErrorState& errors, const ModelTree& before,
                    const ModelTree* after) {
    if (Status s = Restore(img, errors); !s.ok()) return "restore: " + s.message();
    if (++images_ % kRecoveryEvery) return CheckImage(before, after);
    media::PersistTrace recovery(img, errors);
    scratch_->media().Track(&recovery);
    std::string why = CheckImage(before, after);
    scratch_->media().Track(nullptr);
    if (!why.empty()) return why;
    media::CrashStateOptions co;
    co.seed = images_;
    co.max_states = kRecoveryStates;
    media::ForEachCrashState(recovery, co, [&](const media::CrashPoint& p, std::span<const uint8_t> again) {
      ++r_->recovery_checked;
      Status s = Restore(again, recovery.error_state(p.errors));
      why = s.ok() ? CheckImage(before, after) : "restore: " + s.message();
      if (!why.empty()) why = "crashed again in its recovery: " + why;
      return why.empty();
    });
    return why;
  }

  // Puts `img` and its error state on the scratch device: only the pages
  // that differ (most of the device holds the same bytes from one image to
  // the next).
  Status Restore(std::span<const uint8_t> img, const media::MediaErrorState& errors) {
    media::PmemDevice& m = scratch_->media();
    DG_RETURN_IF_ERROR(m.SetErrorState(errors));
    for (uint64_t off = 0; off < img.size(); off += kPageSize)
      if (std::memcmp(m.data() + off, img.data() + off, kPageSize) != 0)
        DG_RETURN_IF_ERROR(m.Write(off, img.data() + off, kPageSize));
    return Status::Ok();
  }

  // Checks the scratch device as it holds an image now. Under media errors
  // the power failure may have come before the filesystem rewrote a
  // poisoned metadata block from its other copy: fsck names that (and only
  // that), and the mount must finish the repair, leaving fsck nothing.
  std::string CheckImage(const ModelTree& before, const ModelTree* after) {
    const bool errors = !scratch_->media().BadBlocks().empty() || !scratch_->media().MediaErrors().empty();
    if (std::string why = FsckProblems(errors); !why.empty()) return why;
    std::string why;
    {
      auto fs = fs::Filesystem::Mount(*scratch_);
      if (!fs.ok()) return "mount: " + fs.status().message();
      if ((*fs)->read_only()) return "mounted read-only";
      auto tree = ReadTree(**fs);
      if (!tree.ok()) return "reading the tree: " + tree.status().message();
      why = CheckTree(*tree, before, after);
      uint64_t mismatched = (*fs)->Health().checksum_mismatches;
      if (why.empty() && mismatched)
        why = std::to_string(mismatched) + " block(s) read did not match their checksum";
    }
    if (why.empty() && errors) why = FsckProblems(false);
    return why.empty() ? "" : why + (errors ? " (after the mount's repairs)" : "");
  }

  // "" when fsck finds nothing wrong; with `copies_may_differ`, a metadata
  // block the two copies disagree on is not wrong either.
  std::string FsckProblems(bool copies_may_differ) {
    auto fsck = fs::Fsck(*scratch_, false);
    if (!fsck.ok()) return "fsck: " + fsck.status().message();
    std::vector<std::string> problems = fsck->problems;
    if (copies_may_differ)
      std::erase_if(problems, [](const std::string& p) { return p.ends_with("differ between the two copies"); });
    if (problems.empty()) return "";
    return "fsck: " + problems.front() +
           (problems.size() > 1 ? " (and " + std::to_string(problems.size() - 1) + " more)" : "");
  }

  void Fail(const CrashWorkload& w, const media::CrashPoint& p, const std::string& why) {
    ++r_->failed;
    if (r_->failures.size() < kKeepFailures)
      r_->failures.push_back(w.name + " @ event " + std::to_string(p.event) + " (" + std::to_string(p.markers) +
                             " markers, " + std::to_string(p.in_flight) + " stores in flight): " + why);
  }

  const CrashCheckOptions& opt_;
  CrashCheckReport* r_;
  std::string work_path_, scratch_path_;
  std::unique_ptr<dax::PmemDax> scratch_;
  uint64_t images_ = 0;
};

}  // namespace

Result<CrashCheckReport> RunCrashCheck(const CrashCheckOptions& opt) {
  auto start = std::chrono::steady_clock::now();
  // Device images (16 MiB) come and go by the thousand: kept in the heap
  // and reused, not mapped and faulted in afresh each time.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  CrashCheckReport report;
  Checker checker(opt, &report);
  DG_RETURN_IF_ERROR(checker.Init());
  WorkloadSource source(opt.seed);
  for (bool more = opt.states > 0; more;) {
    auto r = checker.Run(source.Next());
    if (!r.ok()) return r.status();
    more = *r;
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (opt.progress) opt.progress(report);
  }
  return report;
}

}  // namespace daxguard::tools
