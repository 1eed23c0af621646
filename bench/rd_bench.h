// Rate-distortion bench (`dydca bench`, issue 9): per clip, scale and rate,
// x264 at HR vs LR x264 + bicubic vs dydca (dynamic, level 0 and cheapest
// level) vs the static / per-chunk / per-segment model baselines. Total bits =
// LR video + models + routing (audio excluded); quality = full-frame PSNR-Y
// against the HR input. Writes DIR/report.json, DIR/report.md and gnuplot RD
// plots DIR/rd_<clip>_x<s>.png. Server side (needs the LibTorch encoder).
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "dydca/status.h"

namespace dydca::bench {

struct RdBenchParams {
  std::vector<std::string> clips;
  std::vector<int> scales{2, 4};
  std::vector<int> rates{100, 200, 400, 800};  // LR video kb/s (2-pass); also the HR x264 totals
  std::string preset = "veryfast";
  std::string out_dir = "bench-out";
  std::string quality = "fast";
  int64_t max_frames = 0;  // 0 = all
  int steps = 0;           // > 0 overrides the training preset
  int threads = 2;
  bool multi_model = true;  // per-chunk and per-segment baselines
  bool quiet = false;
  const std::atomic<bool>* stop = nullptr;
};

// One measured point of one method.
struct RdSample {
  int rate = 0;  // the nominal rate of the run (kb/s)
  double total_kbps = 0, video_kbps = 0, model_kbps = 0, routing_kbps = 0;
  int64_t model_bytes = 0;
  double psnr_y = 0, ssim_y = 0;
  double macs_per_lr_pixel = 0;
  double encode_s = 0;
};

struct RdCurve {
  std::string method;
  std::vector<RdSample> points;
};

struct RdResult {
  std::string clip, name;
  int scale = 2, frames = 0;
  int hr_width = 0, hr_height = 0, lr_width = 0, lr_height = 0;
  double fps = 0;
  std::vector<RdCurve> curves;
  std::vector<std::string> errors;  // runs that failed (the bench goes on)
};

// Runs everything and writes the outputs. Fails only when nothing can be
// written or the inputs cannot be read.
Status run_rd_bench(const RdBenchParams& params, std::vector<RdResult>* results = nullptr);

// Output writers (exposed for tests).
std::string rd_report_json(const RdBenchParams& params, const std::vector<RdResult>& results);
std::string rd_report_md(const RdBenchParams& params, const std::vector<RdResult>& results);
// Writes DIR/rd_<name>_x<s>.png via gnuplot; warns and returns ok when gnuplot is missing.
Status write_rd_plots(const std::string& out_dir, const std::vector<RdResult>& results);

// The --quick clip: dydca::synthetic_clip 192x128, 24 frames at 24 fps, as Y4M.
Status write_quick_clip(const std::string& path);

}  // namespace dydca::bench
