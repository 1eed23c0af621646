// The encoder's stages, data in and data out. The segmented encoder runs
// them once per segment; the multi-model baselines run them on the whole
// clip as one segment.
//   read/downscale (segment_source.h) -> x264 + decode back -> chunk ->
//   train -> ship (quantize / model update) -> refine -> evaluate
#pragma once

#include <chrono>
#include <optional>
#include <vector>

#include "dydca/chunking.h"
#include "dydca/container.h"
#include "dydca/encoder.h"
#include "dydca/media.h"
#include "dydca/metrics.h"
#include "dydca/runtime.h"
#include "dydca/runtime_frame.h"
#include "dydca/training.h"

namespace dydca::detail {

using Clock = std::chrono::steady_clock;
inline double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

Expected<WeightFormat> parse_precision(const std::string& p);
// --downscale: auto (lanczos; --scale auto may pick area per title), lanczos, area, bicubic.
// The filter's name with auto resolved (what a fixed scale uses and the report names).
std::string resolved_downscale(const std::string& name);
Expected<ScaleFilter> downscale_filter(const std::string& name);
X264Config x264_config(const EncodeParams& p);

// x264 of the LR frames, then decoded back: training sees what the client
// will decode. Frames in = frames out (checked).
struct LrRoundTrip {
  EncodedVideo video;
  std::vector<Frame> decoded;
};
Expected<LrRoundTrip> x264_round_trip(const std::vector<Frame>& lr, Rational frame_rate,
                                      const X264Config& config, int threads,
                                      const ProgressFn& progress);

// Content chunks and routing of one segment, with the chunk -> path tables.
Expected<ChunkingResult> chunk_stage(const std::vector<Frame>& hr, const std::vector<Frame>& lr,
                                     const EncodeParams& p, const ModelArch& arch,
                                     const ProgressFn& progress);

// The training preset for `duration_s` seconds of video with the user's
// overrides; `steps` > 0 replaces the preset's steps and time budget.
Expected<TrainConfig> make_train_config(const EncodeParams& p, const ModelArch& arch,
                                        double duration_s, int steps);

// Re-picks each chunk's path from the error the shipped model really makes
// (up to 16 evenly spread frames, run on `session`), and rebuilds the QoS
// level tables.
Status refine_stage(SrSession& session, const SrModel& model, const std::vector<Frame>& hr,
                    const std::vector<Frame>& lr, RoutingMap& routing, const ModelArch& arch,
                    double tolerance_db, const ProgressFn& progress);

// Sums of per-frame measures: merge over segments, then read the clip's
// figures (PSNR from the mean MSE, as QualityAccumulator).
struct QualitySum {
  double mse_y = 0, mse_u = 0, mse_v = 0, ssim_y = 0;
  int64_t frames = 0;
  void add(const FrameQuality& q);
  void merge(const QualitySum& o);
  double psnr_y() const;
  double psnr_yuv() const;
  double ssim() const { return frames ? ssim_y / double(frames) : 0; }
};

struct SegmentQuality {
  QualitySum bicubic, lanczos;
  std::vector<QualitySum> levels;   // level 0 on every frame, others sampled
  QualitySum quant_fp32, quant_shipped;  // level 0 on the sampled frames
};

// Every frame as the client shows it (`frames`: the decoder's own
// FrameUpscaler, so the measured picture is the decoded one bit for bit) at
// level 0 with `model`; cheaper levels and the fp32 comparison (`model_fp32`,
// may be null) on an even sample of at most `sample_frames` frames.
Expected<SegmentQuality> evaluate_stage(FrameUpscaler& frames, const SrModel& model,
                                        const SrModel* model_fp32,
                                        const std::vector<Frame>& hr,
                                        const std::vector<Frame>& lr, const RoutingMap& routing,
                                        int hr_width, int hr_height, int sample_frames,
                                        const ProgressFn& progress);

// The client runtime as the encoder uses it (sized for the LR frames).
RuntimeOptions runtime_options(const EncodeParams& p, int lr_width, int lr_height);

}  // namespace dydca::detail
