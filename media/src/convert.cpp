#include "convert.h"

#include <cstring>

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace dydca::av {

Status frame_from_av(const AVFrame* src, Frame& out, SwsPtr& sws) {
  if (src->width <= 0 || src->height <= 0 || src->width > kMaxDimension ||
      src->height > kMaxDimension || int64_t{src->width} * src->height > kMaxFramePixels)
    return Status::error("decoded frame has an unsupported size " + std::to_string(src->width) +
                         "x" + std::to_string(src->height));
  if (out.width != src->width || out.height != src->height)
    out = Frame::blank(src->width, src->height);
  auto fmt = static_cast<AVPixelFormat>(src->format);
  if (fmt == AV_PIX_FMT_YUV420P || fmt == AV_PIX_FMT_YUVJ420P) {
    for (int p = 0; p < 3; ++p) {
      int w = out.plane_width(p), h = out.plane_height(p);
      for (int r = 0; r < h; ++r)
        std::memcpy(out.plane(p) + size_t(r) * w, src->data[p] + size_t(r) * src->linesize[p], w);
    }
    return Status::ok();
  }
  // Anything else (4:2:2, 4:4:4, 10-bit, RGB, paletted...) goes through
  // swscale to 8-bit 4:2:0 at the same size.
  sws.reset(sws_getCachedContext(sws.release(), src->width, src->height, fmt, src->width,
                                 src->height, AV_PIX_FMT_YUV420P,
                                 SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr));
  if (!sws) {
    const char* name = av_get_pix_fmt_name(fmt);
    return Status::error(std::string("cannot convert pixel format ") + (name ? name : "?") +
                         " to yuv420p");
  }
  uint8_t* dst[4] = {out.y.data(), out.u.data(), out.v.data(), nullptr};
  int stride[4] = {out.width, out.chroma_width(), out.chroma_width(), 0};
  if (sws_scale(sws.get(), src->data, src->linesize, 0, src->height, dst, stride) != src->height)
    return Status::error("swscale conversion failed");
  return Status::ok();
}

Status frame_to_av(const Frame& in, AVFrame* dst) {
  for (int p = 0; p < 3; ++p) {
    int w = in.plane_width(p), h = in.plane_height(p);
    for (int r = 0; r < h; ++r)
      std::memcpy(dst->data[p] + size_t(r) * dst->linesize[p], in.plane(p) + size_t(r) * w, w);
  }
  return Status::ok();
}

}  // namespace dydca::av
