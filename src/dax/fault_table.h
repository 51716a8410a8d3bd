// Internal to dax/mapping.cc: what the SIGSEGV handler knows of every live
// mapped region. The registry publishes an immutable sorted array of
// spans through one atomic pointer; the handler reads it without locks or
// allocation, and replaced arrays (and media files no region uses any
// more) are freed only once no handler is inside one.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dax/mapping.h"
#include "dax/mapping_spans.h"

namespace daxguard::dax::internal {

// One span of a live region, in addresses.
struct FaultSpan {
  uintptr_t lo = 0, hi = 0;
  Span span;  // region offsets: address = region + offset
  uintptr_t region = 0;
  bool writable = false;
  bool awaits_repair = false;  // the region's MappedRegion::AwaitRepairs
  const char* name = nullptr;
  uint64_t ino = 0;
};

// The registry's side; the caller serialises these (the registry lock).
// Installs the process-wide handler on first use.
void PublishFaultSpans(std::vector<FaultSpan> spans);
// Frees `obj` once no handler can still be looking at it.
void RetireAfterPublish(std::shared_ptr<void> obj);

// mapping.cc's side, async-signal-safe: asks the media file's watch to
// consume (make known) the poison in [off, off+len). False if its queue is full.
bool PostConsumption(MediaFile* file, uint64_t off, uint64_t len);

}  // namespace daxguard::dax::internal
