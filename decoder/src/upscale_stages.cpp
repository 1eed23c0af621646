#include "upscale_stages.h"

#include <algorithm>
#include <cstring>
#include <exception>

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

// One segment ready to run: its runtime (planned) and its routing.
struct SrStage::Prepared {
  int segment = -1;
  int64_t first_frame = 0, frames = 0;
  std::optional<SrRuntime> rt;
  std::optional<RoutingMap> own_routing;  // format 2: this segment's
  const RoutingMap* routing = nullptr;    // own_routing, the reader's v1 routing, or null
  int levels = 1;
  Status status;
  std::atomic<int>* alive = nullptr;
  Prepared() = default;
  Prepared(const Prepared&) = delete;
  Prepared& operator=(const Prepared&) = delete;
  ~Prepared() {
    if (rt) {
      rt.reset();
      alive->fetch_sub(1);
    }
  }
};

namespace {

// Builds segment k's runtime. Runs on the preparation thread (or the caller's
// for segment 0); `retire` (the segment before the current one) is destroyed
// first, so that no more than two runtimes are ever alive.
std::unique_ptr<SrStage::Prepared> prepare_segment(DydcaReader* reader, int k,
                                                   const DydcaSegment& seg, RuntimeOptions opt,
                                                   std::atomic<int>* alive,
                                                   std::atomic<int>* max_alive,
                                                   std::atomic<int64_t>* prepare_us,
                                                   std::unique_ptr<SrStage::Prepared> retire) {
  const auto t0 = std::chrono::steady_clock::now();
  retire.reset();
  auto p = std::make_unique<SrStage::Prepared>();
  p->segment = k;
  p->first_frame = seg.first_frame;
  p->frames = seg.frames;
  p->alive = alive;
  try {
    auto model = reader->segment_model(k);
    if (!model) {
      p->status = model.status();
      return p;
    }
    if (reader->format_version() == 1) {
      if (reader->v1_routing()) p->routing = &*reader->v1_routing();
    } else {
      auto routing = reader->segment_routing(k);
      if (!routing) {
        p->status = routing.status();
        return p;
      }
      p->own_routing = std::move(*routing);
      if (p->own_routing) p->routing = &*p->own_routing;
    }
    // The routing's tile size is the runtime's (a file has one in practice;
    // following each segment's costs nothing).
    if (p->routing) opt.tile_size = p->routing->tile_size;
    auto rt = SrRuntime::create(*model, opt);
    if (!rt) {
      p->status = rt.status().with_context("segment " + std::to_string(k));
      return p;
    }
    p->rt.emplace(std::move(*rt));
    const int now = alive->fetch_add(1) + 1;
    int seen = max_alive->load();
    while (now > seen && !max_alive->compare_exchange_weak(seen, now)) {
    }
    p->levels = p->routing ? p->routing->levels() : p->rt->num_paths();
    // Warm-up on one blank tile: starts the worker pool and touches the
    // richest path's weights, so the switch frame does not pay for it.
    const int w = std::min(opt.tile_size, std::max(1, opt.max_lr_width));
    const int h = std::min(opt.tile_size, std::max(1, opt.max_lr_height));
    const int s = p->rt->scale();
    std::vector<uint8_t> lr(size_t(w) * h, 128), hr(size_t(w) * s * h * s);
    p->status = p->rt->upscale_luma(lr.data(), w, h, w, hr.data(), ptrdiff_t(w) * s,
                                    p->rt->num_paths() - 1);
  } catch (const std::exception& e) {  // bad_alloc, thread creation
    p->status = Status::error("segment " + std::to_string(k) + ": " + e.what());
  }
  prepare_us->fetch_add(int64_t(ms_since(t0) * 1000));
  return p;
}

}  // namespace

SrStage::~SrStage() {
  if (next_.valid()) next_.wait();  // the preparation uses the reader and the counters
}

const RoutingMap* SrStage::first_routing() const {
  if (reader_->format_version() == 1) return routing_;
  return first_routing_ ? &*first_routing_ : nullptr;
}

RuntimeOptions sr_runtime_options(const DydcaReader& reader, const DecodeOptions& options,
                                  const RoutingMap* first_routing) {
  RuntimeOptions o;
  const EncodedVideo& video = reader.video();
  o.threads = options.threads;
  o.simd = options.simd;
  o.precision = options.precision;
  o.max_lr_width = std::max(1, video.width);
  o.max_lr_height = std::max(1, video.height);
  o.tile_size = first_routing ? first_routing->tile_size : 32;
  return o;
}

