// QoS controller (see dydca/qos.h for the model and the decision rules).
#include "dydca/qos.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

namespace dydca {

namespace {
constexpr int kMaxQosLevels = 16;
constexpr double kMinSlowdown = 0.05, kMaxSlowdown = 100.0;
}  // namespace

Expected<QosController> QosController::create(int num_levels, const QosParams& p) {
  if (num_levels < 1 || num_levels > kMaxQosLevels)
    return Status::error("qos: number of levels " + std::to_string(num_levels) +
                         " outside 1.." + std::to_string(kMaxQosLevels));
  if (!(p.target_fps > 0) || !std::isfinite(p.target_fps) || p.target_fps > 1000)
    return Status::error("qos: target fps must be in (0, 1000]");
  if (!(p.safety_margin >= 0 && p.safety_margin < 1) || !(p.up_margin >= 0 && p.up_margin < 1) ||
      p.up_margin < p.safety_margin)
    return Status::error("qos: margins must be in [0, 1) with up_margin >= safety_margin");
  if (!(p.up_hold_s >= 0) || !(p.max_up_hold_s >= 0) || !(p.probe_s >= 0) ||
      !(p.jitter_s >= 0) || !(p.window_s >= 0) || p.up_hold_s > 3600 || p.max_up_hold_s > 3600 ||
      p.probe_s > 3600 || p.window_s > 60 || p.jitter_s > 1)
    return Status::error("qos: hold, probe and window times must be in [0, 3600] s");
  if (p.pinned_level >= num_levels)
    return Status::error("qos: pinned level " + std::to_string(p.pinned_level) +
                         " but the stream has " + std::to_string(num_levels) + " levels");
  if (p.start_level >= num_levels)
    return Status::error("qos: start level " + std::to_string(p.start_level) + " out of range");
  return QosController(num_levels, p);
}

QosController::QosController(int num_levels, const QosParams& p)
    : params_(p), eff_(size_t(num_levels), 0.0), pending_macs_(size_t(num_levels), 0) {
  const auto frames = [&](double s) { return std::max(1, int(std::lround(s * p.target_fps))); };
  base_up_hold_ = frames(p.up_hold_s);
  base_probe_ = frames(p.probe_s);
  max_up_hold_ = std::max({base_up_hold_, base_probe_, frames(p.max_up_hold_s)});
  up_hold_ = base_up_hold_;
  probe_hold_ = base_probe_;
  window_ = size_t(std::max(5, frames(p.window_s)));
  ratios_.reserve(window_);
  overheads_.reserve(window_);
  scratch_.reserve(window_);
  level_ = p.pinned_level >= 0 ? p.pinned_level
           : p.start_level >= 0 ? p.start_level
                                : num_levels - 1;
}

void QosController::add_calibration(int level, const QosSample& s) {
  if (level < 0 || level >= num_levels() || s.macs <= 0 || !(s.seconds > 0)) return;
  eff_[size_t(level)] = std::max(eff_[size_t(level)], double(s.macs) / s.seconds);
}

void QosController::calibrate(const std::function<QosSample(int)>& run_level, int repeats) {
  for (int l = num_levels() - 1; l >= 0; --l)
    for (int r = 0; r < std::max(1, repeats); ++r) add_calibration(l, run_level(l));
}

bool QosController::calibrated(int level) const {
  return level >= 0 && level < num_levels() && eff_[size_t(level)] > 0;
}

double QosController::budget_seconds() const { return 1.0 / params_.target_fps - overhead_s_; }

double QosController::predict(int level, int64_t macs, double s) const {
  if (level < 0 || level >= num_levels()) return -1;
  // An unmeasured level borrows the efficiency of the nearest measured cheaper
  // level (richer paths are usually at least as efficient per MAC: wider
  // convolutions vectorise better), else of the nearest richer one.
  double eff = eff_[size_t(level)];
  for (int l = level + 1; eff <= 0 && l < num_levels(); ++l) eff = eff_[size_t(l)];
  for (int l = level - 1; eff <= 0 && l >= 0; --l) eff = eff_[size_t(l)];
  if (eff <= 0) return -1;
  // Inverse of the slowdown sample (sr + j) / (idle + j).
  const double idle = double(std::max<int64_t>(macs, 0)) / eff, j = params_.jitter_s;
  return std::max(0.0, s * (idle + j) - j);
}

double QosController::predicted_seconds(int level, int64_t macs) const {
  return predict(level, macs, fast_slowdown_);
}

bool QosController::fits(int level, double margin, double s) const {
  const double pred = predict(level, pending_macs_[size_t(level)], s);
  if (pred < 0) return false;  // never measured: no evidence that it fits
  return pred <= (1.0 - margin) * budget_seconds();
}

int QosController::richest_fitting(int from_level, double margin, double s) const {
  for (int l = std::max(0, from_level); l < num_levels(); ++l)
    if (fits(l, margin, s)) return l;
  return num_levels() - 1;
}

namespace {
// The lower median: with two samples, the smaller (one outlier of two moves
// nothing). `scratch` keeps its capacity: no allocation per frame.
double median(const std::vector<double>& v, std::vector<double>& scratch) {
  if (v.empty()) return 0;
  scratch.assign(v.begin(), v.end());
  const size_t m = (scratch.size() - 1) / 2;
  std::nth_element(scratch.begin(), scratch.begin() + ptrdiff_t(m), scratch.end());
  return scratch[m];
}
}  // namespace

void QosController::estimate() {
  slowdown_ =
      ratios_.empty() ? 1.0 : std::clamp(median(ratios_, scratch_), kMinSlowdown, kMaxSlowdown);
  fast_slowdown_ = slowdown_;
  if (ratios_.size() >= 2)
    fast_slowdown_ = std::max(slowdown_, std::min(ratios_.back(), ratios_[ratios_.size() - 2]));
  overhead_s_ = median(overheads_, scratch_);
}

int QosController::choose_level(const std::vector<int64_t>& level_macs) {
  // A short vector repeats its last entry (callers that know one cost only).
  for (int l = 0; l < num_levels(); ++l)
    pending_macs_[size_t(l)] =
        level_macs.empty() ? 0 : level_macs[std::min(size_t(l), level_macs.size() - 1)];
  const int before = level_;
  const double s = fast_slowdown_;
  if (params_.pinned_level >= 0) {
    level_ = params_.pinned_level;
  } else if (!started_) {
    // First frame: calibration (if any) decides; otherwise the start level.
    bool any = false;
    for (double e : eff_) any = any || e > 0;
    if (any) level_ = richest_fitting(0, params_.safety_margin, s);
  } else {
    const bool failed_probe = probe_failed_;
    const bool need_down = failed_probe || late_run_ >= 2 || !fits(level_, params_.safety_margin, s);
    if (need_down) {
      stable_frames_ = stable_probe_ = 0;
      if (level_ < num_levels() - 1) {
        level_ = richest_fitting(level_ + 1, params_.safety_margin, s);
        // The richer level did not hold: wait longer before the next try.
        if (failed_probe || frames_since_change_ < up_hold_) {
          up_hold_ = std::min(2 * up_hold_, max_up_hold_);
          probe_hold_ = std::min(2 * probe_hold_, max_up_hold_);
        }
      }
    } else if (level_ > 0) {
      stable_frames_ = fits(level_ - 1, params_.up_margin, s) ? stable_frames_ + 1 : 0;
      stable_probe_ = fits(level_ - 1, 0.0, s) ? stable_probe_ + 1 : 0;
      const bool step_up = stable_frames_ >= up_hold_;
      const bool probe = stable_probe_ >= up_hold_ && frames_since_late_ >= probe_hold_ &&
                         frames_since_change_ >= probe_hold_;
      if (step_up || probe) --level_;
    }
    if (level_ != before) stable_frames_ = stable_probe_ = 0;
    // A long quiet period forgives earlier failed probes.
    if (frames_since_change_ >= 2 * max_up_hold_) {
      up_hold_ = base_up_hold_;
      probe_hold_ = base_probe_;
    }
  }
  probe_failed_ = false;
  // The first frame on a richer level tests it. (Not the very first frame of
  // playback: it pays cold caches and page faults; two late frames decide.)
  probe_pending_ = params_.pinned_level < 0 && started_ && level_ < before;
  started_ = true;
  if (level_ != before) frames_since_change_ = 0;
  pending_pred_s_ = predict(level_, pending_macs_[size_t(level_)], s);
  pending_budget_s_ = budget_seconds();
  pending_ = true;
  return level_;
}

void QosController::report(const QosFrameTiming& t) {
  if (!pending_) return;  // report without choose_level: nothing to attribute it to
  pending_ = false;
  const double sr = std::max(0.0, t.sr_s), over = std::max(0.0, t.overhead_s);
  const double period = 1.0 / params_.target_fps;
  const bool late = t.late >= 0 ? t.late != 0 : sr + over > period;
  const int64_t macs = pending_macs_[size_t(level_)];

  auto push = [&](std::vector<double>& w, double x) {
    if (w.size() >= window_) w.erase(w.begin());
    w.push_back(x);
  };
  push(overheads_, over);
  if (macs > 0 && sr > 0) {
    double& eff = eff_[size_t(level_)];
    // Not calibrated: the first run of a level is its calibration, under the
    // load we currently believe in. A faster run than the idle estimate
    // means the estimate was pessimistic (a cold calibration).
    if (eff <= 0) eff = double(macs) / (sr / slowdown_);
    eff = std::max(eff, double(macs) / sr);
    const double idle = double(macs) / eff, j = params_.jitter_s;
    push(ratios_, (sr + j) / (idle + j));
  }
  late_run_ = late ? late_run_ + 1 : 0;
  frames_since_late_ = late ? 0 : frames_since_late_ + 1;
  // The first frame of a step up must fit the stay rule (measured, not predicted).
  if (probe_pending_ && params_.pinned_level < 0 && level_ < num_levels() - 1)
    probe_failed_ = late || sr > (1.0 - params_.safety_margin) * pending_budget_s_;
  probe_pending_ = false;
  estimate();

  QosFrameRecord r;
  r.frame = int64_t(trace_.size());
  r.t_s = t.t_s;
  r.level = level_;
  r.macs = macs;
  r.sr_ms = sr * 1e3;
  r.overhead_ms = over * 1e3;
  r.predicted_ms = pending_pred_s_ * 1e3;
  r.budget_ms = pending_budget_s_ * 1e3;
  r.slowdown = slowdown_;
  r.late = late;
  trace_.push_back(r);
  ++frames_since_change_;
}

QosSummary summarize_qos_trace(const std::vector<QosFrameRecord>& trace, int num_levels) {
  QosSummary s;
  s.level_frames.assign(size_t(std::max(num_levels, 1)), 0);
  s.frames = int64_t(trace.size());
  if (trace.empty()) return s;
  std::vector<double> sr;
  sr.reserve(trace.size());
  double level_sum = 0, sr_sum = 0;
  for (size_t i = 0; i < trace.size(); ++i) {
    const QosFrameRecord& r = trace[i];
    s.late += r.late;
    if (i > 0 && r.level != trace[i - 1].level) ++s.switches;
    if (r.level >= 0) {
      if (size_t(r.level) >= s.level_frames.size()) s.level_frames.resize(size_t(r.level) + 1, 0);
      ++s.level_frames[size_t(r.level)];
    }
    level_sum += r.level;
    sr_sum += r.sr_ms;
    sr.push_back(r.sr_ms);
  }
  s.late_fraction = double(s.late) / double(s.frames);
  s.mean_level = level_sum / double(s.frames);
  s.mean_sr_ms = sr_sum / double(s.frames);
  std::sort(sr.begin(), sr.end());
  s.p99_sr_ms = sr[std::min(sr.size() - 1, size_t(std::ceil(0.99 * double(sr.size()))) - 1)];
  s.max_sr_ms = sr.back();
  return s;
}

Status write_qos_trace_csv(const std::string& path, const std::vector<QosFrameRecord>& trace) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "w"), &std::fclose);
  if (!f) return Status::error("cannot write " + path);
  std::fprintf(f.get(), "frame,t_s,level,macs,sr_ms,overhead_ms,predicted_ms,budget_ms,slowdown,late\n");
  for (const QosFrameRecord& r : trace)
    std::fprintf(f.get(), "%lld,%.6f,%d,%lld,%.3f,%.3f,%.3f,%.3f,%.4f,%d\n", (long long)r.frame,
                 r.t_s, r.level, (long long)r.macs, r.sr_ms, r.overhead_ms, r.predicted_ms,
                 r.budget_ms, r.slowdown, int(r.late));
  if (std::fflush(f.get()) != 0) return Status::error("write error on " + path);
  return Status::ok();
}

}  // namespace dydca

