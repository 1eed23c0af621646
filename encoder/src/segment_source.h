// The encoder's input stage: reads the input frame by frame and hands it on
// one segment at a time (scene cuts, a maximum length), HR padded and LR
// downscaled. Holds at most max_frames + kLookahead frames: the bound on the
// encoder's frame memory, whatever the input's length. A segment may be up
// to kLookahead frames longer than max_frames when the input ends there.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "dydca/chunking.h"
#include "dydca/media.h"

namespace dydca::detail {

struct SegmentFrames {
  int index = 0;        // segment number
  int first_frame = 0;  // input frame index of hr[0]
  std::vector<Frame> hr;  // original, padded to a multiple of 2*scale
  std::vector<Frame> lr;  // area-downscaled (what x264 encodes)
  int frames() const { return int(hr.size()); }
};

struct SegmentSourceParams {
  int scale = 2;
  ScaleFilter filter = ScaleFilter::kLanczos;  // HR -> LR
  int max_frames = 250;     // longest segment (>= 1)
  int64_t frame_limit = 0;  // stop after this many input frames (0 = all)
  SceneCutParams scene;     // its max_length is ignored (max_frames rules)
};

class SegmentSource {
 public:
  // Frames of the scene-cut detector's look-ahead beyond the segment: a cut
  // is judged with 5 frames on either side (SceneCutParams).
  static constexpr int kLookahead = 6;
  // Frames of the previous segment kept as the detector's context.
  static constexpr int kContext = 5;

  SegmentSource(VideoReader& reader, const SegmentSourceParams& params);
  // The next segment, or nullopt at the end of the input.
  Expected<std::optional<SegmentFrames>> next(const ProgressFn& progress);
  int64_t frames_read() const { return read_; }
  // Bytes one frame of a segment costs (HR + LR, and the decoded LR that
  // replaces the LR after x264), for the memory bound.
  static int64_t frame_bytes(int width, int height, int scale);

 private:
  Status fill(const ProgressFn& progress);

  VideoReader& reader_;
  SegmentSourceParams p_;
  std::vector<Frame> hr_;  // pending frames, not yet handed out
  std::vector<Frame> lr_;  // their LR (p_.filter)
  // The scene-cut detector's view: kContext frames of the previous segment,
  // then the pending ones, luma only and area-downscaled whatever the LR's
  // filter (its thresholds were set on area-downscaled luma; lanczos
  // ringing on sharp edges moved a panning 32x32 checkerboard's histograms
  // past them).
  std::vector<Frame> cut_;
  bool eof_ = false;
  int64_t read_ = 0;
  int next_index_ = 0;
  int next_first_ = 0;
};

}  // namespace dydca::detail
