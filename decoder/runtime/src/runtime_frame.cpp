#include "dydca/runtime_frame.h"

namespace dydca {
namespace {

// swscale resizes the three planes together; its luma is then overwritten by
// the network (a wasted bicubic luma pass, a few ms at 1080p).
Expected<Frame> upscale_common(SrRuntime& rt, const Frame& lr, ScaleFilter filter) {
  if (lr.empty()) return Status::error("upscale_frame: empty frame");
  const int s = rt.scale();
  auto scaled = resize(lr, lr.width * s, lr.height * s, filter);
  if (!scaled) return scaled.status().with_context("upscale_frame: chroma");
  scaled->pts = lr.pts;
  return scaled;
}

}  // namespace

Expected<Frame> upscale_frame(SrRuntime& rt, const Frame& lr, const std::vector<uint8_t>& tile_paths,
                              ScaleFilter chroma_filter) {
  auto hr = upscale_common(rt, lr, chroma_filter);
  if (!hr) return hr;
  DYDCA_TRY(rt.upscale_luma(lr.y.data(), lr.width, lr.height, lr.width, hr->y.data(), hr->width,
                            tile_paths));
  return hr;
}

Expected<Frame> upscale_frame(SrRuntime& rt, const Frame& lr, int path, ScaleFilter chroma_filter) {
  auto hr = upscale_common(rt, lr, chroma_filter);
  if (!hr) return hr;
  DYDCA_TRY(rt.upscale_luma(lr.y.data(), lr.width, lr.height, lr.width, hr->y.data(), hr->width,
                            path));
  return hr;
}

}  // namespace dydca
