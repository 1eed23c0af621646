#pragma once

#include "dydca/chunking.h"
#include "dydca/encoder.h"
#include "stages.h"

namespace dydca::detail {

void fill_bitrates(EncodeReport& r);

// Trains, evaluates and writes the baseline `p.baseline` on the whole clip
// (hr, decoded lr, its x264 video and chunks); r holds the clip's geometry.
Expected<EncodeReport> encode_baseline(const EncodeParams& p, EncodeReport r,
                                       const std::vector<Frame>& hr, const std::vector<Frame>& lr,
                                       const EncodedVideo& video, const ChunkingResult& chunks,
                                       const ProgressFn& prog, Clock::time_point t_start);

}  // namespace dydca::detail