Expected<std::unique_ptr<SrStage>> SrStage::create(DydcaReader& reader,
                                                   const DecodeOptions& options) {
  if (!reader.has_dydca() || reader.segments().empty())
    return Status::error("no dydca model in the file");
  std::unique_ptr<SrStage> st(new SrStage());
  st->reader_ = &reader;
  st->scale_ = reader.scale();
  auto first = reader.segment_model(0);
  if (!first) return first.status();
  st->first_model_ = std::move(*first);
  if (reader.format_version() == 1) {
    // The whole file's routing: the reader's, not a copy.
    st->routing_ = reader.v1_routing() ? &*reader.v1_routing() : nullptr;
  } else {
    auto first_routing = reader.segment_routing(0);
    if (!first_routing) return first_routing.status();
    st->first_routing_ = std::move(*first_routing);
  }
  const RoutingMap* routing = st->first_routing();
  st->rt_options_ = sr_runtime_options(reader, options, routing);
  st->multi_ = reader.format_version() == 1 && reader.model_count() > 1;
  if (!st->multi_) {
    st->segments_ = reader.segments();
    st->levels_ = routing ? routing->levels() : int(st->first_model_.arch.paths.size());
    st->current_ = prepare_segment(&reader, 0, st->segments_[0], st->rt_options_, &st->alive_,
                                   &st->max_alive_, &st->prepare_us_, nullptr);
    if (!st->current_->status) return st->current_->status;
    if (st->segments_.size() > 1) st->start_preparing(1, nullptr);
    return st;
  }

  const int n = reader.model_count();
  if (n > 64) return Status::error("more than 64 models");
  for (int i = 0; i < n; ++i) {
    auto m = reader.model(i);
    if (!m) return m.status();
    st->models_.push_back(std::move(*m));
  }
  st->runtimes_.resize(size_t(n));
  if (!st->routing_) {
    log_warning(std::to_string(n) + " models but no routing: every tile runs model 0");
    st->levels_ = 1;
    return st;
  }
  const RoutingMap& r = *st->routing_;
  st->levels_ = r.levels();
  for (int l = 0; l < r.levels(); ++l)
    for (uint8_t m : r.chunk_path[size_t(l)])
      if (m >= n)
        return Status::error("routing level " + std::to_string(l) + " names model " +
                             std::to_string(m) + " but the file has " + std::to_string(n) +
                             " models");
  const size_t tiles = size_t(r.tiles_per_frame());
  st->owner_.assign(tiles, 0);
  st->prev_owner_.assign(tiles, 0);
  st->tile_paths_.assign(tiles, 0);
  const EncodedVideo& video = reader.video();
  st->scratch_.assign(size_t(video.width) * st->scale_ * video.height * st->scale_, 0);
  return st;
}

void SrStage::start_preparing(int segment, std::unique_ptr<Prepared> retire) {
  const DydcaSegment seg = segment >= 0 ? segments_[size_t(segment)] : DydcaSegment{};
  auto task = [reader = reader_, segment, seg, opt = rt_options_, alive = &alive_,
               max_alive = &max_alive_, prep = &prepare_us_,
               old = std::move(retire)]() mutable -> std::unique_ptr<Prepared> {
    if (segment < 0) {  // nothing left to prepare: only retire
      old.reset();
      return nullptr;
    }
    return prepare_segment(reader, segment, seg, opt, alive, max_alive, prep, std::move(old));
  };
  try {
    next_ = std::async(std::launch::async, std::move(task));
  } catch (const std::exception&) {  // no thread: prepare it here (late but correct)
    std::promise<std::unique_ptr<Prepared>> done;
    done.set_value(prepare_segment(reader_, segment, seg, rt_options_, &alive_, &max_alive_,
                                   &prepare_us_, nullptr));
    next_ = done.get_future();
  }
  next_segment_ = segment;
}

