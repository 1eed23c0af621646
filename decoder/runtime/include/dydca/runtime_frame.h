// Whole-frame upscaling on top of the SR runtime: luma by the network (per
// tile paths), chroma by a fixed swscale filter. A separate library
// (dydca::runtime_frame) because it links libav through dydca::media; the
// runtime core (dydca/runtime.h) does not.
#pragma once

#include <cstdint>
#include <vector>

#include "dydca/media.h"
#include "dydca/runtime.h"

namespace dydca {

// Upscales `lr` by the runtime's scale: HR luma from rt (tile_paths as in
// SrRuntime::upscale_luma), HR chroma by `chroma_filter` (bicubic by default).
// The result keeps lr.pts. Fails on an empty frame or a runtime error.
Expected<Frame> upscale_frame(SrRuntime& rt, const Frame& lr, const std::vector<uint8_t>& tile_paths,
                              ScaleFilter chroma_filter = ScaleFilter::kBicubic);
// Same, every tile on one path.
Expected<Frame> upscale_frame(SrRuntime& rt, const Frame& lr, int path,
                              ScaleFilter chroma_filter = ScaleFilter::kBicubic);

}  // namespace dydca
