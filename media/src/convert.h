// AVFrame <-> Frame copies, private to the media library.
#pragma once

#include "av_ptr.h"
#include "dydca/media.h"

namespace dydca::av {

// Copies a decoded AVFrame into `out` as 8-bit 4:2:0, converting any other
// pixel format with swscale (the context is cached in `sws`).
Status frame_from_av(const AVFrame* src, Frame& out, SwsPtr& sws);
// Copies `in` into an allocated YUV420P AVFrame of the same size.
Status frame_to_av(const Frame& in, AVFrame* dst);

}  // namespace dydca::av