// ---- cost per level and the pipeline adapter ------------------------------------

namespace dydca {

void level_frame_macs(const ModelArch& arch, const RoutingMap* routing, int frame, int lr_width,
                      int lr_height, std::vector<int64_t>* out) {
  const int np = int(arch.paths.size());
  if (!routing || routing->levels() == 0 || routing->tiles_per_frame() == 0) {
    out->assign(size_t(std::max(np, 1)), 0);
    for (int l = 0; l < np; ++l)
      (*out)[size_t(l)] =
          int64_t(lr_width) * lr_height * arch.macs_per_lr_pixel(static_level_path(np, l));
    return;
  }
  const RoutingMap& r = *routing;
  const int f = std::clamp(frame, 0, std::max(0, r.frames - 1));
  const int ts = r.tile_size, ntx = r.tiles_x(), nty = r.tiles_y();
  // Pixels per chunk in this frame, then per level sum over chunks.
  std::vector<int64_t> chunk_px(size_t(std::max(r.num_chunks, 1)), 0);
  for (int ty = 0; ty < nty; ++ty)
    for (int tx = 0; tx < ntx; ++tx) {
      const size_t c = r.chunk(f, tx, ty);
      if (c < chunk_px.size())
        chunk_px[c] += int64_t(std::min(ts, r.lr_width - tx * ts)) * std::min(ts, r.lr_height - ty * ts);
    }
  out->assign(size_t(r.levels()), 0);
  for (int l = 0; l < r.levels(); ++l)
    (*out)[size_t(l)] = routed_macs(arch, r.chunk_path[size_t(l)], chunk_px).macs;
}

QosLevelPolicy::QosLevelPolicy(QosController qos, const ModelArch& arch, const RoutingMap* routing,
                               int w, int h)
    : qos_(std::move(qos)),
      arch_(arch),
      routing_(routing ? std::make_unique<RoutingMap>(*routing) : nullptr),
      lr_w_(w),
      lr_h_(h) {}

Expected<std::shared_ptr<QosLevelPolicy>> QosLevelPolicy::create(const ModelArch& arch,
                                                                 const RoutingMap* routing,
                                                                 int lr_width, int lr_height,
                                                                 Rational frame_rate,
                                                                 QosParams params) {
  if (arch.paths.empty()) return Status::error("qos: the model has no paths");
  if (params.target_fps <= 0) params.target_fps = frame_rate.valid() ? frame_rate.to_double() : 25;
  const int levels = routing && routing->levels() > 0 ? routing->levels() : int(arch.paths.size());
  DYDCA_ASSIGN_OR_RETURN(auto qos, QosController::create(levels, params));
  return std::make_shared<QosLevelPolicy>(std::move(qos), arch, routing, lr_width, lr_height);
}

Status QosLevelPolicy::calibrate(const Model& model, const RuntimeOptions& options,
                                 std::shared_ptr<WorkerPool> pool) {
  if (!pool) {
    auto made = WorkerPool::create(options.threads);
    if (!made) return made.status().with_context("qos calibration");
    pool = std::move(*made);
  }
  auto planned = SrModel::create(model, options.model());
  if (!planned) return planned.status().with_context("qos calibration");
  auto session = SrSession::create(std::move(pool), options.session());
  if (!session) return session.status().with_context("qos calibration");
  return calibrate(**planned, *session);
}

Status QosLevelPolicy::calibrate(const SrModel& model, SrSession& session) {
  const int w = lr_w_, h = lr_h_, s = model.scale();
  // Deterministic texture: a ramp with a pseudo-random dither.
  std::vector<uint8_t> lr(size_t(w) * h), hr(size_t(w) * s * h * s);
  uint32_t x = 1;
  for (size_t i = 0; i < lr.size(); ++i) {
    x = x * 1664525u + 1013904223u;
    lr[i] = uint8_t((i % size_t(w)) * 200 / size_t(std::max(w, 1)) + (x >> 28));
  }
  std::vector<uint8_t> paths;
  std::vector<int64_t> macs;
  level_frame_macs(model.arch(), routing_.get(), 0, w, h, &macs);
  Status err;
  qos_.calibrate(
      [&](int level) -> QosSample {
        const auto t0 = std::chrono::steady_clock::now();
        Status st = session.level_tile_paths(model, routing_.get(), 0, level, w, h, &paths);
        if (st) st = session.upscale_luma(model, lr.data(), w, h, w, hr.data(), ptrdiff_t(w) * s, paths);
        const double sec =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (!st) {
          if (err.is_ok()) err = st.with_context("qos calibration");  // keep the first error
          return {};
        }
        return {level < int(macs.size()) ? macs[size_t(level)] : 0, sec};
      },
      2);
  return err;
}

void QosLevelPolicy::report_last(const FrameTiming& last) {
  QosFrameTiming t;
  t.t_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  t.sr_s = last.sr_ms * 1e-3;
  t.overhead_s = (last.decode_ms + last.chroma_ms) * 1e-3;
  const int64_t events = late_events_.load(std::memory_order_relaxed);
  if (sink_reports_late_) t.late = events != late_seen_ ? 1 : 0;
  late_seen_ = events;
  qos_.report(t);
}

int QosLevelPolicy::level_for_frame(const LevelContext& ctx) {
  if (!started_) {
    t0_ = std::chrono::steady_clock::now();
    started_ = true;
  }
  if (ctx.last) report_last(*ctx.last);
  // The frame's own segment's routing when the decoder gives it (segmented
  // files) and it has the controller's levels; else the one it was built with.
  const RoutingMap* routing = routing_.get();
  int64_t frame = ctx.frame;
  if (ctx.routing && routing && ctx.routing->levels() == routing->levels()) {
    routing = ctx.routing;
    frame = ctx.routing_frame;
  }
  level_frame_macs(arch_, routing, int(std::clamp<int64_t>(frame, 0, INT32_MAX)), lr_w_, lr_h_,
                   &macs_);
  const int level = std::clamp(qos_.choose_level(macs_), 0, std::max(0, ctx.levels - 1));
  current_level_.store(level, std::memory_order_relaxed);
  return level;
}

void QosLevelPolicy::finish(const FrameTiming& last) { report_last(last); }

int SwitchableLevelPolicy::level_for_frame(const LevelContext& ctx) {
  const int want = requested_.load();
  int level = std::max(want, 0);
  const bool from_qos = want < 0 && qos_;
  if (from_qos) {
    // The controller learns from the previous frame only if it chose it.
    LevelContext c = ctx;
    if (!auto_last_) c.last = nullptr;
    std::lock_guard lock(mu_);
    level = qos_->level_for_frame(c);
  }
  auto_last_ = from_qos;
  return std::clamp(level, 0, std::max(0, ctx.levels - 1));
}

void SwitchableLevelPolicy::finish(const FrameTiming& last) {
  if (!auto_last_ || !qos_) return;
  std::lock_guard lock(mu_);
  qos_->finish(last);
}

std::vector<QosFrameRecord> SwitchableLevelPolicy::trace() const {
  if (!qos_) return {};
  std::lock_guard lock(mu_);
  return qos_->controller().trace();
}

}  // namespace dydca
