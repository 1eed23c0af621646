#include "dydca/runtime_frame.h"

#include <algorithm>
#include <cstring>
#include <string>

extern "C" {
#include <libswscale/swscale.h>
}

namespace dydca {

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
  u.scale_ = scale;
  if (scale == 1) return u;  // a copy
  // The flags of dydca::resize(..., kBicubic) (media/src/frame.cpp); a test
  // compares the two.
  u.sws_.reset(sws_getContext(lr_width, lr_height, AV_PIX_FMT_YUV420P, int(w), int(h),
                              AV_PIX_FMT_YUV420P,
                              SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr,
                              nullptr, nullptr));
  if (!u.sws_) return Status::error("swscale cannot upscale these sizes");
  return u;
}

Status BicubicUpscaler::run(const Frame& lr, Frame& hr) {
  if (lr.width != lr_w_ || lr.height != lr_h_)
    return Status::error("frame size changed mid-stream: " + std::to_string(lr.width) + "x" +
                         std::to_string(lr.height) + " after " + std::to_string(lr_w_) + "x" +
                         std::to_string(lr_h_));
  const int hr_w = lr_w_ * scale_, hr_h = lr_h_ * scale_;
  if (hr.width != hr_w || hr.height != hr_h) hr = Frame::blank(hr_w, hr_h);
  hr.pts = lr.pts;
  if (scale_ == 1) {
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

// ---- multi-model ------------------------------------------------------------------

Expected<std::shared_ptr<const SrModel>> stitch_model(const Model& model,
                                                      const ModelOptions& options) {
  if (model.arch.paths.empty()) return Status::error("model: no paths");
  Model copy = model;
  const PathSpec rich = model.arch.paths.back();
  copy.arch.paths = {rich};
  if (!model.act.empty()) copy.act.path = {model.act.path.back()};
  if (rich.width != 0) {
    copy.arch.paths.insert(copy.arch.paths.begin(), PathSpec{0, 0});
    if (!model.act.empty()) copy.act.path.insert(copy.act.path.begin(), std::vector<float>{});
  }
  return SrModel::create(copy, options);
}

// ---- whole frames ------------------------------------------------------------------

struct FrameUpscaler::State {
  State(BicubicUpscaler b, SrSession s) : bicubic(std::move(b)), session(std::move(s)) {}
  BicubicUpscaler bicubic;
  SrSession session;
  int lr_w = 0, lr_h = 0, scale = 1;
  std::vector<uint8_t> tile_paths;
  std::vector<uint8_t> tile_models;  // upscale()'s, from the routing
  std::vector<uint8_t> scratch;      // HR luma of one model (stitching)
};

FrameUpscaler::FrameUpscaler(std::unique_ptr<State> state) : s_(std::move(state)) {}
FrameUpscaler::FrameUpscaler(FrameUpscaler&&) noexcept = default;
FrameUpscaler& FrameUpscaler::operator=(FrameUpscaler&&) noexcept = default;
FrameUpscaler::~FrameUpscaler() = default;

Expected<FrameUpscaler> FrameUpscaler::create(int lr_width, int lr_height, int scale,
                                              std::shared_ptr<WorkerPool> pool,
                                              const SessionOptions& options) {
  DYDCA_ASSIGN_OR_RETURN(auto bicubic, BicubicUpscaler::create(lr_width, lr_height, scale));
  SessionOptions so = options;
  so.max_lr_width = lr_width;
  so.max_lr_height = lr_height;
  DYDCA_ASSIGN_OR_RETURN(auto session, SrSession::create(std::move(pool), so));
  auto s = std::make_unique<State>(std::move(bicubic), std::move(session));
  s->lr_w = lr_width;
  s->lr_h = lr_height;
  s->scale = scale;
  return FrameUpscaler(std::move(s));
}

int FrameUpscaler::scale() const { return s_->scale; }
SrSession& FrameUpscaler::session() { return s_->session; }
const SrSession& FrameUpscaler::session() const { return s_->session; }

Status FrameUpscaler::chroma(const Frame& lr, Frame& hr) { return s_->bicubic.run(lr, hr); }

// Files carry one tile size; should a routing map come with another, the
// session is made again for it (one allocation, then as before).
Status FrameUpscaler::match_tile_size(int tile_size) {
  if (tile_size == s_->session.tile_size()) return Status::ok();
  SessionOptions o = s_->session.options();
  o.tile_size = tile_size;
  DYDCA_ASSIGN_OR_RETURN(s_->session, SrSession::create(s_->session.pool(), o));
  return Status::ok();
}

namespace {

Status check_frames(const Frame& lr, const Frame& hr, int lr_w, int lr_h, int scale) {
  if (lr.width != lr_w || lr.height != lr_h)
    return Status::error("upscale: LR frame " + std::to_string(lr.width) + "x" +
                         std::to_string(lr.height) + ", the upscaler is for " +
                         std::to_string(lr_w) + "x" + std::to_string(lr_h));
  if (hr.width != lr_w * scale || hr.height != lr_h * scale ||
      hr.y.size() != size_t(hr.width) * size_t(hr.height) ||
      lr.y.size() != size_t(lr.width) * size_t(lr.height))
    return Status::error("upscale: HR frame " + std::to_string(hr.width) + "x" +
                         std::to_string(hr.height) + " is not the LR frame x" +
                         std::to_string(scale));
  return Status::ok();
}

Status check_model(const SrModel& model, int scale) {
  if (model.scale() != scale)
    return Status::error("upscale: a x" + std::to_string(model.scale()) +
                         " model for a x" + std::to_string(scale) + " upscaler");
  return Status::ok();
}

}  // namespace

Status FrameUpscaler::luma(const SrModel& model, const Frame& lr, Frame& hr,
                           const RoutingMap* routing, int frame, int level) {
  DYDCA_TRY(check_frames(lr, hr, s_->lr_w, s_->lr_h, s_->scale));
  DYDCA_TRY(check_model(model, s_->scale));
  if (routing) {
    if (routing->lr_width != lr.width || routing->lr_height != lr.height)
      return Status::error("routing: map is for " + std::to_string(routing->lr_width) + "x" +
                           std::to_string(routing->lr_height) + ", the frame is " +
                           std::to_string(lr.width) + "x" + std::to_string(lr.height));
    DYDCA_TRY(match_tile_size(routing->tile_size));
  }
  SrSession& session = s_->session;
  DYDCA_TRY(session.level_tile_paths(model, routing, frame, level, lr.width, lr.height,
                                     &s_->tile_paths));
  return session.upscale_luma(model, lr.y.data(), lr.width, lr.height, lr.width, hr.y.data(),
                              hr.width, s_->tile_paths);
}

Status FrameUpscaler::luma_tiles(const std::vector<const SrModel*>& models,
                                 const std::vector<uint8_t>& tile_models, const Frame& lr,
                                 Frame& hr) {
  DYDCA_TRY(check_frames(lr, hr, s_->lr_w, s_->lr_h, s_->scale));
  SrSession& session = s_->session;
  const int ts = session.tile_size(), tx_n = session.tiles_x(lr.width),
            ty_n = session.tiles_y(lr.height);
  if (tile_models.size() != size_t(tx_n) * size_t(ty_n))
    return Status::error("upscale: " + std::to_string(tile_models.size()) + " tile models for " +
                         std::to_string(tx_n * ty_n) + " tiles");
  if (models.size() > 64) return Status::error("upscale: more than 64 models");
  uint64_t used = 0;  // bit m: a tile is model m's
  for (uint8_t m : tile_models) {
    if (m >= models.size() || !models[m])
      return Status::error("upscale: a tile names model " + std::to_string(m) + ", which is " +
                           (m >= models.size() ? "not given" : "not loaded"));
    used |= uint64_t{1} << m;
  }
  for (size_t m = 0; m < models.size(); ++m)
    if (used >> m & 1) DYDCA_TRY(check_model(*models[m], s_->scale));
  const bool single = (used & (used - 1)) == 0;

  const int s = s_->scale, hr_w = hr.width, hr_h = hr.height;
  std::vector<uint8_t>& paths = s_->tile_paths;
  for (size_t m = 0; m < models.size(); ++m) {
    if (!(used >> m & 1)) continue;
    const SrModel& model = *models[m];
    const uint8_t own = uint8_t(model.num_paths() - 1);
    if (single)  // the whole frame on one model: straight into the output
      return session.upscale_luma(model, lr.y.data(), lr.width, lr.height, lr.width, hr.y.data(),
                                  hr_w, own);
    paths.resize(tile_models.size());
    for (size_t t = 0; t < tile_models.size(); ++t) paths[t] = tile_models[t] == m ? own : 0;
    s_->scratch.resize(hr.y.size());
    DYDCA_TRY(session.upscale_luma(model, lr.y.data(), lr.width, lr.height, lr.width,
                                   s_->scratch.data(), hr_w, paths));
    for (int ty = 0; ty < ty_n; ++ty)
      for (int tx = 0; tx < tx_n; ++tx) {
        if (tile_models[size_t(ty) * tx_n + tx] != m) continue;
        const int x0 = tx * ts * s, y0 = ty * ts * s;
        const int x1 = std::min(hr_w, x0 + ts * s), y1 = std::min(hr_h, y0 + ts * s);
        for (int y = y0; y < y1; ++y)
          std::memcpy(hr.y.data() + size_t(y) * hr_w + x0,
                      s_->scratch.data() + size_t(y) * hr_w + x0, size_t(x1 - x0));
      }
  }
  return Status::ok();
}

Status FrameUpscaler::upscale(const SrModel& model, const Frame& lr, Frame& hr,
                              const RoutingMap* routing, int frame, int level) {
  DYDCA_TRY(chroma(lr, hr));
  return luma(model, lr, hr, routing, frame, level);
}

Status FrameUpscaler::upscale(const std::vector<const SrModel*>& models, const Frame& lr,
                              Frame& hr, const RoutingMap& routing, int frame, int level) {
  if (routing.lr_width != lr.width || routing.lr_height != lr.height)
    return Status::error("routing: map is for " + std::to_string(routing.lr_width) + "x" +
                         std::to_string(routing.lr_height) + ", the frame is " +
                         std::to_string(lr.width) + "x" + std::to_string(lr.height));
  DYDCA_TRY(match_tile_size(routing.tile_size));
  DYDCA_TRY(routing_tile_paths(routing, frame, level, int(models.size()), &s_->tile_models));
  DYDCA_TRY(chroma(lr, hr));
  return luma_tiles(models, s_->tile_models, lr, hr);
}

}  // namespace dydca
