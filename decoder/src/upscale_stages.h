// Private stages of the decode pipeline: the bicubic chroma (or whole-frame,
// for plain videos) upscaler and the SR stage over one or several models.
#pragma once

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <vector>

#include "dydca/container.h"
#include "dydca/decoder.h"
#include "dydca/runtime.h"

struct SwsContext;

namespace dydca::detail {

inline double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The SR runtime options of the pipeline for `reader`'s file (threads, SIMD,
// precision from options; the frame size and tile size from the file and
// `first_routing`, segment 0's routing or null). One rule for SrStage and
// for whoever calibrates a QoS policy against the same runtime.
RuntimeOptions sr_runtime_options(const DydcaReader& reader, const DecodeOptions& options,
                                  const RoutingMap* first_routing);

// swscale bicubic of all three planes from LR w x h to (w*s) x (h*s), into a
// caller-owned frame of that size (no allocation per frame). Same flags as
// dydca::resize(..., ScaleFilter::kBicubic), so the result equals it bit for
// bit. For dydca files the luma it writes is then overwritten by the SR.
class BicubicUpscaler {
 public:
  static Expected<BicubicUpscaler> create(int lr_width, int lr_height, int scale);
  BicubicUpscaler(BicubicUpscaler&&) noexcept;
  BicubicUpscaler& operator=(BicubicUpscaler&&) noexcept;
  ~BicubicUpscaler();
  Status run(const Frame& lr, Frame& hr);

 private:
  struct Deleter {
    void operator()(SwsContext* c) const;
  };
  BicubicUpscaler() = default;
  std::unique_ptr<SwsContext, Deleter> sws_;
  int lr_w_ = 0, lr_h_ = 0, hr_w_ = 0, hr_h_ = 0;
};

// HR luma of one frame from the file's models: per segment (one dynamic or
// static model and its routing; a format-1 single-model file is one segment),
// or several models side by side (format-1 multi-model baselines: the routing
// names a model per chunk).
//
// Segments: segment k+1's model is reconstructed and its SrRuntime created on
// a background thread while segment k plays; the first frame of k+1 swaps
// pointers (and waits only if the preparation is late). The runtime of k is
// destroyed on the background thread too (joining its workers costs time),
// before k+2 is prepared: at most two runtimes are alive.
class SrStage {
 public:
  // reader must have has_dydca; the stage keeps a pointer to it (the reader
  // outlives the stage; its segment_model/segment_routing may run on the
  // stage's preparation thread while the decode thread calls read_packet,
  // which DydcaReader allows).
  static Expected<std::unique_ptr<SrStage>> create(DydcaReader& reader,
                                                   const DecodeOptions& options);
  SrStage(const SrStage&) = delete;
  SrStage& operator=(const SrStage&) = delete;
  ~SrStage();  // waits for a preparation in flight

  int levels() const { return levels_; }
  const RuntimeOptions& runtime_options() const { return rt_options_; }
  // Segment 0's model and routing (for the QoS calibration).
  const Model& first_model() const { return first_model_; }
  const RoutingMap* first_routing() const;
  // Routing that applies to output frame `frame`, and the frame's index in it
  // (frames are asked in increasing order; null for a static model).
  const RoutingMap* routing_for(int64_t frame, int64_t* local) const;
  // Before frame `frame` (increasing order): moves to its segment's runtime
  // when it starts one (*segment_switch), waiting if it is not prepared yet.
  Status begin_frame(int64_t frame, bool* segment_switch);
  // Writes hr.y (hr is (w*s) x (h*s), its chroma untouched) for the frame
  // begin_frame was last called with.
  Status run(const Frame& lr, Frame& hr, int64_t frame, int level);
  // Fills the runtime / multi-model / segment fields of stats.
  void report(DecodeStats& stats) const;

  struct Prepared;  // one segment's runtime and routing

 private:
  SrStage() = default;
  Status load_model(int m);
  Status run_multi(const Frame& lr, Frame& hr, int frame, int level);
  void start_preparing(int segment, std::unique_ptr<Prepared> retire);

  DydcaReader* reader_ = nullptr;
  int scale_ = 0;
  RuntimeOptions rt_options_;
  int levels_ = 1;
  bool multi_ = false;
  Model first_model_;
  std::optional<RoutingMap> first_routing_;  // segment 0's (single-model files)

  // Segment mode.
  std::vector<DydcaSegment> segments_;
  std::unique_ptr<Prepared> current_;
  std::future<std::unique_ptr<Prepared>> next_;
  int next_segment_ = -1;  // what next_ is preparing (-1: nothing or retiring only)
  int64_t switches_ = 0, waits_ = 0;
  std::atomic<int> alive_{0}, max_alive_{0};
  std::atomic<int64_t> prepare_us_{0};
  bool warned_levels_ = false;

  // Multi-model mode (format 1): one runtime per model, created lazily; each
  // runs a copy of its model with paths {richest, global path (0,0)}, so the
  // tiles another model owns cost only the 5x5 skip.
  std::vector<Model> models_;
  const RoutingMap* routing_ = nullptr;  // the reader's v1 routing (format 1)
  std::vector<std::optional<SrRuntime>> runtimes_;
  int loaded_ = 0;
  double load_ms_ = 0;
  std::vector<uint8_t> owner_, prev_owner_, tile_paths_;
  std::vector<uint8_t> scratch_;  // HR luma of one model, copied tile by tile
  uint64_t prev_used_ = 0;
  bool have_prev_ = false;
  int64_t tile_switches_ = 0, frame_switches_ = 0;
};

}  // namespace dydca::detail
