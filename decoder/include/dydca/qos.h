// dydca QoS controller: holds the frame rate when the CPU gets busy by
// stepping the whole SR network down to cheaper QoS levels (AdaSR / DySR).
// Pure C++: no libav, no SDL, no clock of its own (the caller passes times,
// so tests drive it with a simulated clock).
//
// Usage (one controller per playback; levels as in RoutingMap::chunk_path,
// level 0 richest, the last level cheapest):
//   dydca::QosParams qp;
//   qp.target_fps = 24;
//   auto qos = dydca::QosController::create(routing.levels(), qp);
//   // Start-up calibration on this device: run one frame per level (twice,
//   // the faster run counts), so a slow machine starts on a cheap level.
//   qos->calibrate([&](int level) { ...run SR at level...; return QosSample{macs, seconds}; });
//   for each frame f:
//     std::vector<int64_t> macs(levels);              // this frame's cost per level:
//     for (l...) macs[l] = rt.frame_macs(w, h, paths_of(f, l));
//     int level = qos->choose_level(macs);
//     ...decode, SR at `level`, output; measure...
//     qos->report({.t_s = now, .sr_s = sr, .overhead_s = decode_and_output});
//   qos->trace();  // one QosFrameRecord per frame
//
// Model. Every level l has an idle efficiency eff[l] (MACs/s): measured by
// calibration, or on the first frame that runs l, and raised whenever l runs
// faster than it (the fastest run is the closest to idle). A frame's load
// sample is the slowdown ratio (sr + j) / (macs/eff + j), with a jitter
// allowance j (a cheap level's millisecond of scheduling noise must not read
// as a 3x slowdown). The load estimate is the MEDIAN of the last window_s of
// samples, so a single outlier (a page fault, a preempted thread) moves it not
// at all; the last two samples (their minimum) bring a lasting change in at
// once. A level's predicted SR time is s * (macs[l]/eff[l] + j) - j; the SR
// budget per frame is 1/target_fps minus the median non-SR time (decode +
// output) of the window.
//
// Decisions (hysteresis, so a steady load never oscillates):
//   - stay on the current level while its prediction <= (1 - safety_margin) * budget;
//   - step DOWN at once, possibly several levels, to the richest level that
//     fits, when the current one no longer fits, when two frames in a row
//     were late (one late frame is an outlier and changes nothing), or when
//     the first frame after a step up did not fit (a failed probe);
//   - step UP one level after up_hold_s of consecutive frames in which the
//     richer level's prediction <= (1 - up_margin) * budget (up_margin >
//     safety_margin), or PROBE it after probe_s without a late frame when
//     its prediction has been within the budget (no margin) for up_hold_s:
//     the prediction may be pessimistic (a cold calibration, a load read on
//     a cheap level), the probe measures it. A failed
//     step up or probe doubles its wait (up to max_up_hold_s); the waits
//     return to their base after a long stable period.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dydca/decoder.h"  // LevelPolicy (the pipeline hook); pure C++, no libav types
#include "dydca/model.h"
#include "dydca/routing.h"
#include "dydca/runtime.h"
#include "dydca/status.h"

namespace dydca {

struct QosParams {
  double target_fps = 25;        // > 0: the deadline per frame is 1/target_fps
  double safety_margin = 0.10;   // stay while predicted <= (1 - this) * budget
  double up_margin = 0.20;       // step up while predicted <= (1 - this) * budget; >= safety_margin
  double up_hold_s = 1.0;        // stable time before a step up (base)
  double probe_s = 4.0;          // time without a late frame before a probe (base)
  double max_up_hold_s = 16.0;   // cap of the doubling after failed step ups / probes
  double window_s = 0.5;         // load and overhead estimates: median over this much
                                 // playback (at least 5 frames)
  // Scheduling jitter allowance in the slowdown sample (sr + j) / (idle + j):
  // a cheap level's time (a millisecond) says little about the load, and its
  // jitter must not read as a 3x slowdown.
  double jitter_s = 0.002;
  int pinned_level = -1;         // >= 0: always this level (the controller only records)
  int start_level = -1;          // >= 0: level before any measurement when not calibrated;
                                 // -1: the cheapest level
};

// One timing of SR at some level (calibration), on an idle device.
struct QosSample {
  int64_t macs = 0;     // frame_macs of the frame that was run
  double seconds = 0;   // wall time of its SR
};

// What happened to one frame (the one the last choose_level() was for).
struct QosFrameTiming {
  double t_s = 0;         // time stamp for the trace (e.g. seconds since playback start)
  double sr_s = 0;        // wall time of the SR of this frame
  double overhead_s = 0;  // the rest of this frame's serial work (decode, colour, output)
  // Late = missed its presentation deadline. -1: sr_s + overhead_s > 1/target_fps.
  int late = -1;
};

struct QosFrameRecord {
  int64_t frame = 0;
  double t_s = 0;
  int level = 0;
  int64_t macs = 0;            // cost of the frame at its level
  double sr_ms = 0;            // measured
  double overhead_ms = 0;      // measured
  double predicted_ms = 0;     // the controller's SR prediction when it chose the level
  double budget_ms = 0;        // SR budget when it chose the level
  double slowdown = 1;         // load estimate after this frame
  bool late = false;
};

struct QosSummary {
  int64_t frames = 0;
  int64_t late = 0;
  double late_fraction = 0;
  int64_t switches = 0;             // level changes
  double mean_level = 0;
  std::vector<int64_t> level_frames;  // frames per level
  double mean_sr_ms = 0;
  double p99_sr_ms = 0;
  double max_sr_ms = 0;
};

class QosController {
 public:
  // num_levels: 1..16. Errors: bad level count, target_fps <= 0, margins
  // outside [0, 1) or up_margin < safety_margin, pinned/start level out of range.
  static Expected<QosController> create(int num_levels, const QosParams& params);

