#include "upscale_stages.h"

#include <algorithm>
#include <exception>

namespace dydca::detail {

// One segment ready to run: its model (planned) and its routing.
struct SrStage::Prepared {
  int segment = -1;
  int64_t first_frame = 0, frames = 0;
  std::shared_ptr<const SrModel> model;
  std::optional<RoutingMap> own_routing;  // format 2: this segment's
  const RoutingMap* routing = nullptr;    // own_routing, the reader's v1 routing, or null
  int levels = 1;
  Status status;
  std::atomic<int>* alive = nullptr;
  Prepared() = default;
  Prepared(const Prepared&) = delete;
  Prepared& operator=(const Prepared&) = delete;
  ~Prepared() {
    if (model) {
      model.reset();
      alive->fetch_sub(1);
    }
  }
};

namespace {

// Builds segment k's model. Runs on the preparation thread (or the caller's
// for segment 0); `retire` (the segment before the current one) is released
// first, so that no more than two models are ever alive.
std::unique_ptr<SrStage::Prepared> prepare_segment(DydcaReader* reader, int k,
                                                   const DydcaSegment& seg, ModelOptions opt,
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
    auto planned = SrModel::create(*model, opt);
    if (!planned) {
      p->status = planned.status().with_context("segment " + std::to_string(k));
      return p;
    }
    p->model = std::move(*planned);
    const int now = alive->fetch_add(1) + 1;
    int seen = max_alive->load();
    while (now > seen && !max_alive->compare_exchange_weak(seen, now)) {
    }
    p->levels = p->routing ? p->routing->levels() : p->model->num_paths();
  } catch (const std::exception& e) {  // bad_alloc
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

std::shared_ptr<const SrModel> SrStage::first_model() const {
  if (multi_ || !current_ || current_->segment != 0) return nullptr;
  return current_->model;
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
  if (reader.format_version() == 1) {
    // The whole file's routing: the reader's, not a copy.
    st->routing_ = reader.v1_routing() ? &*reader.v1_routing() : nullptr;
  } else {
    DYDCA_ASSIGN_OR_RETURN(st->first_routing_, reader.segment_routing(0));
  }
  const RoutingMap* routing = st->first_routing();
  st->rt_options_ = sr_runtime_options(reader, options, routing);
  if (options.pool) {
    st->pool_ = options.pool;
  } else {
    DYDCA_ASSIGN_OR_RETURN(st->pool_, WorkerPool::create(options.threads));
  }
  st->multi_ = reader.format_version() == 1 && reader.model_count() > 1;
  if (!st->multi_) {
    st->segments_ = reader.segments();
    st->current_ = prepare_segment(&reader, 0, st->segments_[0], st->rt_options_.model(),
                                   &st->alive_, &st->max_alive_, &st->prepare_us_, nullptr);
    if (!st->current_->status) return st->current_->status;
    st->levels_ = st->current_->levels;
    if (st->segments_.size() > 1) st->start_preparing(1, nullptr);
    return st;
  }

  const int n = reader.model_count();
  if (n > 64) return Status::error("more than 64 models");
  for (int i = 0; i < n; ++i) {
    DYDCA_ASSIGN_OR_RETURN(auto m, reader.model(i));
    st->models_.push_back(std::move(m));
  }
  st->planned_.resize(size_t(n));
  st->planned_ptrs_.assign(size_t(n), nullptr);
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
  st->owner_.reserve(tiles);
  st->prev_owner_.reserve(tiles);
  return st;
}

void SrStage::start_preparing(int segment, std::unique_ptr<Prepared> retire) {
  const DydcaSegment seg = segment >= 0 ? segments_[size_t(segment)] : DydcaSegment{};
  auto task = [reader = reader_, segment, seg, opt = rt_options_.model(), alive = &alive_,
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
    done.set_value(prepare_segment(reader_, segment, seg, rt_options_.model(), &alive_,
                                   &max_alive_, &prepare_us_, nullptr));
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
  if (planned_[size_t(m)]) return Status::ok();
  const auto t0 = std::chrono::steady_clock::now();
  auto planned = stitch_model(models_[size_t(m)], rt_options_.model());
  if (!planned) return planned.status().with_context(model_attachment_name(m));
  planned_[size_t(m)] = std::move(*planned);
  planned_ptrs_[size_t(m)] = planned_[size_t(m)].get();
  models_[size_t(m)] = Model{};  // the plan holds what runs
  const int now = alive_.fetch_add(1) + 1;
  if (now > max_alive_.load()) max_alive_.store(now);
  load_ms_ += ms_since(t0);
  ++loaded_;
  return Status::ok();
}

Status SrStage::run(FrameUpscaler& frames, const Frame& lr, Frame& hr, int64_t frame, int level) {
  if (multi_) {
    // Decoded frame i is routing frame i; a damaged stream that lost frames
    // keeps the last map rather than failing.
    const int f = routing_ ? int(std::min<int64_t>(frame, routing_->frames - 1)) : 0;
    return run_multi(frames, lr, hr, f, level);
  }
  Prepared& p = *current_;
  if (level >= p.levels) {
    if (!warned_levels_)
      log_warning("segment " + std::to_string(p.segment) + " has " + std::to_string(p.levels) +
                  " QoS levels, fewer than segment 0: level " + std::to_string(level) +
                  " runs as " + std::to_string(p.levels - 1));
    warned_levels_ = true;
    level = p.levels - 1;
  }
  const int64_t local =
      p.routing ? std::clamp<int64_t>(frame - p.first_frame, 0, p.routing->frames - 1) : 0;
  return frames.luma(*p.model, lr, hr, p.routing, int(local), level);
}

Status SrStage::run_multi(FrameUpscaler& frames, const Frame& lr, Frame& hr, int frame,
                          int level) {
  const RoutingMap* routing = routing_;
  if (!routing) {
    DYDCA_TRY(load_model(0));
    return frames.luma(*planned_[0], lr, hr, nullptr, 0, 0);
  }
  DYDCA_TRY(routing_tile_paths(*routing, frame, level, int(models_.size()), &owner_));
  uint64_t used = 0;
  for (size_t t = 0; t < owner_.size(); ++t) {
    used |= uint64_t{1} << owner_[t];
    if (have_prev_ && prev_owner_[t] != owner_[t]) ++tile_switches_;
  }
  if (have_prev_ && (used & ~prev_used_)) ++frame_switches_;
  prev_used_ = used;
  have_prev_ = true;
  for (int m = 0; m < int(models_.size()); ++m)
    if (used >> m & 1) DYDCA_TRY(load_model(m));
  DYDCA_TRY(frames.luma_tiles(planned_ptrs_, owner_, lr, hr));
  prev_owner_.swap(owner_);
  return Status::ok();
}

void SrStage::report(DecodeStats& stats, const FrameUpscaler& frames) const {
  stats.segments = int(segments_.size());
  stats.segment_switches = switches_;
  stats.switch_waits = waits_;
  stats.max_runtimes_alive = max_alive_.load();
  stats.prepare_ms = double(prepare_us_.load()) / 1000.0;
  stats.runtime_bytes = frames.session().memory_bytes();
  stats.threads = pool_->threads();
  if (!multi_) {
    stats.models = 1;
    stats.models_loaded = int(switches_) + 1;
    stats.model_load_ms = stats.prepare_ms;
    if (current_ && current_->model) {
      stats.runtime_bytes += current_->model->memory_bytes();
      stats.simd = current_->model->simd_level();
      stats.precision = current_->model->precision();
    }
    return;
  }
  stats.segments = 1;
  stats.models = int(models_.size());
  stats.models_loaded = loaded_;
  stats.model_load_ms = load_ms_;
  stats.tile_switches = tile_switches_;
  stats.frame_switches = frame_switches_;
  for (const auto& m : planned_)
    if (m) {
      stats.runtime_bytes += m->memory_bytes();
      stats.simd = m->simd_level();
      stats.precision = m->precision();
    }
}

}  // namespace dydca::detail
