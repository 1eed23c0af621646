// Private stage of the decode pipeline: the SR luma over one or several
// models. The frames themselves (bicubic chroma, luma by one model or stitched
// from several) are dydca/runtime_frame.h's FrameUpscaler, which the encoder's
// evaluation runs too.
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
#include "dydca/runtime_frame.h"

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

// HR luma of one frame from the file's models: per segment (one dynamic or
// static model and its routing; a format-1 single-model file is one segment),
// or several models side by side (format-1 multi-model baselines: the routing
// names a model per chunk). One worker pool for all of them (DecodeOptions::
// pool or one of options.threads made here); the frames run through the
// caller's FrameUpscaler, whose session serves every model.
//
// Segments: segment k+1's model is reconstructed and planned (an SrModel) on
// a background thread while segment k plays; the first frame of k+1 swaps
// pointers (and waits only if the preparation is late). The model of k is
// released on the background thread too, before k+2 is prepared: at most two
// models are alive.
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
  const std::shared_ptr<WorkerPool>& pool() const { return pool_; }
  // For the caller's FrameUpscaler (tile size = the first routing's).
  SessionOptions session_options() const { return rt_options_.session(); }
  // Segment 0's planned model (single-model files, before the first
  // begin_frame; null otherwise): for the QoS calibration.
  std::shared_ptr<const SrModel> first_model() const;
  // Segment 0's routing (for the QoS calibration).
  const RoutingMap* first_routing() const;
  // Routing that applies to output frame `frame`, and the frame's index in it
  // (frames are asked in increasing order; null for a static model).
  const RoutingMap* routing_for(int64_t frame, int64_t* local) const;
  // Before frame `frame` (increasing order): moves to its segment's model
  // when it starts one (*segment_switch), waiting if it is not prepared yet.
  Status begin_frame(int64_t frame, bool* segment_switch);
  // Writes hr.y (hr is (w*s) x (h*s), its chroma untouched) for the frame
  // begin_frame was last called with, through `frames`.
  Status run(FrameUpscaler& frames, const Frame& lr, Frame& hr, int64_t frame, int level);
  // Fills the runtime / multi-model / segment fields of stats (`frames`: the
  // session's arenas count in runtime_bytes).
  void report(DecodeStats& stats, const FrameUpscaler& frames) const;

  struct Prepared;  // one segment's model and routing

 private:
  SrStage() = default;
  Status load_model(int m);
  Status run_multi(FrameUpscaler& frames, const Frame& lr, Frame& hr, int frame, int level);
  void start_preparing(int segment, std::unique_ptr<Prepared> retire);

  DydcaReader* reader_ = nullptr;
  int scale_ = 0;
  RuntimeOptions rt_options_;
  std::shared_ptr<WorkerPool> pool_;
  int levels_ = 1;
  bool multi_ = false;
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

  // Multi-model mode (format 1): each model planned (stitch_model) the first
  // time a tile needs it; its parsed weights are dropped then.
  std::vector<Model> models_;
  std::vector<std::shared_ptr<const SrModel>> planned_;
  std::vector<const SrModel*> planned_ptrs_;  // what FrameUpscaler::luma_tiles takes
  const RoutingMap* routing_ = nullptr;       // the reader's v1 routing (format 1)
  int loaded_ = 0;
  double load_ms_ = 0;
  std::vector<uint8_t> owner_, prev_owner_;
  uint64_t prev_used_ = 0;
  bool have_prev_ = false;
  int64_t tile_switches_ = 0, frame_switches_ = 0;
};

}  // namespace dydca::detail