  // ---- calibration (optional, before the first frame) ----
  // One idle-device timing of `level`; several samples keep the fastest (the
  // others carry warm-up and noise).
  void add_calibration(int level, const QosSample& sample);
  // Runs `run_level(l)` `repeats` times for every level, cheapest first, and
  // adds the samples. run_level runs one frame's SR at level l and returns
  // its MACs and seconds.
  void calibrate(const std::function<QosSample(int level)>& run_level, int repeats = 2);
  bool calibrated(int level) const;

  // ---- per frame ----
  // Level for the next frame. level_macs[l] = the frame's MACs at level l
  // (size num_levels; use SrRuntime::frame_macs). Must be followed by report().
  int choose_level(const std::vector<int64_t>& level_macs);
  // The measured times of the frame choose_level() was last called for.
  void report(const QosFrameTiming& timing);

  // ---- state ----
  int num_levels() const { return int(eff_.size()); }
  int level() const { return level_; }
  const QosParams& params() const { return params_; }
  // The load estimate: median slowdown of the window (1 = idle).
  double slowdown() const { return slowdown_; }
  // SR budget per frame in seconds: 1/target_fps minus the non-SR time.
  double budget_seconds() const;
  // Predicted SR seconds of `macs` at `level` under the current load; < 0
  // when the level has never been measured.
  double predicted_seconds(int level, int64_t macs) const;
  int up_hold_frames() const { return up_hold_; }
  int probe_frames() const { return probe_hold_; }
  const std::vector<QosFrameRecord>& trace() const { return trace_; }

 private:
  QosController(int num_levels, const QosParams& params);
  // On pending_macs_, under the load estimate `s`.
  double predict(int level, int64_t macs, double s) const;
  bool fits(int level, double margin, double s) const;
  int richest_fitting(int from_level, double margin, double s) const;
  void estimate();  // slowdown_, fast_slowdown_, overhead_s_ from the windows

