// Rate-distortion bench (`dydca bench`, issues 9 and 15). Per clip:
//   - rates: total kb/s (video + model + routing, audio apart) chosen so that
//     x264 at the full size spans ~32-42 dB PSNR-Y (a CRF probe on a sample of
//     the clip), or the --rates list;
//   - x264 ladder: x264 (2-pass, same preset) at each scale of ladder_scales
//     (1 = the full size, the anchor "x264-full"; 2, 3, 4 = area-downscaled,
//     then lanczos back to the full size, the "free upscale" a platform has);
//     the x264 hull is the upper envelope of all ladder points (what a
//     per-title ladder already gets);
//   - dydca: `--scale auto` (the main curve) and fixed scales for comparison,
//     at the same total rates; per point the chosen scale, the trials, and
//     the lanczos upscale of the file's own LR stream (the SR gain);
//   - optional model baselines (static, per-chunk, per-segment) at one scale;
//   - BD-rate / BD-PSNR against x264-full and against the hull, the never-
//     worse margin (dydca - x264-full at the same total rate) per rate;
//   - one PNG per clip: the same detailed crop of the original, x264-full,
//     LR + lanczos and dydca at the reference rate, side by side.
// Writes DIR/report.json, DIR/report.md, gnuplot plots and the crop PNGs.
// Server side (needs the LibTorch encoder).
//
// Decoder cost (fps, peak RSS, model switches) of the files at the reference
// rate is measured in a child process: the bench spawns `probe_exe` (a dydca
// binary; the CLI passes itself) with the hidden `bench --decode-probe`
// flags, which runs dydca::decode_file into a null sink and prints one JSON
// line. A child made by exec has a fresh address space, so its peak RSS
// (VmHWM) is the decoder's own; the parent's encoder memory does not count
// (with fork alone, or in ru_maxrss after fork + exec, it would).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "dydca/media.h"
#include "dydca/status.h"

