#pragma once

#include "dydca/chunking.h"
#include "dydca/encoder.h"
#include "stages.h"

namespace dydca::detail {

void fill_bitrates(EncodeReport& r);

// A multi-model baseline as the client shows it: every frame through
// FrameUpscaler (bicubic chroma, each tile from the model the routing's
// level 0 names for its chunk, models prepared by stitch_model), as the
// decoder runs a multi-model file. `models` are the shipped (parsed) ones.
// Fills the bicubic and SR quality against hr cropped to hr_width x hr_height.
Status evaluate_baseline(const std::vector<Model>& models, const RoutingMap& routing,
                         const std::vector<Frame>& hr, const std::vector<Frame>& lr, int hr_width,
                         int hr_height, const RuntimeOptions& options, ClipQuality* bicubic,
                         ClipQuality* sr, const ProgressFn& prog);

// Trains, evaluates and writes the baseline `p.baseline` on the whole clip
// (hr, decoded lr, its x264 video and chunks); r holds the clip's geometry.
Expected<EncodeReport> encode_baseline(const EncodeParams& p, EncodeReport r,
                                       const std::vector<Frame>& hr, const std::vector<Frame>& lr,
                                       const EncodedVideo& video, const ChunkingResult& chunks,
                                       const ProgressFn& prog, Clock::time_point t_start);

}  // namespace dydca::detail
