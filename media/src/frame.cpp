#include <algorithm>
#include <cstring>

#include "av_ptr.h"
#include "dydca/media.h"

namespace dydca {

Frame Frame::blank(int width, int height, uint8_t luma, uint8_t chroma) {
  Frame f;
  f.width = width;
  f.height = height;
  f.y.assign(size_t(width) * height, luma);
  size_t c = size_t(f.chroma_width()) * f.chroma_height();
  f.u.assign(c, chroma);
  f.v.assign(c, chroma);
  return f;
}

namespace {

void pad_plane(const uint8_t* src, int sw, int sh, uint8_t* dst, int dw, int dh) {
  for (int r = 0; r < dh; ++r) {
    const uint8_t* s = src + size_t(std::min(r, sh - 1)) * sw;
    uint8_t* d = dst + size_t(r) * dw;
    std::memcpy(d, s, sw);
    std::memset(d + sw, s[sw - 1], dw - sw);
  }
}

void crop_plane(const uint8_t* src, int sw, uint8_t* dst, int dw, int dh) {
  for (int r = 0; r < dh; ++r) std::memcpy(dst + size_t(r) * dw, src + size_t(r) * sw, dw);
}

int sws_flags(ScaleFilter f) {
  switch (f) {
    case ScaleFilter::kArea: return SWS_AREA;
    case ScaleFilter::kBicubic: return SWS_BICUBIC;
    case ScaleFilter::kBilinear: return SWS_BILINEAR;
    case ScaleFilter::kLanczos: return SWS_LANCZOS;
    case ScaleFilter::kPoint: return SWS_POINT;
  }
  return SWS_BICUBIC;
}

}  // namespace

Frame pad_to_multiple(const Frame& in, int multiple) {
  if (multiple <= 1 || in.empty()) return in;
  int w = (in.width + multiple - 1) / multiple * multiple;
  int h = (in.height + multiple - 1) / multiple * multiple;
  if (w == in.width && h == in.height) return in;
  Frame out = Frame::blank(w, h);
  out.pts = in.pts;
  for (int p = 0; p < 3; ++p)
    pad_plane(in.plane(p), in.plane_width(p), in.plane_height(p), out.plane(p),
              out.plane_width(p), out.plane_height(p));
  return out;
}

Frame crop(const Frame& in, int width, int height) {
  width = std::clamp(width, 0, in.width);
  height = std::clamp(height, 0, in.height);
  if (width == in.width && height == in.height) return in;
  Frame out = Frame::blank(width, height);
  out.pts = in.pts;
  for (int p = 0; p < 3; ++p)
    crop_plane(in.plane(p), in.plane_width(p), out.plane(p), out.plane_width(p),
               out.plane_height(p));
  return out;
}

Expected<Frame> resize(const Frame& in, int width, int height, ScaleFilter filter) {
  if (in.empty()) return Status::error("resize: empty frame");
  if (width <= 0 || height <= 0 || width > kMaxDimension || height > kMaxDimension)
    return Status::error("resize: bad target size " + std::to_string(width) + "x" +
                         std::to_string(height));
  if (width == in.width && height == in.height) return in;
  // swscale wants even sizes for 4:2:0 chroma subsampling to line up; our
  // frames may be odd, which swscale handles with ceil chroma sizes.
  av::SwsPtr sws(sws_getContext(in.width, in.height, AV_PIX_FMT_YUV420P, width, height,
                                AV_PIX_FMT_YUV420P,
                                sws_flags(filter) | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT,
                                nullptr, nullptr, nullptr));
  if (!sws) return Status::error("resize: swscale cannot convert these sizes");
  Frame out = Frame::blank(width, height);
  out.pts = in.pts;
  const uint8_t* src[4] = {in.y.data(), in.u.data(), in.v.data(), nullptr};
  int src_stride[4] = {in.width, in.chroma_width(), in.chroma_width(), 0};
  uint8_t* dst[4] = {out.y.data(), out.u.data(), out.v.data(), nullptr};
  int dst_stride[4] = {out.width, out.chroma_width(), out.chroma_width(), 0};
  int rows = sws_scale(sws.get(), src, src_stride, 0, in.height, dst, dst_stride);
  if (rows != height) return Status::error("resize: swscale failed");
  return out;
}

Expected<Frame> downscale(const Frame& in, int scale, ScaleFilter filter) {
  if (scale < 1 || scale > 4) return Status::error("downscale: scale must be 1, 2, 3 or 4");
  if (scale == 1) return in;
  if (in.width % scale || in.height % scale)
    return Status::error("downscale: " + std::to_string(in.width) + "x" +
                         std::to_string(in.height) + " is not a multiple of " +
                         std::to_string(scale));
  return resize(in, in.width / scale, in.height / scale, filter);
}

}  // namespace dydca