Status SrStage::begin_frame(int64_t frame, bool* segment_switch) {
  *segment_switch = false;
  if (multi_) return Status::ok();
  while (frame >= current_->first_frame + current_->frames &&
         size_t(current_->segment + 1) < segments_.size()) {
    if (next_segment_ != current_->segment + 1) start_preparing(current_->segment + 1, nullptr);
    if (next_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) ++waits_;
    std::unique_ptr<Prepared> p = next_.get();
    next_segment_ = -1;
    if (!p || !p->status) return p ? p->status : Status::error("internal: no prepared segment");
    std::unique_ptr<Prepared> old = std::move(current_);
    current_ = std::move(p);
    ++switches_;
    *segment_switch = true;
    const bool more = size_t(current_->segment + 1) < segments_.size();
    start_preparing(more ? current_->segment + 1 : -1, std::move(old));
  }
  return Status::ok();
}

const RoutingMap* SrStage::routing_for(int64_t frame, int64_t* local) const {
  if (multi_) {
    *local = frame;
    return routing_;
  }
  *local = frame - current_->first_frame;
  return current_->routing;
}

Status SrStage::load_model(int m) {
  if (runtimes_[size_t(m)]) return Status::ok();
  const auto t0 = std::chrono::steady_clock::now();
  Model copy = models_[size_t(m)];
  const PathSpec rich = copy.arch.paths.back();
  copy.arch.paths = {rich};
  if (rich.width != 0) copy.arch.paths.push_back(PathSpec{0, 0});
  auto rt = SrRuntime::create(copy, rt_options_);
  if (!rt) return rt.status().with_context(model_attachment_name(m));
  runtimes_[size_t(m)].emplace(std::move(*rt));
  const int now = alive_.fetch_add(1) + 1;
  if (now > max_alive_.load()) max_alive_.store(now);
  load_ms_ += ms_since(t0);
  ++loaded_;
  return Status::ok();
}

Status SrStage::run(const Frame& lr, Frame& hr, int64_t frame, int level) {
  if (multi_) {
    // Decoded frame i is routing frame i; a damaged stream that lost frames
    // keeps the last map rather than failing.
    const int f = routing_ ? int(std::min<int64_t>(frame, routing_->frames - 1)) : 0;
    return run_multi(lr, hr, f, level);
  }
  Prepared& p = *current_;
  SrRuntime& rt = *p.rt;
  if (level >= p.levels) {
    if (!warned_levels_)
      log_warning("segment " + std::to_string(p.segment) + " has " + std::to_string(p.levels) +
                  " QoS levels, fewer than segment 0: level " + std::to_string(level) +
                  " runs as " + std::to_string(p.levels - 1));
    warned_levels_ = true;
    level = p.levels - 1;
  }
  if (p.routing) {
    const int64_t local = std::clamp<int64_t>(frame - p.first_frame, 0, p.routing->frames - 1);
    return rt.upscale_luma(lr.y.data(), lr.width, lr.height, lr.width, hr.y.data(), hr.width,
                           *p.routing, int(local), level);
  }
  const int path = static_level_path(rt.num_paths(), level);  // a static model
  return rt.upscale_luma(lr.y.data(), lr.width, lr.height, lr.width, hr.y.data(), hr.width, path);
}

Status SrStage::run_multi(const Frame& lr, Frame& hr, int frame, int level) {
  const RoutingMap* routing = routing_;
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

  const int s = scale_, hr_w = lr.width * s, hr_h = lr.height * s;
  const bool single = (used & (used - 1)) == 0;
  for (int m = 0; m < int(models_.size()); ++m) {
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
  stats.segments = int(segments_.size());
  stats.segment_switches = switches_;
  stats.switch_waits = waits_;
  stats.max_runtimes_alive = max_alive_.load();
  stats.prepare_ms = double(prepare_us_.load()) / 1000.0;
  stats.runtime_bytes = 0;
  if (!multi_) {
    stats.models = 1;
    stats.models_loaded = int(switches_) + 1;
    stats.model_load_ms = stats.prepare_ms;
    if (current_ && current_->rt) {
      stats.runtime_bytes = current_->rt->memory_bytes();
      stats.simd = current_->rt->simd_level();
      stats.precision = current_->rt->precision();
      stats.threads = current_->rt->threads();
    }
    return;
  }
  stats.segments = 1;
  stats.models = int(models_.size());
  stats.models_loaded = loaded_;
  stats.model_load_ms = load_ms_;
  stats.tile_switches = tile_switches_;
  stats.frame_switches = frame_switches_;
  for (const auto& rt : runtimes_)
    if (rt) {
      stats.runtime_bytes += rt->memory_bytes();
      stats.simd = rt->simd_level();
      stats.precision = rt->precision();
      stats.threads = rt->threads();
    }
}

}  // namespace dydca::detail
