#include "upscale_stages.h"

#include <algorithm>
#include <cstring>

extern "C" {
#include <libswscale/swscale.h>
}

namespace dydca::detail {

// ---- bicubic ------------------------------------------------------------------

void BicubicUpscaler::Deleter::operator()(SwsContext* c) const { sws_freeContext(c); }

BicubicUpscaler::BicubicUpscaler(BicubicUpscaler&&) noexcept = default;
BicubicUpscaler& BicubicUpscaler::operator=(BicubicUpscaler&&) noexcept = default;
BicubicUpscaler::~BicubicUpscaler() = default;

Expected<BicubicUpscaler> BicubicUpscaler::create(int lr_width, int lr_height, int scale) {
  const int64_t w = int64_t(lr_width) * scale, h = int64_t(lr_height) * scale;
  if (lr_width <= 0 || lr_height <= 0 || scale < 1 || w > kMaxDimension || h > kMaxDimension ||
      w * h > kMaxFramePixels)
    return Status::error("cannot upscale " + std::to_string(lr_width) + "x" +
                         std::to_string(lr_height) + " by " + std::to_string(scale) +
                         " (output larger than " + std::to_string(kMaxDimension) + ")");
  BicubicUpscaler u;
  u.lr_w_ = lr_width;
  u.lr_h_ = lr_height;
  u.hr_w_ = int(w);
  u.hr_h_ = int(h);
  // Keep in sync with media/src/frame.cpp resize(): the decoder's chroma is
  // defined as dydca::resize(lr, w*s, h*s, kBicubic).
  u.sws_.reset(sws_getContext(
      lr_width, lr_height, AV_PIX_FMT_YUV420P, u.hr_w_, u.hr_h_, AV_PIX_FMT_YUV420P,
      SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr));
  if (!u.sws_) return Status::error("swscale cannot upscale these sizes");
  return u;
}

Status BicubicUpscaler::run(const Frame& lr, Frame& hr) {
  if (lr.width != lr_w_ || lr.height != lr_h_)
    return Status::error("frame size changed mid-stream: " + std::to_string(lr.width) + "x" +
                         std::to_string(lr.height) + " after " + std::to_string(lr_w_) + "x" +
                         std::to_string(lr_h_));
  if (hr.width != hr_w_ || hr.height != hr_h_) hr = Frame::blank(hr_w_, hr_h_);
  hr.pts = lr.pts;
  if (lr_w_ == hr_w_ && lr_h_ == hr_h_) {  // scale 1: copy
    hr.y = lr.y, hr.u = lr.u, hr.v = lr.v;
    return Status::ok();
  }
  const uint8_t* src[4] = {lr.y.data(), lr.u.data(), lr.v.data(), nullptr};
  int src_stride[4] = {lr.width, lr.chroma_width(), lr.chroma_width(), 0};
  uint8_t* dst[4] = {hr.y.data(), hr.u.data(), hr.v.data(), nullptr};
  int dst_stride[4] = {hr.width, hr.chroma_width(), hr.chroma_width(), 0};
  if (sws_scale(sws_.get(), src, src_stride, 0, lr.height, dst, dst_stride) != hr.height)
    return Status::error("swscale upscale failed");
  return Status::ok();
}

// ---- SR -------------------------------------------------------------------------

SrStage::SrStage(SrStage&&) noexcept = default;
SrStage& SrStage::operator=(SrStage&&) noexcept = default;
SrStage::~SrStage() = default;

Expected<SrStage> SrStage::create(const DydcaFile& file, const DecodeOptions& options) {
  if (!file.has_dydca || file.models.empty()) return Status::error("no dydca model in the file");
  SrStage st;
  st.file_ = &file;
  const RoutingMap* routing = file.routing ? &*file.routing : nullptr;
  st.rt_options_.tile_size = routing ? routing->tile_size : 32;
  st.rt_options_.threads = options.threads;
  st.rt_options_.simd = options.simd;
  st.rt_options_.max_lr_width = std::max(1, file.video.width);
  st.rt_options_.max_lr_height = std::max(1, file.video.height);
  st.multi_ = file.models.size() > 1;
  st.runtimes_.resize(file.models.size());
  if (!st.multi_) {
    st.levels_ = routing ? routing->levels() : int(file.models[0].arch.paths.size());
    DYDCA_TRY(st.load_model(0));
    return st;
  }
  if (file.models.size() > 64) return Status::error("more than 64 models");
  if (!routing) {
    log_warning(std::to_string(file.models.size()) +
                " models but no routing: every tile runs model 0");
    st.levels_ = 1;
  } else {
    st.levels_ = routing->levels();
    for (int l = 0; l < routing->levels(); ++l)
      for (uint8_t m : routing->chunk_path[size_t(l)])
        if (m >= file.models.size())
          return Status::error("routing level " + std::to_string(l) + " names model " +
                               std::to_string(m) + " but the file has " +
                               std::to_string(file.models.size()) + " models");
    const size_t tiles = size_t(routing->tiles_per_frame());
    st.owner_.assign(tiles, 0);
    st.prev_owner_.assign(tiles, 0);
    st.tile_paths_.assign(tiles, 0);
    st.scratch_.assign(size_t(file.video.width) * file.scale * file.video.height * file.scale, 0);
  }
  return st;
}

Status SrStage::load_model(int m) {
  if (runtimes_[size_t(m)]) return Status::ok();
  const auto t0 = std::chrono::steady_clock::now();
  Expected<SrRuntime> rt = Status::error("unreachable");
  if (!multi_) {
    rt = SrRuntime::create(file_->models[0], rt_options_);
  } else {
    Model copy = file_->models[size_t(m)];
    const PathSpec rich = copy.arch.paths.back();
    copy.arch.paths = {rich};
    if (rich.width != 0) copy.arch.paths.push_back(PathSpec{0, 0});
    rt = SrRuntime::create(copy, rt_options_);
  }
  if (!rt) return rt.status().with_context(model_attachment_name(m));
  runtimes_[size_t(m)].emplace(std::move(*rt));
  load_ms_ += ms_since(t0);
  ++loaded_;
  return Status::ok();
}

Status SrStage::run(const Frame& lr, Frame& hr, int64_t frame, int level) {
  const RoutingMap* routing = file_->routing ? &*file_->routing : nullptr;
  // Decoded frame i is routing frame i; a damaged stream that lost frames
  // keeps the last map rather than failing.
  const int f = routing ? int(std::min<int64_t>(frame, routing->frames - 1)) : 0;
  if (multi_) return run_multi(lr, hr, f, level);
  SrRuntime& rt = *runtimes_[0];
  if (routing)
    return rt.upscale_luma(lr.y.data(), lr.width, lr.height, lr.width, hr.y.data(), hr.width,
                           *routing, f, level);
  // Static model: level l runs the l-th richest path.
  const int path = std::max(0, rt.num_paths() - 1 - level);
  return rt.upscale_luma(lr.y.data(), lr.width, lr.height, lr.width, hr.y.data(), hr.width, path);
}

Status SrStage::run_multi(const Frame& lr, Frame& hr, int frame, int level) {
  const RoutingMap* routing = file_->routing ? &*file_->routing : nullptr;
  if (!routing) {
    DYDCA_TRY(load_model(0));
    return runtimes_[0]->upscale_luma(lr.y.data(), lr.width, lr.height, lr.width, hr.y.data(),
                                      hr.width, 0);
  }
  const int tx_n = routing->tiles_x(), ty_n = routing->tiles_y(), ts = routing->tile_size;
  const auto& table = routing->chunk_path[size_t(level)];
  uint64_t used = 0;
  for (int t = 0; t < tx_n * ty_n; ++t) {
    const uint8_t m = table[routing->chunk_ids[size_t(frame) * tx_n * ty_n + size_t(t)]];
    owner_[size_t(t)] = m;
    used |= uint64_t{1} << m;
    if (have_prev_ && prev_owner_[size_t(t)] != m) ++tile_switches_;
  }
  if (have_prev_ && (used & ~prev_used_)) ++frame_switches_;
  prev_owner_.swap(owner_);  // prev_owner_ now holds this frame's owners
  prev_used_ = used;
  have_prev_ = true;
  const std::vector<uint8_t>& owner = prev_owner_;

  const int s = file_->scale, hr_w = lr.width * s, hr_h = lr.height * s;
  const bool single = (used & (used - 1)) == 0;
  for (int m = 0; m < int(file_->models.size()); ++m) {
    if (!(used >> m & 1)) continue;
    DYDCA_TRY(load_model(m));
    SrRuntime& rt = *runtimes_[size_t(m)];
    if (single) {  // the whole frame on one model: straight into the output
      return rt.upscale_luma(lr.y.data(), lr.width, lr.height, lr.width, hr.y.data(), hr.width, 0);
    }
    const uint8_t cheap = uint8_t(rt.num_paths() - 1);  // global path, or the only path
    for (size_t t = 0; t < owner.size(); ++t) tile_paths_[t] = owner[t] == m ? 0 : cheap;
    DYDCA_TRY(rt.upscale_luma(lr.y.data(), lr.width, lr.height, lr.width, scratch_.data(), hr_w,
                              tile_paths_));
    for (int ty = 0; ty < ty_n; ++ty)
      for (int tx = 0; tx < tx_n; ++tx) {
        if (owner[size_t(ty * tx_n + tx)] != m) continue;
        const int x0 = tx * ts * s, y0 = ty * ts * s;
        const int x1 = std::min(hr_w, x0 + ts * s), y1 = std::min(hr_h, y0 + ts * s);
        for (int y = y0; y < y1; ++y)
          std::memcpy(hr.y.data() + size_t(y) * hr_w + x0, scratch_.data() + size_t(y) * hr_w + x0,
                      size_t(x1 - x0));
      }
  }
  return Status::ok();
}

void SrStage::report(DecodeStats& stats) const {
  stats.models = int(file_->models.size());
  stats.models_loaded = loaded_;
  stats.model_load_ms = load_ms_;
  stats.tile_switches = tile_switches_;
  stats.frame_switches = frame_switches_;
  stats.runtime_bytes = 0;
  for (const auto& rt : runtimes_)
    if (rt) {
      stats.runtime_bytes += rt->memory_bytes();
      stats.simd = rt->simd_level();
      stats.threads = rt->threads();
    }
}

}  // namespace dydca::detail
