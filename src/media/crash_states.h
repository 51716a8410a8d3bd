// Crash states: the device images a power failure could leave, built from a
// PersistTrace the way Chipmunk (EuroSys '23) builds them. Before each
// fence, and at the end of the trace, every store not yet durable is in
// flight: any of them may have reached the media, line by line, and a line
// only as a whole store sequence up to some store (the cache holds one
// value of a line and writes that back), torn at 8 bytes at most.
//
// At each such point the images are: the durable prefix plus every subset
// of the in-flight stores while there are few (`all_subsets`), else the
// empty and full sets, each store alone, all but each, the stores in order
// up to each, and seeded random subsets; for the last few stores spanning
// several lines, part of their lines; and torn 8-byte variants of the last
// store. The media's error state changes at once (firmware), so a change is
// a point of its own, the images before it keeping the state before it.
// Adjacent page-sized stores count as one (data written in a run
// persists in a run, as Chipmunk coalesces data writes). Identical images
// are visited once.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "media/persist_trace.h"

namespace daxguard::media {

struct CrashStateOptions {
  uint32_t all_subsets = 8;      // every subset up to this many stores in flight
  uint32_t random_subsets = 16;  // beyond it, this many random subsets too
  uint32_t split_stores = 4;     // the last this many multi-line stores persist in part
  uint32_t torn_words = 8;       // torn variants of the last store
  uint64_t seed = 1;
  uint64_t max_states = UINT64_MAX;  // distinct states visited at most
};

struct CrashPoint {
  uint64_t event = 0;      // the fence it comes before (events().size(): the end)
  uint64_t markers = 0;    // markers before it
  uint32_t in_flight = 0;  // stores in flight there
  uint64_t errors = 0;     // the media's error state there (PersistTrace::error_state)
};

struct CrashStats {
  uint64_t points = 0;     // fences, error-state changes and the end
  uint64_t generated = 0;  // images built
  uint64_t distinct = 0;   // visited
};

// Visits each distinct crash image of `trace` in trace order. The image is
// valid during the call only; return false to stop.
using CrashVisitor = std::function<bool(const CrashPoint&, std::span<const uint8_t> image)>;
CrashStats ForEachCrashState(const PersistTrace& trace, const CrashStateOptions& opt, const CrashVisitor& visit);

}  // namespace daxguard::media
