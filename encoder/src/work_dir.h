// The encoder's work folder: one set of files per finished segment, so that
// an interrupted encode (Ctrl-C, kill -9, a lost machine) resumes at the first
// unfinished segment, and so that several ranks can share the segments of one
// encode through a shared folder. Layout:
//   manifest.json           what is being encoded (input, every parameter that
//                           changes the output); a resume must match it
//   seg-00012.lr            LR packets of segment 12 (timestamps from 0)
//   seg-00012.model         its model update as the file will carry it
//   seg-00012.recon         the weights the client reconstructs (fp32 blob):
//                           the warm start and delta reference of segment 13
//   seg-00012.routing       its routing blob
//   seg-00012.train         training checkpoint while the segment trains
//   seg-00012.json          its report; written last: the segment is done
// Every file is written to a temporary name and renamed (write_file_atomic,
// dydca/atomic_file.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dydca/atomic_file.h"
#include "dydca/media.h"
#include "dydca/status.h"

namespace dydca::detail {

// Whole file, refused beyond max_bytes.
Expected<std::vector<uint8_t>> read_file(const std::string& path, int64_t max_bytes);

// A segment's LR packets with the stream parameters, in a small internal
// file (magic, version, CRC32): timestamps stay exact frame indices.
Status write_packets_file(const std::string& path, const EncodedVideo& video);
Expected<EncodedVideo> read_packets_file(const std::string& path);

class WorkDir {
 public:
  // Creates `dir` (or reuses it when resume is set and its manifest equals
  // `manifest`). Without resume, a folder holding an unfinished encode is an
  // error that says how to continue it.
  // create = false: only look (a worker rank that writes nothing); the
  // folder may not exist.
  static Expected<WorkDir> open(const std::string& dir, const std::string& manifest, bool resume,
                                bool shared_with_other_ranks, bool create = true);
  const std::string& path() const { return dir_; }
  std::string file(int segment, const char* ext) const;
  bool done(int segment) const;
  // Removes the folder and everything in it.
  void remove();

 private:
  std::string dir_;
};

// Segment-parallel ranks share the folder: each touches alive-<rank> every
// second while it runs (and writes failed-<rank> with its error), so that
// rank 0, waiting for another rank's segment, can tell slow from dead.
class Heartbeat {
 public:
  Heartbeat(const WorkDir& dir, int rank);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
void report_rank_failure(const std::string& dir, int rank, const std::string& message);
// Waits until `segment` is done, or fails when its owner rank failed, stops
// beating for timeout_s, or `stop` is set.
Status wait_for_segment(const WorkDir& dir, int segment, int owner, double timeout_s,
                        const std::atomic<bool>* stop);

// Peak resident set size of this process so far, MB.
double peak_rss_mb();

}  // namespace dydca::detail
