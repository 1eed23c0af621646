// Full-frame quality metrics (no border shave) and Bjøntegaard deltas.
//
// Definitions (docs/metrics.md has the details):
// - PSNR = 10 log10(255^2 / MSE), capped at kPsnrCap dB for identical planes.
// - PSNR-YUV = (6 PSNR_Y + PSNR_U + PSNR_V) / 8 (JCT-VC's 6:1:1 weighting).
// - SSIM-Y as FFmpeg's ssim filter and x264 compute it: 8x8 windows on a
//   4-pixel grid, uniform weights, C1=(0.01*255)^2, C2=(0.03*255)^2.
// - Clip PSNR is given two ways: from the mean MSE over frames (what FFmpeg's
//   psnr filter prints as the average) and as the mean of per-frame PSNRs.
#pragma once

#include <vector>

#include "dydca/media.h"
#include "dydca/status.h"

namespace dydca {

inline constexpr double kPsnrCap = 100.0;

double plane_mse(const uint8_t* a, const uint8_t* b, size_t count);
double psnr_from_mse(double mse);
double plane_ssim(const uint8_t* a, const uint8_t* b, int width, int height);

struct FrameQuality {
  double mse_y = 0, mse_u = 0, mse_v = 0;
  double psnr_y = 0, psnr_u = 0, psnr_v = 0;
  double psnr_yuv = 0;
  double ssim_y = 0;
};
// Frames must have the same size (checked).
Expected<FrameQuality> compare_frames(const Frame& a, const Frame& b, bool with_ssim = true);

struct ClipQuality {
  int frames = 0;
  double psnr_y = 0;             // from mean MSE
  double psnr_y_frame_mean = 0;  // mean of per-frame PSNR-Y
  double psnr_yuv = 0;           // 6:1:1 of the per-plane mean-MSE PSNRs
  double psnr_yuv_frame_mean = 0;
  double ssim_y = 0;             // mean of per-frame SSIM-Y
  std::vector<FrameQuality> per_frame;
};

class QualityAccumulator {
 public:
  explicit QualityAccumulator(bool with_ssim = true) : with_ssim_(with_ssim) {}
  Status add(const Frame& reference, const Frame& test);
  void add(const FrameQuality& q) { frames_.push_back(q); }
  ClipQuality result() const;

 private:
  bool with_ssim_;
  std::vector<FrameQuality> frames_;
};

Expected<ClipQuality> compare_clips(const std::vector<Frame>& reference,
                                    const std::vector<Frame>& test, bool with_ssim = true);

struct RdPoint {
  double kbps = 0;
  double psnr = 0;
};
// Bjøntegaard delta rate in percent of `test` against `anchor` (negative = test
// needs fewer bits for the same quality): cubic fit of log10(rate) over PSNR,
// integrated over the overlapping PSNR range. Needs >= 4 points per curve.
Expected<double> bd_rate(const std::vector<RdPoint>& anchor, const std::vector<RdPoint>& test);
// Bjøntegaard delta PSNR in dB: cubic fit of PSNR over log10(rate).
Expected<double> bd_psnr(const std::vector<RdPoint>& anchor, const std::vector<RdPoint>& test);

}  // namespace dydca