namespace dydca::bench {

struct RdBenchParams {
  std::vector<std::string> clips;
  // dydca curves: 0 = `--scale auto` (the main curve), 1..4 = a fixed scale
  // (comparison curves). The main curve of a clip is the first of these
  // that has points.
  std::vector<int> scales{0};
  // x264 ladder scales (1 = full size, always run: it is the anchor).
  std::vector<int> ladder_scales{1, 2, 3, 4};
  // Total kb/s for every clip; empty = chosen per clip (see pick_rates).
  std::vector<int> rates;
  double target_lo_db = 32, target_hi_db = 42;  // x264-full PSNR-Y span of the chosen rates
  int rate_count = 5;
  std::string preset = "medium";     // x264 preset of every method (the encoder's default)
  std::string quality = "balanced";  // training preset (the encoder's default)
  std::string out_dir = "bench-out";
  int64_t max_frames = 0;  // 0 = all
  int steps = 0;           // > 0 overrides the training preset
  int threads = 2;
  // Model baselines ("static", "per-chunk", "per-segment"), at baseline_scale.
  std::vector<std::string> baselines;
  int baseline_scale = 2;
  // Rate whose files are decoded (decoder table), whose points make the
  // MACs and bytes charts and the crop PNG; 0 (or not one of the clip's
  // rates) = the middle of the clip's rates (upper middle for an even count).
  int ref_rate = 0;
  bool crops = true;      // write the crop PNG per clip
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

// One trial encode of `--scale auto` (EncodeReport::scale_trials).
struct TrialPoint {
  int scale = 0;  // 0 = plain x264 at the full size
  double total_kbps = 0, psnr_y = 0, lanczos_psnr_y = 0, seconds = 0;
  bool linear = false;  // the linear upscaler shipped (no network)
  std::string downscale;  // the LR's filter ("" for plain x264)
};

// One measured point of one method.
struct RdSample {
  int rate = 0;  // the nominal (target) total rate of the run, kb/s
  double total_kbps = 0, video_kbps = 0, model_kbps = 0, routing_kbps = 0;
  int64_t model_bytes = 0, routing_bytes = 0;
  double psnr_y = 0, ssim_y = 0;
  double macs_per_lr_pixel = 0;
  double encode_s = 0;
  // x264 ladder and hull: the point's scale. dydca: the scale of the file
  // (auto: the chosen one; 1 = post-filter on full-size x264).
  int scale = 1;
  bool plain_x264 = false;  // dydca auto shipped plain x264 (nothing beat it)
  bool linear = false;      // every segment shipped the linear upscaler (no network)
  std::string downscale;    // dydca: the filter that made the LR ("" for plain x264)
  std::string decision;     // dydca auto: why this scale (EncodeReport::scale_decision)
  std::vector<TrialPoint> trials;
  // dydca: the file's own LR stream upscaled by lanczos to the full size
  // (scale 1 / plain x264: the stream itself); 0 = not measured.
  double lanczos_psnr_y = 0;
  std::vector<LevelPoint> levels;  // every QoS level of the file (model methods)
};

// Decoder cost of one file at the reference rate (see the top).
struct DecodeCost {
  std::string method;   // the curve whose file it is ("x264-full", "dydca auto", ...)
  std::string decoder;  // what ran: "SR level 0 of 3", "H.264 LR + bicubic x2 (plain video)", ...
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

// Kinds of curves.
inline constexpr const char* kKindX264 = "x264";        // ladder: x264 at one scale + lanczos
inline constexpr const char* kKindHull = "hull";        // upper envelope of the ladder
inline constexpr const char* kKindDydca = "dydca";      // dydca at `scale` (0 = auto)
inline constexpr const char* kKindBaseline = "baseline";  // model baseline at `scale`

struct RdCurve {
  std::string method;  // "x264-full", "x264 x2+lanczos", "x264 hull", "dydca auto", "dydca x2", ...
  std::string kind;
  int scale = 1;       // ladder / dydca / baseline scale (dydca auto: 0)
  std::vector<RdSample> points;
};

// One point of the x264 probe on the clip's sample: a CRF run (abr_kbps 0)
// or a 2-pass run at a target rate (abr_kbps > 0, crf -1).
struct ProbePoint {
  int crf = 0;
  double kbps = 0, psnr_y = 0;  // measured
  int abr_kbps = 0;
};

// The crop compared by eye (DIR/crop_<name>.png).
struct CropInfo {
  std::string png;  // file name in DIR; "" = none written
  int frame = 0, x = 0, y = 0, side = 0, magnify = 1, rate = 0;
  std::vector<std::string> panels;  // labels, left to right
};

struct RdResult {
  std::string clip, name;
  int frames = 0;
  double fps = 0, duration_s = 0;
  int hr_width = 0, hr_height = 0;
  std::vector<int> rates;
  std::string rates_from;          // "probe" or "--rates"
  std::vector<ProbePoint> probe;   // the CRF probe (rates_from == "probe")
  int probe_frames = 0;            // frames in the probe's sample
  int ref_rate = 0;
  std::vector<RdCurve> curves;
  std::vector<DecodeCost> decodes;
  CropInfo crop;
  std::vector<std::string> errors;  // runs that failed (the bench goes on)
};

// Runs everything and writes the outputs. Fails only when nothing can be
// written or the inputs cannot be read.
Status run_rd_bench(const RdBenchParams& params, std::vector<RdResult>* results = nullptr);

// ---- analysis (pure; exposed for tests) -----------------------------------------

// The x264 hull from the ladder's points: at each nominal rate, the scale
// with the best PSNR-Y (what a per-title ladder picks per rung), sorted by
// measured rate; a point that costs more than its predecessor and is worse
// is dropped (while 4 points, the BD minimum, are left). A point-wise hull on
// purpose: a geometric hull over all points would start at the cheapest
// point of any scale, however bad (x4 at 16 dB beside x1 at 32 dB).
std::vector<RdSample> upper_hull(std::vector<RdSample> points);

// PSNR-Y of `points` at `kbps`, linear in log rate between the two nearest
// points (extrapolated from the end segment outside); NaN with < 2 points.
double psnr_at_rate(const std::vector<RdSample>& points, double kbps);

// `count` log-spaced rates from lo to hi kb/s, rounded to two significant
// digits, distinct; a span under 1.5x is widened to 4x from lo.
std::vector<int> log_spaced_rates(double lo, double hi, int count);
// Rates from the CRF points of an x264-full probe: log_spaced_rates between
// the rate where they reach lo_db and the one where they reach hi_db (log-
// rate interpolation; clamped to the probe's ends when it never gets there).
// The bench then refines both ends with 2-pass runs (docs/bench.md).
std::vector<int> pick_rates(const std::vector<ProbePoint>& probe, double lo_db, double hi_db,
                            int count);

struct BdNumbers {
  double rate_pct = 0, psnr_db = 0;  // NaN when not computable
};
// BD-rate (%) and BD-PSNR (dB) of `test` against `anchor` (dydca::bd_rate /
// bd_psnr, >= 4 points each). BD-rate only when the two PSNR ranges overlap
// by >= 0.25 dB (otherwise it extrapolates and on flat curves it is noise).
BdNumbers bd_numbers(const std::vector<RdSample>& anchor, const std::vector<RdSample>& test);

// The top-left corner of the side x side block of the largest luma gradient
// energy (Sobel) of `frame`, on an even grid (side is clamped to the frame).
struct CropRect {
  int x = 0, y = 0, side = 0;
};
CropRect pick_detail_crop(const Frame& frame, int side);

// Writes the same crop of each panel frame side by side, magnified by
// `magnify` (nearest neighbour, pixels stay visible), each labelled below
// (one or two lines, '\n' separated). Frames must all have the same size.
struct CropPanel {
  const Frame* frame = nullptr;
  std::string label;
};
Status write_crop_png(const std::string& path, const std::vector<CropPanel>& panels,
                      const CropRect& rect, int magnify);

// The main dydca curve of a result (the first dydca curve with points, in
// the order of RdBenchParams::scales), or nullptr.
const RdCurve* main_dydca_curve(const RdResult& r);
const RdCurve* find_curve(const RdResult& r, const std::string& method);

// ---- outputs ---------------------------------------------------------------------

std::string rd_report_json(const RdBenchParams& params, const std::vector<RdResult>& results);
std::string rd_report_md(const RdBenchParams& params, const std::vector<RdResult>& results);
// Writes per clip DIR/rd_<name>.png (x264-full, hull, dydca curves, LR +
// lanczos of the main curve), ladder_<name>.png (x264 at every scale and the
// hull), macs_<name>.png (PSNR-Y vs MACs per LR pixel at the reference
// rate), decode_<name>.png (fps and peak RSS per decoder) and bytes_<name>.png
// (model + routing bytes) via gnuplot; warns and returns ok when gnuplot is
// missing.
Status write_rd_plots(const RdBenchParams& params, const std::vector<RdResult>& results);

// Rewrites DIR/report.md and the plots from DIR/report.json (a finished or
// interrupted run), e.g. after a change to the tables or plots.
Status replot_rd_report(const std::string& dir);

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

// The --quick clip: dydca::synthetic_clip 192x128, 24 frames, without its
// pixel noise, upscaled x2 (bicubic) to 384x256, as Y4M at 24 fps. Band-
// limited on purpose: LR scales are competitive on it (the hull mixes
// scales) and a model's bits are not most of a rate, as on real clips.
Status write_quick_clip(const std::string& path);

}  // namespace dydca::bench
