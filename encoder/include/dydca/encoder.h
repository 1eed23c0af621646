// dydca encoder: the server pipeline end to end, one segment at a time.
//   input -> segments (scene cuts, at most segment_seconds, bounded memory)
//   per segment: HR (padded to 2*scale) -> LR (area) -> x264 (the segment starts
//   on an IDR) -> decode back -> chunking -> training (warm-started from the
//   previous segment's shipped weights) -> model update (int8 difference to the
//   previous weights, or a full model) -> refine routing with measured per-path
//   error -> evaluate -> the segment's files in the work folder
//   then: one .mkv (format 2: LR video + input audio + the segment table)
// and a report (bitrate split, PSNR per QoS level, time per stage, segments).
// Memory is bounded by one segment's frames, not by the input's length; an
// interrupted encode resumes at the first unfinished segment (--resume).
//
// Usage:
//   dydca::EncodeParams p;
//   p.input = "in.mp4"; p.output = "out.mkv";
//   auto report = dydca::encode_video(p, progress);
//   if (!report) fail(report.status());
//   puts(dydca::report_text(*report).c_str());
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "dydca/log.h"
#include "dydca/model.h"
#include "dydca/status.h"
#include "dydca/training.h"  // DistConfig

namespace dydca {

struct EncodeParams {
  std::string input;
  std::string output;                 // .mkv
  // 1 (the network as a post-filter on full-resolution x264), 2, 3 or 4; 0 =
  // auto: chosen per title from trial encodes of a sample at the target rate
  // among scale_candidates, or plain x264 at the full size when nothing beats it.
  int scale = 0;
  std::vector<int> scale_candidates{1, 2, 3, 4};
  int crf = 23;                       // LR x264 CRF (used when bitrate_kbps == 0)
  // Total target kb/s: video + model + routing (audio apart). The encoder pays
  // the model and routing out of it; 0 = CRF mode.
  int bitrate_kbps = 0;
  std::string preset = "medium";      // x264 preset
  int gop = 250;
  int chunks = 4;                     // K content chunks
  int tile_size = 32;                 // LR tile side
  std::string quality = "balanced";   // training preset: fast | balanced | best
  int train_steps = 0;                // > 0 overrides the preset's step count (no time budget)
  std::string precision = "int8";     // model weights: fp32 | fp16 | int8
  // With int8 weights: quantisation-aware fine-tuning at the end of training
  // and int8 activation scales in the model, so the client runs the int8
  // runtime (model.h, ActScales). Off: fp32 activations on the client.
  bool int8_activations = true;
  std::string baseline = "none";      // none | per-chunk | per-segment | static
  int threads = 2;
  int64_t max_frames = 0;             // 0 = all
  uint64_t seed = 1;
  bool bf16 = false;                  // bf16 autocast training (AMX)
  bool channels_last = false;         // NHWC training
  // AdaSR stabilisers (TrainConfig::all_levels / progressive / max_norm).
  bool train_all_levels = false;
  bool train_skip = false;  // TrainConfig::train_skip
  std::string global_path = "bicubic";  // bicubic | fit (TrainConfig::fit_skip)
  // The filter that makes the LR picture: auto | lanczos | area | bicubic.
  // auto: lanczos, except that --scale auto also tries area at its best
  // linear scale and keeps the better of the two (docs/decisions.md).
  std::string downscale = "auto";
  double train_progressive = 0;
  double train_max_norm = 0;
  // > 0: override TrainConfig's learning rate, batch and patch side (experiments).
  double train_lr = 0;
  int train_batch = 0;
  int train_patch = 0;
  double train_qos_weight = -1;  // >= 0: TrainConfig::qos_weight and distill_weight (sandwich)
  bool refine = true;                 // re-pick each chunk's path from measured PSNR
  // With --bitrate: a segment whose trained network does not buy more dB over
  // the clip's least-squares linear upscaler than its model and routing bits
  // would buy the video ships that linear upscaler instead (a ~200-byte
  // model) and gives the bits back to x264 (docs/decisions.md).
  bool model_must_pay = true;
  double refine_tolerance_db = 0.05;
  // The network; scale is taken from `scale`. channels == 0 (the default):
  // default_arch(scale) for whichever scale is used.
  ModelArch arch;
  const std::atomic<bool>* stop = nullptr;
  // Work folder of finished segments ("" = OUTPUT.parts beside the output).
  // It is removed when the output is complete.
  std::string checkpoint;
  bool resume = false;                // continue the encode in the work folder
  double segment_seconds = 10;        // longest segment (scene cuts make shorter ones)
  int64_t segment_memory_mb = 1536;   // and at most this much frame memory per segment
  std::string warm_start = "previous";  // previous | none: each segment's initial weights
  double warm_lr = 1.0;  // a warm-started segment's learning rate, times the preset's
  // Several ranks (docs/distributed.md): "data" trains every segment data-
  // parallel over all ranks (one c10d all-reduce per step); "segments" gives
  // rank r the segments r, r + W, ... (the work folder must be shared), each
  // rank training alone, and rank 0 muxes.
  std::string dist_mode = "data";
  // Data-parallel training over several processes / machines (docs/distributed.md).
  // Every rank runs the same command; rank 0 writes the output, the others
  // return after training with worker_only set.
  DistConfig dist;

