// Rate-distortion bench (`dydca bench`, issue 9): per clip, scale and rate,
// x264 at HR vs LR x264 + bicubic vs dydca (dynamic, level 0 and cheapest
// level) vs the static / per-chunk / per-segment model baselines. Total bits =
// LR video + models + routing (audio excluded); quality = full-frame PSNR-Y
// against the HR input. Writes DIR/report.json, DIR/report.md and gnuplot
// plots DIR/{rd,macs,decode,bytes}_<clip>_x<s>.png. Server side (needs the
// LibTorch encoder).
//
// Decoder cost (fps, peak RSS, model switches) of each method's file at one
// rate is measured in a child process: the bench spawns `probe_exe` (a dydca
// binary; the CLI passes itself) with the hidden `bench --decode-probe`
// flags, which runs dydca::decode_file into a null sink and prints one JSON
// line. A child made by exec has a fresh address space, so its peak RSS
// (VmHWM) is the decoder's own; the parent's encoder memory does not count
// (with fork alone, or in ru_maxrss after fork + exec, it would).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
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
  // Rate (one of `rates`) whose files are decoded for the decoder table and
  // whose points make the quality-vs-MACs and model-bytes charts; 0 = the
  // middle of the list (upper middle for an even count).
  int ref_rate = 0;
  std::string probe_exe;  // dydca binary with the decode probe; "" = no decode measurement
  int decode_runs = 2;    // decode fps = best of this many runs (one child process)
  bool quiet = false;
  const std::atomic<bool>* stop = nullptr;
};

// Quality of one QoS level of a file (the encoder's measurement; levels > 0
// on an even sample of frames).
struct LevelPoint {
  int level = 0;
  double psnr_y = 0, ssim_y = 0;
  double macs_per_lr_pixel = 0;
};

// One measured point of one method.
struct RdSample {
  int rate = 0;  // the nominal rate of the run (kb/s)
  double total_kbps = 0, video_kbps = 0, model_kbps = 0, routing_kbps = 0;
  int64_t model_bytes = 0, routing_bytes = 0;
  double psnr_y = 0, ssim_y = 0;
  double macs_per_lr_pixel = 0;
  double encode_s = 0;
  std::vector<LevelPoint> levels;  // every QoS level of the file (model methods)
};

// Decoder cost of one method's file at the reference rate (see the top).
struct DecodeCost {
  std::string decoder;  // what ran: "dydca SR level 0", "bicubic x2 (plain video)", ...
  int rate = 0, level = 0;
  int64_t frames = 0;
  double fps = 0;             // best run: frames / DecodeStats::wall_s (null sink)
  double setup_s = 0;         // of that run: file read, blob parsing, runtime planning
  int64_t rss_idle_kb = 0;    // the child before decoding: binary + shared libraries
  int64_t rss_peak_kb = 0;    // its peak RSS (VmHWM) over the decode runs
  int64_t runtime_bytes = 0;  // SR arenas + packed weights of the loaded runtimes
  // Multi-model files: runtimes are created lazily on a model's first use;
  // that creation is the model switch (DecodeStats::model_load_ms).
  int models = 0, models_loaded = 0;
  double switch_ms = 0;
  int64_t tile_switches = 0, frame_switches = 0;
};

struct RdCurve {
  std::string method;
  std::vector<RdSample> points;
  std::optional<DecodeCost> decode;
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
// Writes DIR/rd_<name>_x<s>.png (RD curves), macs_ (PSNR-Y vs MACs per LR
// pixel at the reference rate), decode_ (fps and peak RSS per decoder) and
// bytes_ (model + routing bytes per method) via gnuplot; warns and returns ok
// when gnuplot is missing.
Status write_rd_plots(const RdBenchParams& params, const std::vector<RdResult>& results);

// Rewrites DIR/report.md and the plots from DIR/report.json (a finished or
// interrupted run), e.g. after a change to the tables or plots.
Status replot_rd_report(const std::string& dir);

// The reference rate of params (ref_rate, or the middle of rates).
int reference_rate(const RdBenchParams& params);

// ---- decode probe (the child side runs in the CLI, which links the decoder) ----

// What the child prints (one JSON line) after decoding a file `runs` times.
struct DecodeProbeResult {
  int64_t frames = 0;
  double best_wall_s = 0, setup_s = 0;
  int64_t rss_idle_kb = 0, rss_peak_kb = 0;
  int64_t runtime_bytes = 0;
  int models = 0, models_loaded = 0;
  double model_load_ms = 0;
  int64_t tile_switches = 0, frame_switches = 0;
};
std::string decode_probe_json(const DecodeProbeResult& r);
// A field of /proc/self/status in kB ("VmRSS", "VmHWM"); -1 when unavailable.
int64_t proc_status_kb(const char* field);
// Resets VmHWM to the current RSS (/proc/self/clear_refs "5"); false when not possible.
bool reset_peak_rss();
// Spawns `params.probe_exe -q --threads T bench --decode-probe FILE --probe-level L
// --probe-scale S --probe-runs N --probe-decode-threads D` and parses its line.
// Plain videos (no SR) give libavcodec the T threads (D = T), dydca files
// keep them for the SR runtime (D = 1, the decoder's default).
Expected<DecodeCost> measure_decode(const RdBenchParams& params, const std::string& file, int level,
                                    int plain_scale, bool plain_video);

// The --quick clip: dydca::synthetic_clip 192x128, 24 frames at 24 fps, as Y4M.
Status write_quick_clip(const std::string& path);

}  // namespace dydca::bench
