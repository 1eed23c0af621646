// Private stages of the decode pipeline: the bicubic chroma (or whole-frame,
// for plain videos) upscaler and the SR stage over one or several models.
#pragma once

#include <chrono>
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

// HR luma of one frame from one dynamic model (routed per tile, or one path
// per level for a static model) or from several models (multi-model
// baselines: the routing names a model per chunk).
class SrStage {
 public:
  // file must have has_dydca; the stage keeps a pointer to its models and
  // routing (the file outlives the stage).
  static Expected<SrStage> create(const DydcaFile& file, const DecodeOptions& options);
  SrStage(SrStage&&) noexcept;
  SrStage& operator=(SrStage&&) noexcept;
  ~SrStage();

  int levels() const { return levels_; }
  const RuntimeOptions& runtime_options() const { return rt_options_; }
  // Writes hr.y (hr is (w*s) x (h*s), its chroma untouched).
  Status run(const Frame& lr, Frame& hr, int64_t frame, int level);
  // Fills the runtime / multi-model fields of stats.
  void report(DecodeStats& stats) const;

 private:
  SrStage() = default;
  Status load_model(int m);
  Status run_multi(const Frame& lr, Frame& hr, int frame, int level);

  const DydcaFile* file_ = nullptr;
  RuntimeOptions rt_options_;
  int levels_ = 1;
  bool multi_ = false;
  // Single model: runtimes_[0]. Multi-model: one per model, created lazily;
  // each runs a copy of its model with paths {richest, global path (0,0)}, so
  // the tiles another model owns cost only the 5x5 skip.
  std::vector<std::optional<SrRuntime>> runtimes_;
  int loaded_ = 0;
  double load_ms_ = 0;
  // Multi-model state, sized once.
  std::vector<uint8_t> owner_, prev_owner_, tile_paths_;
  std::vector<uint8_t> scratch_;  // HR luma of one model, copied tile by tile
  uint64_t prev_used_ = 0;
  bool have_prev_ = false;
  int64_t tile_switches_ = 0, frame_switches_ = 0;
};

}  // namespace dydca::detail