  EncodeParams();
};

struct LevelQuality {
  int level = 0;
  double psnr_y = 0;
  double psnr_yuv = 0;
  double ssim_y = 0;
  double macs_per_lr_pixel = 0;  // mean over tiles with this level's routing
  int frames = 0;                // frames measured (level 0: all; others: an even sample)
};

struct SegmentReport {
  int index = 0, first_frame = 0, frames = 0;
  bool resumed = false;         // finished by an earlier run (read from the work folder)
  bool model_is_delta = false;  // the update is a difference to the previous weights
  bool int8_runtime = false;    // the client runs this segment's model in int8
  int64_t video_bytes = 0, model_bytes = 0, routing_bytes = 0;
  int64_t full_model_bytes = 0;  // a full model blob of the same weights, for comparison
  int train_steps = 0;
  bool linear_only = false;  // the network did not pay for its bits: the linear upscaler shipped
  double bicubic_psnr_y = 0, psnr_y = 0;  // level 0
  double seconds = 0;
};

// One trial of --scale auto: a short encode of the sample at the target rate.
struct ScaleTrial {
  int scale = 0;                 // 0 = plain x264 at the full size
  double total_kbps = 0;         // video + model + routing of the trial
  double psnr_y = 0;             // level 0 (plain x264: the decoded stream)
  double lanczos_psnr_y = 0;     // the trial's LR stream upscaled by lanczos (0 for scale 0/1)
  double seconds = 0;
  bool linear = false;           // the linear upscaler shipped (no network): its own model bytes
  std::string downscale;         // the LR's filter (lanczos, area, bicubic); "" for plain x264
};

struct EncodeReport {
  std::string input, output;
  int frames = 0;
  double fps = 0;
  double duration_s = 0;
  int hr_width = 0, hr_height = 0, lr_width = 0, lr_height = 0, scale = 2;
  // --scale auto: the trials and what was chosen. plain_x264: the output is
  // x264 at the full size with no model (nothing beat it at this rate).
  std::vector<ScaleTrial> scale_trials;
  bool plain_x264 = false;
  std::string scale_decision;  // one line: why this scale
  ModelArch arch;
  std::string precision;
  std::string downscale;  // the filter that made the LR (lanczos, area, bicubic)
  std::string baseline;
  // Bitrate split, kb/s over the clip's duration.
  double video_kbps = 0, model_kbps = 0, routing_kbps = 0, audio_kbps = 0;
  int64_t video_bytes = 0, model_bytes = 0, routing_bytes = 0, audio_bytes = 0;
  // Quality against the HR input (original size, full frames).
  double bicubic_psnr_y = 0, bicubic_psnr_yuv = 0, bicubic_ssim_y = 0;
  // The LR stream upscaled by lanczos: the free upscale every SR gain is
  // measured against (x1: the decoded stream itself).
  double lanczos_psnr_y = 0;
  std::vector<LevelQuality> levels;
  std::vector<int64_t> chunk_tiles;
  std::vector<int> chunk_path;  // level 0 after refinement
  double holdout_psnr_before = 0, holdout_psnr_after = 0;
  std::vector<std::pair<int, double>> holdout_history;  // (training step, held-out PSNR-Y)
  // Level-0 PSNR-Y on the sampled frames with the fp32 weights in the fp32
  // runtime and with the shipped (fp16/int8) ones in the runtime the client
  // uses (int8 when the model has activation scales); 0 when the file
  // carries fp32.
  double quant_fp32_psnr_y = 0, quant_shipped_psnr_y = 0;
  bool int8_runtime = false;  // every segment's model runs in the int8 runtime
  int train_steps = 0;
  std::vector<SegmentReport> segments;
  int resumed_segments = 0;
  double peak_rss_mb = 0;  // of this process
  bool worker_only = false;  // a rank > 0 of a distributed encode: no output written
  int dist_world_size = 1;
  double t_allreduce = 0;    // part of t_train spent in the gradient all-reduce
  // Seconds per stage.
  double t_trials = 0;  // --scale auto's trials (part of t_total)
  double t_read = 0, t_x264 = 0, t_chunking = 0, t_train = 0, t_refine = 0, t_eval = 0,
         t_write = 0, t_total = 0;
};

Expected<EncodeReport> encode_video(const EncodeParams& params, const ProgressFn& progress = {});

// Every segment shipped the linear upscaler, no network (false when there are
// no segments).
bool all_segments_linear(const EncodeReport& r);

// Human-readable summary table, and the JSON form (--report).
std::string report_text(const EncodeReport& r);
std::string report_json(const EncodeReport& r);

// The default network and path family (cheap -> rich) for a scale; x1 is a
// smaller post-filter (real time at 1080p).
ModelArch default_arch(int scale);
// p.arch at `scale`, or default_arch(scale) when p.arch.channels == 0.
ModelArch arch_for(const EncodeParams& p, int scale);

}  // namespace dydca