  QosParams params_;
  std::vector<double> eff_;        // MACs/s idle; 0 = unknown
  std::vector<int64_t> pending_macs_;
  int level_ = 0;
  bool started_ = false;
  bool pending_ = false;
  double slowdown_ = 1.0;           // median of ratios_
  double fast_slowdown_ = 1.0;      // max(median, min of the last two samples)
  double overhead_s_ = 0.0;         // median of overheads_
  size_t window_ = 5;               // samples in the windows
  std::vector<double> ratios_, overheads_;  // last `window_` samples, oldest first
  std::vector<double> scratch_;             // for their medians
  int late_run_ = 0;                // consecutive late frames up to the last one
  int64_t frames_since_late_ = 0;
  bool probe_pending_ = false;      // the next report is the first frame of a step up
  bool probe_failed_ = false;
  int base_up_hold_ = 1, max_up_hold_ = 1, up_hold_ = 1;
  int base_probe_ = 1, probe_hold_ = 1;
  int stable_frames_ = 0;           // consecutive frames the richer level fit for a step up
  int stable_probe_ = 0;            // ... fit the stay rule (for a probe)
  int64_t frames_since_change_ = 0;
  double pending_pred_s_ = 0, pending_budget_s_ = 0;
  std::vector<QosFrameRecord> trace_;
};

// Frames, late frames, switches, frames per level, SR time statistics.
QosSummary summarize_qos_trace(const std::vector<QosFrameRecord>& trace, int num_levels);
// CSV: frame,t_s,level,macs,sr_ms,overhead_ms,predicted_ms,budget_ms,slowdown,late
Status write_qos_trace_csv(const std::string& path, const std::vector<QosFrameRecord>& trace);

// ---- cost of a frame per level -------------------------------------------------

// SR multiply-accumulates of routing frame `frame` at every QoS level (the
// count of SrRuntime::frame_macs: tile area x the path's MACs per LR pixel).
// Without a routing map (static model), level l runs the l-th richest path of
// an lr_width x lr_height frame. `out` is resized to the number of levels.
void level_frame_macs(const ModelArch& arch, const RoutingMap* routing, int frame, int lr_width,
                      int lr_height, std::vector<int64_t>* out);

// ---- the pipeline adapter (decode_file's LevelPolicy) -----------------------------

// Drives a QosController from decode_file's per-frame hook. Before frame n
// it reports frame n-1 (SR time from LevelContext::last, decode + chroma as
// the non-SR overhead) and chooses frame n's level from its per-level MACs.
// A sink that sees real presentation deadlines (a player) calls note_late();
// otherwise a frame is late when SR + decode + chroma exceed the interval.
// The architecture and routing map are copied (no weights; the map is one
// byte per tile per frame). A segmented file's frames are costed with their
// own segment's routing (LevelContext::routing) when it has the same levels.
class QosLevelPolicy final : public LevelPolicy {
 public:
  // params.target_fps <= 0: the stream's frame rate (frame_rate).
  static Expected<std::shared_ptr<QosLevelPolicy>> create(const ModelArch& arch,
                                                          const RoutingMap* routing,
                                                          int lr_width, int lr_height,
                                                          Rational frame_rate, QosParams params);
  // Start-up calibration on this device: `model` runs on `session` (the
  // pipeline's own, so on its worker pool) one synthetic LR frame (the
  // kernels' speed does not depend on pixel values) routed like frame 0, at
  // every level, twice. Costs about two frames' SR per level.
  Status calibrate(const SrModel& model, SrSession& session);
  // Same for a caller that has no session yet: plans `model` with options
  // and runs it on `pool` (pass the one the decode will use, as
  // DecodeOptions::pool; null = a temporary pool of options.threads).
  Status calibrate(const Model& model, const RuntimeOptions& options,
                   std::shared_ptr<WorkerPool> pool = nullptr);
  int level_for_frame(const LevelContext& ctx) override;
  // Reports the last frame (decode_file has no call after it): pass
  // stats.timings.back() once decode_file has returned.
  void finish(const FrameTiming& last);
  // Thread-safe: the sink saw a frame miss its presentation time.
  void note_late() { late_events_.fetch_add(1, std::memory_order_relaxed); }
  // Set when the sink calls note_late(): lateness then comes only from it.
  void set_sink_reports_late(bool on) { sink_reports_late_ = on; }
  // Level of the frame being upscaled (any thread may read it).
  int current_level() const { return current_level_.load(std::memory_order_relaxed); }
  const QosController& controller() const { return qos_; }

  QosLevelPolicy(QosController qos, const ModelArch& arch, const RoutingMap* routing, int w, int h);

 private:
  void report_last(const FrameTiming& last);
  QosController qos_;
  ModelArch arch_;
  std::unique_ptr<RoutingMap> routing_;
  int lr_w_, lr_h_;
  std::vector<int64_t> macs_;
  std::chrono::steady_clock::time_point t0_;
  bool started_ = false;
  bool sink_reports_late_ = false;
  std::atomic<int64_t> late_events_{0};
  int64_t late_seen_ = 0;
  std::atomic<int> current_level_{0};
};

// ---- fixed or auto, switchable while decoding -------------------------------------

// The level of every frame as the caller last asked: a fixed level (>= 0) or
// the QoS controller's (-1, auto), changeable from any thread while
// decode_file runs (the C API's dydca_set_level). What auto means for a file
// is decided in one place, decode_file (DecodeOptions::switchable): it builds
// a QosLevelPolicy for single-model dydca files - calibrated when the run
// starts in auto, else learning each level's speed on the first frame that
// runs it - and attaches it before on_start. Without one (plain videos,
// multi-model files) auto runs level 0. The controller hears only about the
// frames it chose.
class SwitchableLevelPolicy final : public LevelPolicy {
 public:
  explicit SwitchableLevelPolicy(int level) : requested_(level) {}
  // -1 auto, >= 0 fixed (clamped to the file's levels per frame). Any thread.
  void set(int level) { requested_.store(level); }
  int requested() const { return requested_.load(); }
  // decode_file, before the first frame and before on_start.
  void attach(std::shared_ptr<QosLevelPolicy> qos) { qos_ = std::move(qos); }
  // The attached controller (null: auto runs level 0); read it from on_start
  // on. Its note_late() and set_sink_reports_late() (before the first frame)
  // are for the caller; its trace is read through trace() below.
  const std::shared_ptr<QosLevelPolicy>& qos() const { return qos_; }
  int level_for_frame(const LevelContext& ctx) override;
  // After the run: reports the last frame to the controller if it chose it.
  void finish(const FrameTiming& last);
  // A copy of the controller's trace so far (any thread; empty without one).
  std::vector<QosFrameRecord> trace() const;

 private:
  std::atomic<int> requested_;
  std::shared_ptr<QosLevelPolicy> qos_;
  mutable std::mutex mu_;   // the controller's state: the SR thread vs trace()
  bool auto_last_ = false;  // the previous frame's level came from the controller
};

}  // namespace dydca
