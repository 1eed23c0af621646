// The segmented encoder: the input goes through the stages one segment at a
// time (stages.h), each finished segment lands in the work folder
// (work_dir.h), and the output is muxed from there at the end.
#include "dydca/encoder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <new>
#include <optional>
#include <nlohmann/json.hpp>

#include "baseline.h"
#include "operating_point.h"
#include "dydca/chunking.h"
#include "dydca/container.h"
#include "dydca/media.h"
#include "dydca/metrics.h"
#include "dydca/runtime.h"
#include "dydca/training.h"
#include "segment_source.h"
#include "stages.h"
#include "work_dir.h"

namespace dydca {

// report.json's segments and scale trials, and the work folder's segment
// reports (below), as nlohmann maps them: keys = member names.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SegmentReport, index, first_frame, frames, resumed,
                                   model_is_delta, int8_runtime, video_bytes, model_bytes,
                                   routing_bytes, full_model_bytes, train_steps, linear_only,
                                   bicubic_psnr_y, psnr_y, seconds)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ScaleTrial, scale, total_kbps, psnr_y, lanczos_psnr_y, seconds,
                                   linear, downscale)
namespace detail {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(QualitySum, mse_y, mse_u, mse_v, ssim_y, frames)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SegmentQuality, bicubic, lanczos, levels, quant_fp32,
                                   quant_shipped)
}  // namespace detail

using namespace detail;
using json = nlohmann::json;

ModelArch default_arch(int scale) {
  ModelArch a;
  a.scale = scale;
  // Measured on cityCC0 x2 (fast preset, same time budget): C16 E16 N2 reached
  // +1.03 dB over bicubic with an 11 kb/s model and 103 fps decode; C32 E32 N4
  // +0.61 dB, 82 kb/s, 4.4 fps (fewer training steps fit the budget). See
  // docs/decisions.md.
  a.channels = 16;
  a.inner = 16;
  a.blocks = 2;
  a.paths = {{0, 0}, {1, 8}, {2, 16}};
  if (scale == 1) {
    // x1 runs on every full-size pixel: a 1080p frame is 4x the LR pixels of
    // x2. C8 E8 N2 keeps the full path near 2 500 MACs/pixel (docs/decisions.md).
    a.channels = 8;
    a.inner = 8;
    a.paths = {{0, 0}, {1, 8}, {2, 8}};
  }
  return a;
}

ModelArch arch_for(const EncodeParams& p, int scale) {
  if (p.arch.channels == 0) return default_arch(scale);
  ModelArch a = p.arch;
  a.scale = scale;
  return a;
}

EncodeParams::EncodeParams() { arch.channels = 0; }

namespace {

Status check_params(const EncodeParams& p) {
  if (p.input.empty()) return Status::error("no input file");
  if (p.output.empty()) return Status::error("no output file (-o OUT.mkv)");
  if (p.dist.world_size > 1 && p.baseline != "none")
    return Status::error("--baseline trains several models; it cannot be distributed (--world-size 1)");
  if (p.dist.world_size < 1 || p.dist.rank < 0 || p.dist.rank >= p.dist.world_size)
    return Status::error("--rank " + std::to_string(p.dist.rank) + " does not fit --world-size " +
                         std::to_string(p.dist.world_size));
  if (p.scale < 0 || p.scale > 4) return Status::error("--scale must be auto, 1, 2, 3 or 4");
  if (p.bitrate_kbps < 0 || p.crf < 0 || p.crf > 51) return Status::error("bad --crf or --bitrate");
  if (p.chunks < 1 || p.chunks > 16) return Status::error("--chunks must be 1..16");
  if (p.tile_size < 8 || p.tile_size > 256) return Status::error("--tile must be 8..256");
  if (!(p.segment_seconds > 0) || p.segment_seconds > 3600)
    return Status::error("--segment-seconds must be in (0, 3600]");
  if (p.segment_memory_mb < 64) return Status::error("--segment-memory must be at least 64 MB");
  if (!(p.warm_lr > 0) || p.warm_lr > 10) return Status::error("--warm-lr must be in (0, 10]");
  if (p.dist_mode != "data" && p.dist_mode != "segments")
    return Status::error("--dist-mode must be data or segments");
  if (p.global_path != "bicubic" && p.global_path != "fit")
    return Status::error("--global-path must be bicubic or fit");
  DYDCA_TRY(downscale_filter(p.downscale).status());
  if (p.warm_start != "previous" && p.warm_start != "none")
    return Status::error("--warm-start must be previous or none");
  if (p.baseline != "none" && p.baseline != "static" && p.baseline != "per-chunk" &&
      p.baseline != "per-segment")
    return Status::error("unknown --baseline " + p.baseline);
  DYDCA_TRY(parse_precision(p.precision).status());
  if (p.dist.rank > 0) return Status::ok();  // workers write nothing; rank 0 checks the output
  auto ext = std::filesystem::path(p.output).extension().string();
  if (ext != ".mkv") return Status::error("the output must be a Matroska file ending in .mkv");
  std::error_code ec;
  if (std::filesystem::exists(p.output, ec) &&
      std::filesystem::equivalent(p.input, p.output, ec))
    return Status::error("the output would overwrite the input");
  auto dir = std::filesystem::absolute(p.output, ec).parent_path();
  if (!std::filesystem::is_directory(dir, ec))
    return Status::error("cannot write " + p.output + ": folder " + dir.string() + " does not exist");
  return Status::ok();
}

constexpr int kLevelEvalFrames = 48;
// A plain-x264 segment's no-op model and one-chunk routing (about 120 + 52
// bytes): what total-rate control charges it.
constexpr int64_t kPlainSideBytes = 180;
// A linear segment's model (linear_arch: headers and names ~180 bytes, the
// fp16 5x5 global path 50 bytes per phase; x3 615, x4 995 bytes measured)
// and one-chunk routing (~52 bytes): what total-rate control expects of it
// before one is measured.
int64_t linear_side_bytes(int scale) { return 230 + 50 * int64_t(scale) * scale; }
constexpr double kMinSegmentSeconds = 2.0;

std::string work_dir_path(const EncodeParams& p) {
  return p.checkpoint.empty() ? p.output + ".parts" : p.checkpoint;
}

// Everything that changes the output: a resume must see the same.
std::string manifest_of(const EncodeParams& p, const EncodeMode& mode, const VideoInfo& info,
                        const ModelArch& arch) {
  std::error_code ec;
  json j;
  j["dydca_work"] = 2;  // 2: segment reports keyed by member name
  j["input"] = std::filesystem::absolute(p.input, ec).string();
  j["input_bytes"] = int64_t(std::filesystem::file_size(p.input, ec));
  j["input_size"] = {info.width, info.height};
  j["scale"] = p.scale;
  j["downscale"] = p.downscale;
  j["plain"] = mode.plain;
  j["linear"] = mode.linear;
  j["crf"] = p.crf;
  j["bitrate_kbps"] = p.bitrate_kbps;
  j["preset"] = p.preset;
  j["gop"] = p.gop;
  j["chunks"] = p.chunks;
  j["tile"] = p.tile_size;
  j["quality"] = p.quality;
  j["steps"] = p.train_steps;
  j["precision"] = p.precision;
  j["int8_activations"] = p.int8_activations;
  j["threads"] = p.threads;
  j["max_frames"] = p.max_frames;
  j["seed"] = p.seed;
  j["segment_seconds"] = p.segment_seconds;
  j["segment_memory_mb"] = p.segment_memory_mb;
  j["warm_start"] = p.warm_start;
  j["warm_lr"] = p.warm_lr;
  j["train"] = {p.bf16, p.channels_last, p.train_all_levels, p.train_skip, p.global_path, p.train_progressive,
                p.train_max_norm, p.refine, p.refine_tolerance_db, p.train_lr, p.train_batch,
                p.train_patch, p.train_qos_weight, p.model_must_pay};
  json paths = json::array();
  for (const PathSpec& ps : arch.paths) paths.push_back({ps.depth, ps.width});
  j["arch"] = {arch.channels, arch.inner, arch.blocks, paths};
  j["world_size"] = p.dist.world_size;
  j["dist_mode"] = p.dist_mode;
  return j.dump(1);
}

// What one finished segment contributes to the report (its .json file).
struct SegmentOutcome {
  SegmentReport rep;
  SegmentQuality quality;
  std::vector<double> level_macs;
  std::vector<int64_t> chunk_tiles;
  std::vector<int> chunk_path;
  double holdout_before = 0, holdout_after = 0;
  double t_x264 = 0, t_chunking = 0, t_train = 0, t_refine = 0, t_eval = 0, t_write = 0,
         t_allreduce = 0;
};
// One list of members per type serves the segment report's writer and its
// reader (a resume), so the two cannot drift; every key is required.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SegmentOutcome, rep, quality, level_macs, chunk_tiles,
                                   chunk_path, holdout_before, holdout_after, t_x264, t_chunking,
                                   t_train, t_refine, t_eval, t_write, t_allreduce)

Expected<SegmentOutcome> outcome_from(const std::string& path) {
  DYDCA_ASSIGN_OR_RETURN(auto bytes, read_file(path, 16 << 20));
  try {
    return json::parse(bytes.begin(), bytes.end()).get<SegmentOutcome>();
  } catch (const std::exception& e) {
    return Status::error(path + ": damaged segment report (" + e.what() + ")");
  }
}

struct EncodeContext {
  const EncodeParams& p;
  const EncodeMode& mode;
  const ProgressFn& prog;
  ModelArch arch;
  VideoInfo info;
  int hr_width = 0, hr_height = 0;  // before padding
  double est_duration_s = 0;        // of the whole input (0 = unknown)
  WorkDir* work = nullptr;
  // --dist-mode segments with several ranks: rank r encodes segments
  // r, r + W, ... into the shared work folder, rank 0 muxes.
  bool segment_parallel = false;
  int owner(int segment) const { return segment_parallel ? segment % p.dist.world_size : 0; }
  int est_segments = 0;  // for progress lines (0 = unknown)
  // --dist-mode data with several ranks: one c10d group for every segment.
  std::shared_ptr<DistSession> session = nullptr;
  // The client runtime's workers (p.threads), for every segment's evaluation.
  std::shared_ptr<WorkerPool> pool = nullptr;
};

// Steps of one segment when --steps fixes the clip's total: split by duration.
int segment_steps(const EncodeContext& c, int frames) {
  const EncodeParams& p = c.p;
  if (p.train_steps <= 0) return 0;
  const double fps = c.info.frame_rate.to_double();
  if (c.est_duration_s <= 0 || fps <= 0) return p.train_steps;
  return std::max(1, int(std::lround(p.train_steps * (frames / fps) / c.est_duration_s)));
}

// One segment through every stage; its files land in the work folder.
// prev: the weights the client has after the previous segment (null for the
// first one); on return *recon holds this segment's.
// The end of a segment: every frame through the client runtime, then the
// segment's files in the work folder (its .json last: then it is done).
// fp32: the unquantised weights, for the report's comparison (or null).
Expected<SegmentOutcome> finish_segment(const EncodeContext& c, const SegmentFrames& seg,
                                        const std::vector<Frame>& lr, const EncodedVideo& video,
                                        const RoutingMap& routing,
                                        const std::vector<uint8_t>& model_blob,
                                        const Model& recon, const SrModel& model,
                                        FrameUpscaler& frames, const Model* fp32,
                                        SegmentOutcome o, Clock::time_point t_seg,
                                        const ProgressFn& sprog) {
  const EncodeParams& p = c.p;
  const double fps = c.info.frame_rate.to_double();
  auto t = Clock::now();
  std::shared_ptr<const SrModel> model32;
  if (fp32) {
    ModelOptions o32 = runtime_options(p, lr[0].width, lr[0].height).model();
    o32.precision = Precision::kFp32;  // the reference: fp32 weights, fp32 activations
    DYDCA_ASSIGN_OR_RETURN(model32, SrModel::create(*fp32, o32));
  }
  // Cheaper levels on an even sample: kLevelEvalFrames per 10 s of video.
  const int sample =
      std::max(8, int(std::lround(kLevelEvalFrames * seg.frames() / (10 * fps))));
  DYDCA_ASSIGN_OR_RETURN(auto q, evaluate_stage(frames, model, model32.get(), seg.hr, lr, routing,
                                                c.hr_width, c.hr_height, sample, sprog));
  o.quality = std::move(q);
  o.rep.int8_runtime = model.precision() == Precision::kInt8;
  o.rep.bicubic_psnr_y = o.quality.bicubic.psnr_y();
  o.rep.psnr_y = o.quality.levels[0].psnr_y();
  o.t_eval = since(t);

  t = Clock::now();
  DYDCA_ASSIGN_OR_RETURN(auto routing_blob, serialize_routing(routing));
  o.rep.routing_bytes = int64_t(routing_blob.size());
  o.rep.model_bytes = int64_t(model_blob.size());
  DYDCA_ASSIGN_OR_RETURN(auto recon_blob,
                         serialize_model(recon, ModelBlobOptions{WeightFormat::kFp32, 3}));
  const WorkDir& w = *c.work;
  DYDCA_TRY(write_packets_file(w.file(seg.index, "lr"), video));
  DYDCA_TRY(write_file_atomic(w.file(seg.index, "model"), model_blob));
  DYDCA_TRY(write_file_atomic(w.file(seg.index, "recon"), recon_blob));
  DYDCA_TRY(write_file_atomic(w.file(seg.index, "routing"), routing_blob));
  o.t_write = since(t);
  o.rep.seconds = since(t_seg);
  DYDCA_TRY(write_file_atomic(w.file(seg.index, "json"), json(o).dump(1)));
  std::error_code ec;
  std::filesystem::remove(w.file(seg.index, "train"), ec);
  return o;
}

// A segment of plain x264 at the full size: the no-op model, one chunk.
Expected<SegmentOutcome> plain_segment(const EncodeContext& c, const SegmentFrames& seg,
                                       LrRoundTrip trip, SegmentOutcome o, Model* recon,
                                       Clock::time_point t_seg, const ProgressFn& sprog) {
  const std::vector<Frame>& lr = trip.decoded;
  RoutingMap routing;
  routing.tile_size = c.p.tile_size;
  routing.lr_width = lr[0].width;
  routing.lr_height = lr[0].height;
  routing.frames = int(lr.size());
  routing.num_chunks = 1;
  routing.chunk_path = {{0}};
  routing.chunk_ids.assign(size_t(routing.frames) * routing.tiles_per_frame(), 0);
  *recon = identity_model();
  DYDCA_ASSIGN_OR_RETURN(auto blob,
                         serialize_model(*recon, ModelBlobOptions{WeightFormat::kInt8, 19}));
  o.rep.full_model_bytes = int64_t(blob.size());
  o.chunk_tiles = chunk_tile_counts(routing);
  o.chunk_path = {0};
  o.level_macs = {double(recon->arch.macs_per_lr_pixel(0))};
  const RuntimeOptions ropt = runtime_options(c.p, lr[0].width, lr[0].height);
  DYDCA_ASSIGN_OR_RETURN(auto model, SrModel::create(*recon, ropt.model()));
  DYDCA_ASSIGN_OR_RETURN(auto frames, FrameUpscaler::create(lr[0].width, lr[0].height,
                                                            recon->arch.scale, c.pool,
                                                            ropt.session()));
  return finish_segment(c, seg, lr, trip.video, routing, blob, *recon, *model, frames, nullptr,
                        std::move(o), t_seg, sprog);
}

// The linear alternative of a trained model: the same architecture (the
// file keeps one set of QoS levels), every tensor zero but the global path,
// and one chunk on path 0 at every level; its blob is a few hundred bytes.
// The global path is the best, measured as shipped on `sample` frames, of
// bicubic, lanczos 2 and 3, and the segment's least-squares 5x5 upscaler at
// three ridges (fit_global_path).
struct LinearAlternative {
  Model shipped;  // what the client reconstructs from `blob`
  std::vector<uint8_t> blob;
  RoutingMap routing;
  int64_t routing_bytes = 0;
  double psnr_y = 0;  // level 0 on the sample
};

// Level-0 PSNR-Y (padded frames) of a model and routing on `count` evenly
// spaced frames, through the client's own upscaler.
Expected<double> sampled_psnr_y(FrameUpscaler& frames, const SrModel& model,
                                const std::vector<Frame>& hr, const std::vector<Frame>& lr,
                                const RoutingMap& routing, int count) {
  const int n = int(lr.size());
  count = std::clamp(count, 1, n);
  double sse = 0, px = 0;
  Frame out;
  for (int i = 0; i < count; ++i) {
    const int f = int((int64_t(2 * i + 1) * n) / (2 * count));
    const Frame& h = hr[size_t(f)];
    if (out.width != h.width || out.height != h.height) out = Frame::blank(h.width, h.height);
    DYDCA_TRY(frames.luma(model, lr[size_t(f)], out, &routing, f, 0));
    sse += plane_mse(out.y.data(), h.y.data(), out.y.size()) * double(out.y.size());
    px += double(out.y.size());
  }
  return psnr_from_mse(sse / std::max(px, 1.0));
}

Expected<LinearAlternative> linear_alternative(const Model& like, const RoutingMap& like_routing,
                                               const std::vector<Frame>& hr,
                                               const std::vector<Frame>& lr,
                                               const EncodeParams& p, FrameUpscaler& frames,
                                               int sample) {
  const size_t s2 = size_t(like.arch.scale) * size_t(like.arch.scale);
  LinearAlternative best;
  RoutingMap& r = best.routing;
  r.tile_size = like_routing.tile_size;
  r.lr_width = like_routing.lr_width;
  r.lr_height = like_routing.lr_height;
  r.frames = like_routing.frames;
  r.num_chunks = 1;
  r.chunk_path.assign(size_t(like_routing.levels()), std::vector<uint8_t>{0});
  r.chunk_ids.assign(size_t(r.frames) * r.tiles_per_frame(), 0);
  DYDCA_ASSIGN_OR_RETURN(auto rb, serialize_routing(r));
  best.routing_bytes = int64_t(rb.size());
  const RuntimeOptions ropt = runtime_options(p, lr[0].width, lr[0].height);
  // The blob stores the global path in fp16 where the file is int8: rounded
  // to int8 per output channel, a 5x5 kernel's taps no longer sum to its DC
  // gain (a brightness error of up to ~1 %, which the network's QAT
  // compensates and a zero body cannot); fp16 costs ~100 bytes more.
  ModelBlobOptions mbo;
  mbo.weights = *parse_precision(p.precision);
  if (mbo.weights == WeightFormat::kInt8) mbo.weights = WeightFormat::kFp16;
  // Candidates: bicubic (the init model's skip), lanczos 2 and 3, then the
  // least-squares fits.
  std::vector<std::vector<float>> skips;
  DYDCA_ASSIGN_OR_RETURN(auto init, init_model(like.arch));
  for (const Tensor& t : init.tensors)
    if (t.name == "skip.weight") skips.emplace_back(t.data.begin(), t.data.end());
  skips.push_back(lanczos_skip_kernel(like.arch.scale, 2));
  skips.push_back(lanczos_skip_kernel(like.arch.scale, 3));
  for (auto& k : skips) k.resize(s2 * 26, 0.f);  // zero biases
  DYDCA_ASSIGN_OR_RETURN(auto fits, fit_global_paths(hr, lr, like.arch.scale, {1e-5, 1e-3, 1e-1}));
  for (auto& f : fits) skips.push_back(std::move(f));
  bool have = false;
  for (const std::vector<float>& skip : skips) {
    Model m = like;
    for (Tensor& t : m.tensors) {
      t.int8.clear();
      t.int8_scale.clear();
      if (t.name == "skip.weight")
        std::copy(skip.begin(), skip.begin() + std::ptrdiff_t(s2 * 25), t.data.begin());
      else if (t.name == "skip.bias")
        std::copy(skip.begin() + std::ptrdiff_t(s2 * 25), skip.end(), t.data.begin());
      else
        std::fill(t.data.begin(), t.data.end(), 0.f);
    }
    DYDCA_ASSIGN_OR_RETURN(auto blob, serialize_model(m, mbo));
    DYDCA_ASSIGN_OR_RETURN(auto shipped, parse_model(blob));
    DYDCA_ASSIGN_OR_RETURN(auto planned, SrModel::create(shipped, ropt.model()));
    DYDCA_ASSIGN_OR_RETURN(double db, sampled_psnr_y(frames, *planned, hr, lr, r, sample));
    if (!have || db > best.psnr_y) {
      have = true;
      best.psnr_y = db;
      best.blob = std::move(blob);
      best.shipped = std::move(shipped);
    }
  }
  return best;
}

// Ships a segment's linear alternative `lin` (fitted like `like` and
// `like_routing` on the LR as it is): x264 closes the rate gap for its bytes
// (no close_rate_gap: no total rate), the fit is made again when x264 ran
// again, and the segment is finished with it. `t`: when the linear work
// began (counted as refine time).
Expected<SegmentOutcome> ship_linear(const EncodeContext& c, SegmentFrames& seg,
                                     LrRoundTrip& trip,
                                     const std::function<Status(int64_t)>& close_rate_gap,
                                     LinearAlternative lin, const Model& like,
                                     const RoutingMap& like_routing, FrameUpscaler& frames,
                                     int sample, SegmentOutcome& o, Model* recon,
                                     Clock::time_point t, Clock::time_point t_seg,
                                     const ProgressFn& sprog) {
  const std::vector<Frame>& lr = trip.decoded;  // x264 running again replaces them in place
  if (close_rate_gap) {
    const int64_t first = trip.video.total_bytes();
    DYDCA_TRY(close_rate_gap(int64_t(lin.blob.size()) + lin.routing_bytes));
    if (trip.video.total_bytes() != first) {
      DYDCA_ASSIGN_OR_RETURN(lin, linear_alternative(like, like_routing, seg.hr, lr, c.p, frames,
                                                     sample));
    }
  }
  std::vector<Frame>().swap(seg.lr);
  *recon = lin.shipped;
  o.rep.linear_only = true;
  o.rep.model_is_delta = false;
  o.rep.model_bytes = int64_t(lin.blob.size());
  // No network was made (EncodeMode::linear): the linear blob is the full model.
  if (o.rep.full_model_bytes == 0) o.rep.full_model_bytes = o.rep.model_bytes;
  o.chunk_tiles = chunk_tile_counts(lin.routing);
  o.chunk_path = {0};
  o.level_macs.assign(size_t(lin.routing.levels()), double(c.arch.macs_per_lr_pixel(0)));
  const RuntimeOptions ropt = runtime_options(c.p, lr[0].width, lr[0].height);
  DYDCA_ASSIGN_OR_RETURN(auto shipped, SrModel::create(*recon, ropt.model()));
  o.t_refine += since(t);
  return finish_segment(c, seg, lr, trip.video, lin.routing, lin.blob, *recon, *shipped, frames,
                        nullptr, std::move(o), t_seg, sprog);
}

// EncodeMode::linear: no chunking and no training; the linear alternative
// of the untrained architecture ships (ship_linear).
Expected<SegmentOutcome> linear_segment(const EncodeContext& c, SegmentFrames& seg,
                                        LrRoundTrip& trip,
                                        const std::function<Status(int64_t)>& close_rate_gap,
                                        SegmentOutcome& o, Model* recon, Clock::time_point t_seg,
                                        const ProgressFn& sprog) {
  const EncodeParams& p = c.p;
  auto t = Clock::now();
  const std::vector<Frame>& lr = trip.decoded;  // x264 running again replaces them in place
  DYDCA_ASSIGN_OR_RETURN(auto like, init_model(c.arch));
  RoutingMap like_routing;
  like_routing.tile_size = p.tile_size;
  like_routing.lr_width = lr[0].width;
  like_routing.lr_height = lr[0].height;
  like_routing.frames = int(lr.size());
  like_routing.chunk_path.assign(c.arch.paths.size(), std::vector<uint8_t>{0});
  const RuntimeOptions ropt = runtime_options(p, lr[0].width, lr[0].height);
  DYDCA_ASSIGN_OR_RETURN(auto frames, FrameUpscaler::create(lr[0].width, lr[0].height,
                                                            c.arch.scale, c.pool,
                                                            ropt.session()));
  const int sample = std::clamp(seg.frames() / 8, 4, 16);
  DYDCA_ASSIGN_OR_RETURN(auto lin,
                         linear_alternative(like, like_routing, seg.hr, lr, p, frames, sample));
  return ship_linear(c, seg, trip, close_rate_gap, std::move(lin), like, like_routing, frames,
                     sample, o, recon, t, t_seg, sprog);
}

// A model whose tail is all zero adds nothing to the global path (a linear
// segment's): the next segment must not warm-start from it.
bool has_trained_body(const Model& m) {
  for (const Tensor& t : m.tensors)
    if (t.name == "tail.weight")
      return std::any_of(t.data.begin(), t.data.end(), [](float v) { return v != 0.f; });
  return false;
}

// video_kbps > 0: the segment's x264 target (total-rate control);
// target_bits > 0: what the segment should spend in all, video + model +
// routing (x264 runs again when the shipped model makes it stray).
Expected<SegmentOutcome> encode_segment(const EncodeContext& c, SegmentFrames& seg,
                                        const Model* prev, const Model* delta_ref, Model* recon,
                                        bool* worker_done, int video_kbps, double target_bits) {
  const EncodeParams& p = c.p;
  const ProgressFn& prog = c.prog;
  const auto t_seg = Clock::now();
  SegmentOutcome o;
  o.rep.index = seg.index;
  o.rep.first_frame = seg.first_frame;
  o.rep.frames = seg.frames();
  const double fps = c.info.frame_rate.to_double();
  // "segment 3 of ~60" (indices from 0, as in the report and the work
  // folder; the count is estimated from the input's frame count).
  std::string tag = "segment " + std::to_string(seg.index);
  if (c.est_segments > 0)
    tag += " of ~" + std::to_string(std::max(c.est_segments, seg.index + 1));
  ProgressFn sprog = [&](const Progress& pr) {
    const std::string stage = tag + " " + std::string(pr.stage);
    return prog(Progress(stage, pr.done, pr.total, pr.detail));
  };

  // x264 and decode back; the LR originals are not needed after.
  auto t = Clock::now();
  X264Config xc = x264_config(p);
  if (video_kbps > 0) {
    xc.bitrate_kbps = video_kbps;
    xc.two_pass = true;
  }
  DYDCA_ASSIGN_OR_RETURN(auto rt_trip,
                         x264_round_trip(seg.lr, c.info.frame_rate, xc, p.threads, sprog));
  // The LR originals stay while x264 may have to run again (the segment's
  // memory bound counts them beside the decoded LR).
  if (target_bits <= 0) std::vector<Frame>().swap(seg.lr);
  std::vector<Frame>& lr = rt_trip.decoded;
  o.rep.video_bytes = rt_trip.video.total_bytes();
  o.t_x264 = since(t);
  // Total rate: when the segment strays more than 3 % from its share once
  // the model's and routing's sizes are known, x264 runs again at the rate
  // that closes the gap (x264's rate is close to linear in its target). A
  // trained network was trained on the first pass's LR, which has the same
  // kind of artifacts; refine and evaluate use the new LR.
  // Up to two runs more; each scales x264's target by what the video
  // should be over what it was (x264 at low rates overshoots by a roughly
  // constant factor, 5-12 % on short clips, which one additive step left).
  auto close_rate_gap = [&](int64_t side_bytes) -> Status {
    const double sec = seg.frames() / fps;
    for (int attempt = 0; attempt < 2; ++attempt) {
      const double actual = double(o.rep.video_bytes + side_bytes) * 8;
      if (std::fabs(actual - target_bits) <= 0.03 * target_bits) break;
      const double want_video = std::max(target_bits - double(side_bytes) * 8, 1.0);
      const double got_video = std::max(double(o.rep.video_bytes) * 8, 1.0);
      const double v2 = std::clamp(xc.bitrate_kbps * want_video / got_video, 0.5 * video_kbps,
                                   2.0 * video_kbps);
      if (std::max(1, int(std::lround(v2))) == xc.bitrate_kbps) break;  // x264 cannot do better
      xc.bitrate_kbps = std::max(1, int(std::lround(v2)));
      log_info(tag + ": total " + std::to_string(int(actual / 1000 / sec)) + " kb/s, target " +
               std::to_string(int(target_bits / 1000 / sec)) + ": x264 again at " +
               std::to_string(xc.bitrate_kbps) + " kb/s");
      const auto t2 = Clock::now();
      DYDCA_ASSIGN_OR_RETURN(auto again,
                             x264_round_trip(seg.lr, c.info.frame_rate, xc, p.threads, sprog));
      rt_trip = std::move(again);  // in place: `lr` refers to its frames
      o.rep.video_bytes = rt_trip.video.total_bytes();
      o.t_x264 += since(t2);
    }
    return Status::ok();
  };
  if (c.mode.plain) {
    if (target_bits > 0) DYDCA_TRY(close_rate_gap(kPlainSideBytes));
    std::vector<Frame>().swap(seg.lr);
    return plain_segment(c, seg, std::move(rt_trip), std::move(o), recon, t_seg, sprog);
  }
  if (c.mode.linear) {
    if (p.dist.rank > 0 && !c.segment_parallel) {  // nothing to train: rank 0 writes
      *worker_done = true;
      return o;
    }
    std::function<Status(int64_t)> close;
    if (target_bits > 0) close = close_rate_gap;
    return linear_segment(c, seg, rt_trip, close, o, recon, t_seg, sprog);  // o: close updates it
  }

  t = Clock::now();
  DYDCA_ASSIGN_OR_RETURN(auto chunks, chunk_stage(seg.hr, lr, p, c.arch, sprog));
  RoutingMap routing = std::move(chunks.routing);
  chunks = ChunkingResult{};
  o.t_chunking = since(t);

  t = Clock::now();
  DYDCA_ASSIGN_OR_RETURN(
      auto tc, make_train_config(p, c.arch, seg.frames() / fps, segment_steps(c, seg.frames())));
  TrainConfig cfg = tc;
  cfg.seed = p.seed + uint64_t(seg.index);
  cfg.checkpoint = c.work->file(seg.index, "train");
  if (p.warm_start == "previous" && prev && has_trained_body(*prev)) {
    cfg.init = prev;
    cfg.lr *= p.warm_lr;
    cfg.lr_min = std::min(cfg.lr_min, cfg.lr);
  }
  if (c.segment_parallel) cfg.dist = DistConfig{};  // each rank trains its own segments
  cfg.session = c.session;
  cfg.session_tag = "segment-" + std::to_string(seg.index);
  TrainReport tr;
  DYDCA_ASSIGN_OR_RETURN(auto model, train_dynamic(seg.hr, lr, routing, cfg, &tr, sprog));
  o.rep.train_steps = tr.steps;
  o.holdout_before = tr.holdout_psnr_before;
  o.holdout_after = tr.holdout_psnr_after;
  o.t_train = since(t);
  o.t_allreduce = tr.allreduce_seconds;
  if (p.dist.rank > 0 && !c.segment_parallel) {  // data-parallel worker: rank 0 writes
    *worker_done = true;
    return o;
  }

  // Ship: a full blob, or an int8 difference to the previous weights when that
  // is smaller; the client's weights are what the chosen blob reconstructs.
  t = Clock::now();
  ModelBlobOptions mbo;
  mbo.weights = *parse_precision(p.precision);
  DYDCA_ASSIGN_OR_RETURN(auto full, serialize_model(model, mbo));
  o.rep.full_model_bytes = int64_t(full.size());
  std::vector<uint8_t> blob = std::move(full);
  DYDCA_ASSIGN_OR_RETURN(auto shipped, parse_model(blob));
  if (delta_ref && mbo.weights == WeightFormat::kInt8) {
    ModelDeltaOptions dopt;
    dopt.model_step = true;  // a full int8 model's precision, small codes
    DYDCA_ASSIGN_OR_RETURN(auto delta, serialize_model_delta(*delta_ref, model, dopt));
    if (delta.size() < blob.size()) {
      DYDCA_ASSIGN_OR_RETURN(auto applied,
                             apply_model_delta(*delta_ref, delta.data(), delta.size()));
      blob = std::move(delta);
      shipped = std::move(applied);
      o.rep.model_is_delta = true;
    }
  }
  o.rep.model_bytes = int64_t(blob.size());
  *recon = shipped;

  // Total rate: the model's size is known now.
  if (target_bits > 0) {
    DYDCA_ASSIGN_OR_RETURN(auto rb, serialize_routing(routing));
    // Trials charge the title's predicted model rate, not their own model.
    const double sec = seg.frames() / fps;
    const int64_t model_side = c.mode.model_kbps_hint >= 0
                                   ? int64_t(c.mode.model_kbps_hint * 1000 / 8 * sec)
                                   : o.rep.model_bytes;
    DYDCA_TRY(close_rate_gap(model_side + int64_t(rb.size())));
  }

  const RuntimeOptions ropt = runtime_options(p, lr[0].width, lr[0].height);
  DYDCA_ASSIGN_OR_RETURN(auto planned, SrModel::create(*recon, ropt.model()));
  DYDCA_ASSIGN_OR_RETURN(auto frames, FrameUpscaler::create(lr[0].width, lr[0].height,
                                                            recon->arch.scale, c.pool,
                                                            ropt.session()));
  if (p.refine)
    DYDCA_TRY(refine_stage(frames.session(), *planned, seg.hr, lr, routing, c.arch,
                           p.refine_tolerance_db, sprog));
  o.chunk_tiles = chunk_tile_counts(routing);
  for (uint8_t v : routing.chunk_path[0]) o.chunk_path.push_back(v);
  for (int l = 0; l < routing.levels(); ++l)
    o.level_macs.push_back(
        mean_macs_per_lr_pixel(routing.chunk_path[size_t(l)], o.chunk_tiles, c.arch));
  o.t_refine = since(t);

  // Does the network pay for its bits? Its level-0 gain over the segment's
  // linear upscaler against what its side bits would buy the video at
  // kDbPerDoubling (the --scale auto trials' slope). When it does not, the
  // linear upscaler ships and x264 runs again with the bits.
  if (target_bits > 0 && p.model_must_pay && c.arch.scale >= 2) {
    t = Clock::now();
    const double sec = seg.frames() / fps;
    const int sample = std::clamp(seg.frames() / 8, 4, 16);
    DYDCA_ASSIGN_OR_RETURN(auto lin,
                           linear_alternative(*recon, routing, seg.hr, lr, p, frames, sample));
    DYDCA_ASSIGN_OR_RETURN(auto rb, serialize_routing(routing));
    const double model_side = c.mode.model_kbps_hint >= 0
                                  ? c.mode.model_kbps_hint * 1000 / 8 * sec
                                  : double(o.rep.model_bytes);
    const double freed_kbps =
        (model_side + double(rb.size()) - double(lin.blob.size() + size_t(lin.routing_bytes))) *
        8 / 1000 / sec;
    const double video_kbps_now = double(o.rep.video_bytes) * 8 / 1000 / sec;
    DYDCA_ASSIGN_OR_RETURN(double sr_db,
                           sampled_psnr_y(frames, *planned, seg.hr, lr, routing, sample));
    const double lin_db = lin.psnr_y;
    const double buys_db =
        freed_kbps > 0 ? kDbPerDoubling * std::log2((video_kbps_now + freed_kbps) / video_kbps_now)
                       : 0;
    char line[256];
    std::snprintf(line, sizeof line,
                  "%s: the network adds %+.2f dB over the linear upscaler; its %.1f kb/s would "
                  "buy the video %+.2f dB: %s",
                  tag.c_str(), sr_db - lin_db, freed_kbps, buys_db,
                  sr_db - lin_db >= buys_db ? "the network ships" : "the linear upscaler ships");
    log_info(line);
    if (sr_db - lin_db < buys_db) {
      const Model trained = *recon;  // what the fit is made like; ship_linear replaces *recon
      return ship_linear(c, seg, rt_trip, close_rate_gap, std::move(lin), trained, routing,
                         frames, sample, o, recon, t, t_seg, sprog);
    }
    o.t_refine += since(t);
  }
  std::vector<Frame>().swap(seg.lr);

  return finish_segment(c, seg, lr, rt_trip.video, routing, blob, *recon, *planned, frames,
                        p.precision != "fp32" ? &model : nullptr, std::move(o), t_seg, sprog);
}

// The SPS and PPS of the extradata as NAL units in the packets' own form
// (Annex B as is; from an avcC record: length_size-byte big-endian lengths), to put in band before
// a segment's IDR when its parameters differ from the file's avcC (x264's PPS
// carries the rate control's initial QP, which differs between segments in
// bitrate mode). In-band parameter sets override the avcC's from that access
// unit on: decoders and players handle them (tested with ffprobe and our
// decoder), and each segment decodes exactly as its own stream did.
Expected<std::vector<uint8_t>> parameter_sets_in_band(const std::vector<uint8_t>& avcc,
                                                      int length_size) {
  // libavcodec's libx264 gives Annex B extradata and packets (start codes;
  // the Matroska muxer converts both): the parameter sets go in as they are.
  const bool annex_b = avcc.size() >= 4 && avcc[0] == 0 && avcc[1] == 0 &&
                       (avcc[2] == 1 || (avcc[2] == 0 && avcc[3] == 1));
  if (annex_b) return avcc;
  std::vector<uint8_t> out;
  size_t pos = 5;
  auto bad = [] { return Status::error("x264 gave a malformed avcC record"); };
  if (avcc.size() < 7 || avcc[0] != 1) return bad();
  for (int kind = 0; kind < 2; ++kind) {
    if (pos >= avcc.size()) return bad();
    const int count = kind == 0 ? (avcc[pos] & 0x1f) : avcc[pos];
    ++pos;
    for (int i = 0; i < count; ++i) {
      if (pos + 2 > avcc.size()) return bad();
      const size_t n = size_t(avcc[pos]) << 8 | avcc[pos + 1];
      pos += 2;
      if (pos + n > avcc.size()) return bad();
      for (int b = length_size - 1; b >= 0; --b) out.push_back(uint8_t(n >> (8 * b)));
      out.insert(out.end(), avcc.begin() + ptrdiff_t(pos), avcc.begin() + ptrdiff_t(pos + n));
      pos += n;
    }
  }
  return out;
}

// The output from the work folder: the segment table, then every segment's
// packets with their timestamps moved to the segment's place.
Status mux_output(const EncodeContext& c, const std::vector<SegmentOutcome>& segs,
                  EncodeReport& r) {
  const EncodeParams& p = c.p;
  const WorkDir& w = *c.work;
  std::vector<SegmentRecord> records;
  for (const SegmentOutcome& o : segs) {
    SegmentRecord rec;
    rec.first_frame = o.rep.first_frame;
    rec.frames = o.rep.frames;
    rec.model_is_delta = o.rep.model_is_delta;
    DYDCA_ASSIGN_OR_RETURN(auto m, read_file(w.file(o.rep.index, "model"), kMaxAttachmentBytes));
    DYDCA_ASSIGN_OR_RETURN(auto rt, read_file(w.file(o.rep.index, "routing"), kMaxAttachmentBytes));
    rec.model = std::move(m);
    rec.routing = std::move(rt);
    records.push_back(std::move(rec));
  }
  DYDCA_ASSIGN_OR_RETURN(auto first, read_packets_file(w.file(0, "lr")));
  EncodedVideo params = first;
  params.packets.clear();
  DydcaV2WriteParams wp;
  wp.hr_width = c.hr_width;
  wp.hr_height = c.hr_height;
  wp.copy_audio_from = p.input;
  DYDCA_ASSIGN_OR_RETURN(auto writer, DydcaFileWriter::open(p.output, params, records, wp));
  records.clear();
  std::vector<uint8_t> active_sets = params.extradata;
  for (size_t k = 0; k < segs.size(); ++k) {
    auto v = k == 0 ? std::move(first) : read_packets_file(w.file(int(k), "lr"));
    if (!v) {
      writer.abort();
      return v.status();
    }
    if (v->width != params.width || v->height != params.height || v->packets.empty() ||
        !v->packets[0].keyframe) {
      writer.abort();
      return Status::error("segment " + std::to_string(k) + " does not fit segment 0's stream");
    }
    // In-band sets stay in force until the next ones: compare with the sets
    // the decoder holds at this point, not with the avcC's (a segment like
    // segment 0 after one that differs needs its sets back in band).
    if (v->extradata != active_sets) {
      active_sets = v->extradata;
      const int length_size = params.extradata.size() > 4 ? (params.extradata[4] & 3) + 1 : 4;
      auto sets = parameter_sets_in_band(v->extradata, length_size);
      if (!sets) {
        writer.abort();
        return sets.status();
      }
      auto& first_packet = v->packets[0].data;
      first_packet.insert(first_packet.begin(), sets->begin(), sets->end());
      r.video_bytes += int64_t(sets->size());
    }
    const int64_t off = segs[k].rep.first_frame;  // time base = 1 / frame rate
    for (EncodedPacket& pk : v->packets) {
      pk.pts += off;
      pk.dts += off;
      if (Status s = writer.write_packet(pk); !s) {
        writer.abort();
        return s;
      }
    }
    if (!c.prog({"write", int64_t(k + 1), int64_t(segs.size())})) {
      writer.abort();
      return Status::error("interrupted");
    }
  }
  DYDCA_TRY(writer.finish());
  // Read back as a client would (headers, segment table, every packet counted).
  auto check = DydcaReader::open(p.output);
  if (!check) return check.status().with_context("reading back " + p.output);
  EncodedPacket pk;
  int64_t n = 0;
  while (true) {
    auto got = check->read_packet(pk);
    if (!got) return got.status().with_context("reading back " + p.output);
    if (!*got) break;
    ++n;
  }
  if (n != r.frames)
    return Status::error("reading back " + p.output + ": " + std::to_string(n) + " of " +
                         std::to_string(r.frames) + " frames");
  r.audio_bytes = check->audio_bytes_read();
  return Status::ok();
}

void add_outcome(EncodeReport& r, const SegmentOutcome& o, SegmentQuality& total,
                 std::vector<double>& macs_sum) {
  r.int8_runtime = r.segments.empty() ? o.rep.int8_runtime : r.int8_runtime && o.rep.int8_runtime;
  r.segments.push_back(o.rep);
  r.video_bytes += o.rep.video_bytes;
  r.model_bytes += o.rep.model_bytes;
  r.routing_bytes += o.rep.routing_bytes;
  r.train_steps += o.rep.train_steps;
  r.t_x264 += o.t_x264;
  r.t_chunking += o.t_chunking;
  r.t_train += o.t_train;
  r.t_refine += o.t_refine;
  r.t_eval += o.t_eval;
  r.t_write += o.t_write;
  r.t_allreduce += o.t_allreduce;
  if (r.segments.size() == 1) {
    r.chunk_tiles = o.chunk_tiles;
    r.chunk_path = o.chunk_path;
    r.holdout_psnr_before = o.holdout_before;
  }
  r.holdout_psnr_after = o.holdout_after;
  total.bicubic.merge(o.quality.bicubic);
  total.lanczos.merge(o.quality.lanczos);
  total.quant_fp32.merge(o.quality.quant_fp32);
  total.quant_shipped.merge(o.quality.quant_shipped);
  if (total.levels.size() < o.quality.levels.size()) {
    total.levels.resize(o.quality.levels.size());
    macs_sum.resize(o.quality.levels.size());
  }
  for (size_t l = 0; l < o.quality.levels.size(); ++l) {
    total.levels[l].merge(o.quality.levels[l]);
    if (l < o.level_macs.size()) macs_sum[l] += o.level_macs[l] * o.rep.frames;
  }
}

// The report's fields that come from the parameters alone.
EncodeReport report_for(const EncodeParams& p) {
  EncodeReport r;
  r.input = p.input;
  r.output = p.output;
  r.scale = p.scale;
  r.precision = p.precision;
  r.downscale = resolved_downscale(p.downscale);
  r.baseline = p.baseline;
  r.dist_world_size = p.dist.world_size;
  return r;
}

Expected<EncodeReport> encode_segmented(const EncodeParams& p, const EncodeMode& mode,
                                        const ProgressFn& prog, Clock::time_point t_start) {
  EncodeReport r = report_for(p);
  r.plain_x264 = mode.plain;

  DYDCA_ASSIGN_OR_RETURN(auto reader, VideoReader::open(p.input, p.threads));
  EncodeContext c{p, mode, prog,
                  mode.plain    ? identity_model().arch
                  : mode.linear ? linear_arch(p.scale)
                                : arch_for(p, p.scale),
                  reader.info()};
  DYDCA_ASSIGN_OR_RETURN(c.pool, WorkerPool::create(p.threads));
  const int s = p.scale;
  const VideoInfo& info = c.info;
  if (info.width < 16 * s || info.height < 16 * s)
    return Status::error(p.input + ": " + std::to_string(info.width) + "x" +
                         std::to_string(info.height) + " is too small for scale " +
                         std::to_string(s) + " (needs at least " + std::to_string(16 * s) +
                         " pixels each way)");
  if (!info.frame_rate.valid()) return Status::error(p.input + ": unknown frame rate");
  r.arch = c.arch;
  c.hr_width = info.width;
  c.hr_height = info.height;
  const double fps = info.frame_rate.to_double();
  c.est_duration_s = info.frame_count > 0 ? info.frame_count / fps : info.duration_s;
  if (p.max_frames > 0 && (c.est_duration_s <= 0 || p.max_frames / fps < c.est_duration_s))
    c.est_duration_s = p.max_frames / fps;

  // The work folder: finished segments survive an interruption.
  const std::string dir = mode.work_dir.empty() ? work_dir_path(p) : mode.work_dir;
  // A data-parallel worker writes nothing: it only looks for rank 0's
  // finished segments (the folder is shared, or absent on its machine).
  const bool data_worker = p.dist.rank > 0 && p.dist_mode == "data";
  DYDCA_ASSIGN_OR_RETURN(auto work, WorkDir::open(dir, manifest_of(p, mode, info, c.arch), p.resume,
                                                  p.dist.world_size > 1, !data_worker));
  c.work = &work;
  c.segment_parallel = p.dist.world_size > 1 && p.dist_mode == "segments";
  if (p.dist.world_size > 1 && !c.segment_parallel) {
    DYDCA_ASSIGN_OR_RETURN(auto session, DistSession::connect(p.dist));
    c.session = std::move(session);
  }

  SegmentSourceParams sp;
  sp.scale = s;
  sp.filter = *downscale_filter(p.downscale);  // checked by check_params
  sp.frame_limit = p.max_frames;
  // A scene cut starts a new segment only kMinSegmentSeconds after the last
  // one: a segment costs an IDR and a model update, and x264 still puts an
  // IDR at every cut inside a segment (its scenecut) while the chunking
  // handles the cut's two scenes.
  sp.scene.min_length =
      std::max(sp.scene.min_length, int(std::lround(kMinSegmentSeconds * fps)));
  const int64_t by_memory =
      (p.segment_memory_mb << 20) / SegmentSource::frame_bytes(info.width, info.height, s);
  sp.max_frames = int(std::clamp<int64_t>(
      std::min<int64_t>(std::llround(p.segment_seconds * fps), by_memory), 1, 1 << 20));
  SegmentSource source(reader, sp);
  if (c.est_duration_s > 0)
    c.est_segments = int(std::ceil(c.est_duration_s * fps / sp.max_frames - 0.01));

  // Segments are encoded (or skipped: done earlier, or another rank's) in
  // input order; the report is read back from the folder afterwards.
  std::optional<Model> prev;  // the client's weights after this rank's previous segment
  std::vector<bool> resumed;
  int segments = 0;
  std::optional<Heartbeat> heartbeat;
  if (c.segment_parallel) heartbeat.emplace(work, p.dist.rank);
  // --bitrate is the total: each segment's x264 gets what the model and the
  // routing leave (operating_point.h). Data-parallel ranks must all give
  // x264 the same target, and only rank 0 ships the model: they charge the
  // predicted model bytes instead of the shipped ones.
  std::optional<TotalRate> rate;
  const bool data_parallel = p.dist.world_size > 1 && !c.segment_parallel;
  if (p.bitrate_kbps > 0) {
    const int64_t full = mode.plain    ? kPlainSideBytes
                         : mode.linear ? linear_side_bytes(c.arch.scale)
                                       : predict_model_bytes(c.arch, *parse_precision(p.precision));
    rate.emplace(p.bitrate_kbps, full, mode.linear ? -1 : mode.model_kbps_hint);
    // Their model + routing: kPlainSideBytes, linear_side_bytes.
    if (mode.plain || mode.linear) rate->set_routing_guess_kbps(0);
  }
  auto spent = [&](const SegmentFrames& seg, const SegmentReport& rep) {
    if (!rate) return;
    const double sec = seg.frames() / fps;
    if (data_parallel)
      rate->add(sec, rep.video_bytes, rate->predicted_model_bytes(),
                int64_t(0.01 * p.bitrate_kbps * 1000 / 8 * sec));
    else
      rate->add(sec, rep.video_bytes, rep.model_bytes, rep.routing_bytes);
  };
  while (true) {
    auto t = Clock::now();
    DYDCA_ASSIGN_OR_RETURN(auto next, source.next(prog));
    r.t_read += since(t);
    if (!next) break;
    SegmentFrames& seg = *next;
    const int k = seg.index;
    segments = k + 1;
    resumed.push_back(false);
    if (k == 0) {
      r.lr_width = seg.lr[0].width;
      r.lr_height = seg.lr[0].height;
    }
    if (c.segment_parallel && c.owner(k) != p.dist.rank) continue;
    const bool writer = c.segment_parallel || p.dist.rank == 0;
    if (work.done(k)) {
      if (!writer) continue;  // a data-parallel worker skips what rank 0 has finished
      DYDCA_ASSIGN_OR_RETURN(auto o, outcome_from(work.file(k, "json")));
      if (o.rep.first_frame != seg.first_frame || o.rep.frames != seg.frames())
        return Status::error(dir + ": segment " + std::to_string(k) +
                             " does not match the input (delete the folder to start again)");
      DYDCA_ASSIGN_OR_RETURN(auto rb, read_file(work.file(k, "recon"), kMaxAttachmentBytes));
      auto m = parse_model(rb);
      if (!m) return m.status().with_context(work.file(k, "recon"));
      prev = std::move(*m);
      resumed.back() = true;
      spent(seg, o.rep);
      log_info("segment " + std::to_string(k) + ": done in an earlier run");
      continue;
    }
    Model recon;
    bool worker = false;
    // Updates are coded against the previous segment in file order: only
    // when this rank made it (segment-parallel ranks ship full models).
    const Model* delta_ref = c.segment_parallel ? nullptr : (prev ? &*prev : nullptr);
    int video_kbps = 0;
    if (rate) {
      DYDCA_ASSIGN_OR_RETURN(auto v, rate->video_kbps(seg.frames() / fps));
      video_kbps = v;
    }
    // x264 runs again after training when the model and routing make the
    // segment stray from its share (trials too, so that every trial is
    // compared at the target rate); not with data-parallel ranks (all must
    // train on one LR).
    const double target_bits =
        rate && !data_parallel ? rate->target_bits(seg.frames() / fps) : 0;
    DYDCA_ASSIGN_OR_RETURN(auto o, encode_segment(c, seg, prev ? &*prev : nullptr, delta_ref,
                                                  &recon, &worker, video_kbps, target_bits));
    spent(seg, o.rep);
    r.train_steps += o.rep.train_steps;
    r.t_train += o.t_train;
    if (worker) continue;
    prev = std::move(recon);
    log_info("segment " + std::to_string(k) + ": frames " + std::to_string(seg.first_frame) +
             ".." + std::to_string(seg.first_frame + seg.frames() - 1) + " done");
  }
  if (source.frames_read() == 0) return Status::error(p.input + ": no video frames");
  r.frames = int(source.frames_read());
  r.fps = fps;
  r.duration_s = r.frames / fps;
  r.hr_width = c.hr_width;
  r.hr_height = c.hr_height;
  if (p.dist.rank > 0) {
    r.worker_only = true;
    r.t_total = since(t_start);
    r.peak_rss_mb = peak_rss_mb();
    return r;
  }

  // Every segment's report, in order (other ranks' as they finish).
  std::vector<SegmentOutcome> outcomes;
  SegmentQuality total;
  std::vector<double> macs_sum;
  r.train_steps = 0;
  r.t_train = 0;
  for (int k = 0; k < segments; ++k) {
    if (c.owner(k) != 0) DYDCA_TRY(wait_for_segment(work, k, c.owner(k), p.dist.timeout_s, p.stop));
    DYDCA_ASSIGN_OR_RETURN(auto o, outcome_from(work.file(k, "json")));
    o.rep.resumed = resumed[size_t(k)];
    r.resumed_segments += o.rep.resumed;
    add_outcome(r, o, total, macs_sum);
    outcomes.push_back(std::move(o));
  }
  auto t = Clock::now();
  DYDCA_TRY(mux_output(c, outcomes, r));
  r.t_write += since(t);
  heartbeat.reset();
  work.remove();

  r.bicubic_psnr_y = total.bicubic.psnr_y();
  r.bicubic_psnr_yuv = total.bicubic.psnr_yuv();
  r.bicubic_ssim_y = total.bicubic.ssim();
  r.lanczos_psnr_y = total.lanczos.psnr_y();
  for (size_t l = 0; l < total.levels.size(); ++l) {
    LevelQuality lq;
    lq.level = int(l);
    lq.psnr_y = total.levels[l].psnr_y();
    lq.psnr_yuv = total.levels[l].psnr_yuv();
    lq.ssim_y = total.levels[l].ssim();
    lq.frames = int(total.levels[l].frames);
    lq.macs_per_lr_pixel = macs_sum[l] / std::max(1, r.frames);
    r.levels.push_back(lq);
  }
  if (total.quant_fp32.frames) {
    r.quant_fp32_psnr_y = total.quant_fp32.psnr_y();
    r.quant_shipped_psnr_y = total.quant_shipped.psnr_y();
  }
  fill_bitrates(r);
  r.t_total = since(t_start);
  r.peak_rss_mb = peak_rss_mb();
  return r;
}

// The title's duration in seconds as the encode sees it (--max-frames
// included; 0 = unknown).
double title_seconds(const EncodeParams& p, const VideoInfo& info) {
  const double fps = info.frame_rate.to_double();
  double title_s = info.frame_count > 0 && fps > 0 ? info.frame_count / fps : info.duration_s;
  if (p.max_frames > 0 && fps > 0 && (title_s <= 0 || p.max_frames / fps < title_s))
    title_s = p.max_frames / fps;
  return title_s;
}

// A fixed scale with --bitrate: its linear upscaler (x1: plain x264, the
// identity) when the network could not pay for itself at any gain
// (network_too_costly), instead of an error.
Expected<EncodeReport> encode_fixed(const EncodeParams& p, const ProgressFn& prog,
                                    Clock::time_point t_start) {
  EncodeMode mode;
  if (p.bitrate_kbps > 0 && p.model_must_pay) {
    DYDCA_ASSIGN_OR_RETURN(auto reader, VideoReader::open(p.input, p.threads));
    const double model_kbps = predict_network_kbps(p, p.scale, title_seconds(p, reader.info()));
    if (network_too_costly(model_kbps, p.bitrate_kbps)) {
      mode.linear = p.scale >= 2;
      mode.plain = p.scale == 1;
      char line[200];
      std::snprintf(line, sizeof line,
                    "x%d at %d kb/s: the network alone would take %.0f kb/s; %s ships (no "
                    "training)",
                    p.scale, p.bitrate_kbps, model_kbps,
                    mode.plain ? "plain x264 at the full size" : "the linear upscaler");
      log_info(line);
    }
  }
  return encode_segmented(p, mode, prog, t_start);
}

// --scale auto: trials on a sample choose the scale (or plain x264), then
// the title is encoded at it, at the total rate the trials used.
Expected<EncodeReport> encode_auto(const EncodeParams& p, const ProgressFn& prog,
                                   Clock::time_point t_start) {
  DYDCA_ASSIGN_OR_RETURN(auto reader, VideoReader::open(p.input, p.threads));
  const VideoInfo info = reader.info();
  const double title_s = title_seconds(p, info);
  TrialRunner run = [&](const EncodeParams& q, const EncodeMode& m) {
    return encode_segmented(q, m, prog, Clock::now());
  };
  const auto t = Clock::now();
  DYDCA_ASSIGN_OR_RETURN(auto op,
                         choose_operating_point(p, title_s, info.width, info.height, run, prog));
  const double t_trials = since(t);
  log_info("scale auto: " + op.decision);
  EncodeParams q = p;
  q.scale = op.scale;
  q.downscale = op.downscale;
  q.bitrate_kbps = op.total_kbps;
  EncodeMode mode;
  mode.plain = op.plain;
  mode.linear = op.linear;
  auto r = encode_segmented(q, mode, prog, t_start);
  if (!r) return r;
  r->scale_trials = op.trials;
  r->scale_decision = op.decision;
  r->t_trials = t_trials;
  return r;
}

// The baselines: the whole clip in memory as one segment (format-1 file).
Expected<EncodeReport> encode_baseline_clip(const EncodeParams& p, EncodeReport r,
                                            const ProgressFn& prog, Clock::time_point t_start) {
  auto t = Clock::now();
  DYDCA_ASSIGN_OR_RETURN(auto reader, VideoReader::open(p.input, p.threads));
  const VideoInfo info = reader.info();
  const int s = p.scale;
  if (info.width < 16 * s || info.height < 16 * s)
    return Status::error(p.input + ": too small for scale " + std::to_string(s));
  SegmentSourceParams sp;
  sp.scale = s;
  DYDCA_ASSIGN_OR_RETURN(sp.filter, downscale_filter(p.downscale));
  sp.frame_limit = p.max_frames;
  const int64_t fb = SegmentSource::frame_bytes(info.width, info.height, s);
  sp.max_frames = int(std::min<int64_t>((int64_t{6} << 30) / fb, 1 << 20));
  SegmentSource source(reader, sp);
  std::vector<Frame> hr, lr;
  while (true) {  // every segment of the clip, one after the other
    DYDCA_ASSIGN_OR_RETURN(auto next, source.next(prog));
    if (!next) break;
    if (int64_t(hr.size() + next->hr.size()) * fb > (int64_t{6} << 30))
      return Status::error("--baseline holds the clip in memory: " + p.input +
                           " is too long (use --max-frames)");
    for (auto& f : next->hr) hr.push_back(std::move(f));
    for (auto& f : next->lr) lr.push_back(std::move(f));
  }
  if (hr.empty()) return Status::error(p.input + ": no video frames");
  r.frames = int(hr.size());
  r.fps = info.frame_rate.to_double();
  r.duration_s = r.frames / r.fps;
  r.hr_width = info.width;
  r.hr_height = info.height;
  r.lr_width = lr[0].width;
  r.lr_height = lr[0].height;
  r.t_read = since(t);
  t = Clock::now();
  DYDCA_ASSIGN_OR_RETURN(auto trip,
                         x264_round_trip(lr, info.frame_rate, x264_config(p), p.threads, prog));
  std::vector<Frame>().swap(lr);
  r.t_x264 = since(t);
  t = Clock::now();
  const ModelArch arch = arch_for(p, s);
  r.arch = arch;
  DYDCA_ASSIGN_OR_RETURN(auto chunks, chunk_stage(hr, trip.decoded, p, arch, prog));
  r.t_chunking = since(t);
  return encode_baseline(p, r, hr, trip.decoded, trip.video, chunks, prog, t_start);
}

}  // namespace

Expected<EncodeReport> encode_video(const EncodeParams& p, const ProgressFn& progress) {
  DYDCA_TRY(check_params(p));
  const auto t_start = Clock::now();
  ProgressFn prog = [&](const Progress& pr) {
    if (p.stop && p.stop->load()) return false;
    return progress ? progress(pr) : true;
  };
  // An allocation failure (a frame of an absurd size, an address-space
  // limit) is an error like any other, not an abort.
  try {
    if (p.baseline != "none") {  // the baselines compare networks at one scale: x2 by default
      EncodeParams q = p;
      if (q.scale == 0) q.scale = 2;
      return encode_baseline_clip(q, report_for(q), prog, t_start);
    }
    Expected<EncodeReport> r = Status::error("no encode");
    if (p.scale == 0) {
      r = encode_auto(p, prog, t_start);
    } else {
      r = encode_fixed(p, prog, t_start);
    }
    if (!r && p.dist.world_size > 1 && p.dist_mode == "segments")
      report_rank_failure(work_dir_path(p), p.dist.rank, r.status().message());
    std::error_code ec;
    if (!r && p.stop && p.stop->load() && std::filesystem::is_directory(work_dir_path(p), ec))
      return Status::error("interrupted; the finished segments are kept in " + work_dir_path(p) +
                           ": run the same command with --resume to continue");
    return r;
  } catch (const std::bad_alloc&) {
    return Status::error("out of memory (peak " + std::to_string(int(peak_rss_mb())) +
                         " MB); lower --segment-memory or --segment-seconds");
  }
}

bool all_segments_linear(const EncodeReport& r) {
  return !r.segments.empty() && std::all_of(r.segments.begin(), r.segments.end(),
                                            [](const SegmentReport& g) { return g.linear_only; });
}

std::string report_text(const EncodeReport& r) {
  std::string o;
  char line[512];
  auto add = [&](const char* fmt, auto... args) {
    std::snprintf(line, sizeof line, fmt, args...);
    o += line;
  };
  add("%s -> %s\n", r.input.c_str(), r.output.c_str());
  add("  %d frames, %.3f fps, %.2f s; HR %dx%d, LR %dx%d (x%d, %s downscale)\n", r.frames, r.fps,
      r.duration_s, r.hr_width, r.hr_height, r.lr_width, r.lr_height, r.scale,
      r.downscale.c_str());
  if (r.plain_x264)
    add("  PLAIN x264 at the full size (a no-op model): nothing beat it at this rate\n");
  if (!r.scale_trials.empty()) {
    add("  scale auto: %s\n", r.scale_decision.c_str());
    for (const auto& t : r.scale_trials) {
      if (t.scale == 0)
        add("    trial x264 full size    %7.1f kb/s  PSNR-Y %6.2f                  %5.1f s\n",
            t.total_kbps, t.psnr_y, t.seconds);
      else
        add("    trial x%d %-6s %-7s %7.1f kb/s  PSNR-Y %6.2f (lanczos %6.2f) %5.1f s\n", t.scale,
            t.linear ? "linear" : "", t.downscale.c_str(), t.total_kbps, t.psnr_y,
            t.lanczos_psnr_y, t.seconds);
    }
  }
  if (r.baseline != "none")
    add("  BASELINE %s: %d single-path model(s), %zu routing ids\n", r.baseline.c_str(),
        r.chunk_path.empty() ? 0 : *std::max_element(r.chunk_path.begin(), r.chunk_path.end()) + 1,
        r.chunk_path.size());
  add("  model C%d E%d N%d, %zu paths, %s weights, %d training steps\n", r.arch.channels,
      r.arch.inner, r.arch.blocks, r.arch.paths.size(), r.precision.c_str(), r.train_steps);
  const double total = r.video_kbps + r.model_kbps + r.routing_kbps;
  add("  bitrate  video %.1f + model %.1f + routing %.2f = %.1f kb/s (audio %.1f not counted)\n",
      r.video_kbps, r.model_kbps, r.routing_kbps, total, r.audio_kbps);
  add("  bytes    video %lld, model %lld, routing %lld\n", (long long)r.video_bytes,
      (long long)r.model_bytes, (long long)r.routing_bytes);
  add("  chunks   ");
  for (size_t c = 0; c < r.chunk_tiles.size(); ++c)
    add("%s#%zu: %lld tiles -> path %d", c ? ", " : "", c, (long long)r.chunk_tiles[c],
        c < r.chunk_path.size() ? r.chunk_path[c] : -1);
  add("\n  quality (full frames, vs HR input)        PSNR-Y  PSNR-YUV  SSIM-Y   MACs/LR px\n");
  add("    bicubic(x264 LR)                        %6.2f  %8.2f  %.4f   %10d\n", r.bicubic_psnr_y,
      r.bicubic_psnr_yuv, r.bicubic_ssim_y, 0);
  add("    lanczos(x264 LR)                        %6.2f\n", r.lanczos_psnr_y);
  for (const auto& l : r.levels)
    add("    dydca level %-2d                         %6.2f  %8.2f  %.4f   %10.0f%s\n", l.level,
        l.psnr_y, l.psnr_yuv, l.ssim_y, l.macs_per_lr_pixel,
 l.frames < r.frames ? "  (sampled frames)" : "");
  if (r.quant_fp32_psnr_y > 0)
    add("  weights  level 0 PSNR-Y fp32 %.3f -> %s weights%s %.3f dB (%+.3f dB, sampled frames)\n",
        r.quant_fp32_psnr_y, r.precision.c_str(), r.int8_runtime ? ", int8 runtime" : "",
        r.quant_shipped_psnr_y,
        r.quant_shipped_psnr_y - r.quant_fp32_psnr_y);
  add("  training held-out tiles %.2f -> %.2f dB\n", r.holdout_psnr_before, r.holdout_psnr_after);
  if (!r.segments.empty()) {
    int deltas = 0;
    int64_t full = 0;
    for (const auto& sg : r.segments) deltas += sg.model_is_delta, full += sg.full_model_bytes;
    add("  segments %zu (%d resumed); model updates %lld bytes (%d as differences), full models "
        "would be %lld bytes\n",
        r.segments.size(), r.resumed_segments, (long long)r.model_bytes, deltas, (long long)full);
    if (r.segments.size() > 1)
      for (const auto& sg : r.segments)
        add("    #%-4d frames %6d..%-6d %s %6lld B (full %6lld B), level 0 %.2f dB (bicubic "
            "%.2f), %d steps, %.1f s%s\n",
            sg.index, sg.first_frame, sg.first_frame + sg.frames - 1,
            sg.model_is_delta ? "delta" : "full ", (long long)sg.model_bytes,
            (long long)sg.full_model_bytes, sg.psnr_y, sg.bicubic_psnr_y, sg.train_steps,
            sg.seconds, sg.resumed ? " (resumed)" : "");
  }
  if (r.peak_rss_mb > 0) add("  memory   peak RSS %.0f MB\n", r.peak_rss_mb);
  if (r.t_trials > 0) add("  trials   %.1f s (included below)\n", r.t_trials);
  add("  time     read %.1f, x264 %.1f, chunking %.1f, training %.1f, refine %.1f, evaluate %.1f, "
      "write %.1f = %.1f s (%.1fx the clip)\n",
      r.t_read, r.t_x264, r.t_chunking, r.t_train, r.t_refine, r.t_eval, r.t_write, r.t_total,
      r.t_total / std::max(r.duration_s, 1e-9));
  return o;
}

std::string report_json(const EncodeReport& r) {
  nlohmann::json j;
  j["input"] = r.input;
  j["output"] = r.output;
  j["frames"] = r.frames;
  j["fps"] = r.fps;
  j["duration_s"] = r.duration_s;
  j["hr"] = {r.hr_width, r.hr_height};
  j["lr"] = {r.lr_width, r.lr_height};
  j["scale"] = r.scale;
  j["downscale"] = r.downscale;
  j["baseline"] = r.baseline;
  nlohmann::json paths = nlohmann::json::array();
  for (size_t i = 0; i < r.arch.paths.size(); ++i)
    paths.push_back({{"depth", r.arch.paths[i].depth}, {"width", r.arch.paths[i].width},
                     {"macs_per_lr_pixel", r.arch.macs_per_lr_pixel(int(i))}});
  j["model"] = {{"channels", r.arch.channels}, {"inner", r.arch.inner}, {"blocks", r.arch.blocks},
                {"paths", paths}, {"precision", r.precision}, {"train_steps", r.train_steps},
                {"holdout_psnr_before", r.holdout_psnr_before},
                {"holdout_psnr_after", r.holdout_psnr_after},
                {"holdout_history", r.holdout_history}};
  if (r.quant_fp32_psnr_y > 0)
    j["quantization"] = {{"int8_runtime", r.int8_runtime},
                         {"level0_psnr_y_fp32", r.quant_fp32_psnr_y},
                         {"level0_psnr_y_shipped", r.quant_shipped_psnr_y},
                         {"delta_db", r.quant_shipped_psnr_y - r.quant_fp32_psnr_y},
                         {"frames", "sampled (those of the cheaper levels)"}};
  j["bitrate_kbps"] = {{"video", r.video_kbps}, {"model", r.model_kbps},
                       {"routing", r.routing_kbps}, {"audio", r.audio_kbps},
                       {"total_without_audio", r.video_kbps + r.model_kbps + r.routing_kbps}};
  j["bytes"] = {{"video", r.video_bytes}, {"model", r.model_bytes}, {"routing", r.routing_bytes},
                {"audio", r.audio_bytes}};
  j["chunks"] = {{"tiles", r.chunk_tiles}, {"path_level0", r.chunk_path}};
  j["bicubic"] = {{"psnr_y", r.bicubic_psnr_y}, {"psnr_yuv", r.bicubic_psnr_yuv},
                  {"ssim_y", r.bicubic_ssim_y}};
  j["lanczos"] = {{"psnr_y", r.lanczos_psnr_y}};
  j["plain_x264"] = r.plain_x264;
  j["scale_auto"] = {{"trials", r.scale_trials}, {"decision", r.scale_decision}};
  nlohmann::json lv = nlohmann::json::array();
  for (const auto& l : r.levels)
    lv.push_back({{"level", l.level}, {"psnr_y", l.psnr_y}, {"psnr_yuv", l.psnr_yuv},
                  {"ssim_y", l.ssim_y}, {"macs_per_lr_pixel", l.macs_per_lr_pixel},
                  {"frames_measured", l.frames}});
  j["levels"] = lv;
  j["seconds"] = {{"trials", r.t_trials}, {"read", r.t_read}, {"x264", r.t_x264}, {"chunking", r.t_chunking},
                  {"train", r.t_train}, {"allreduce", r.t_allreduce}, {"refine", r.t_refine}, {"evaluate", r.t_eval},
                  {"write", r.t_write}, {"total", r.t_total}};
  j["segments"] = r.segments;  // adds int8_runtime to the keys it had
  j["resumed_segments"] = r.resumed_segments;
  j["peak_rss_mb"] = r.peak_rss_mb;
  j["encode_time_ratio"] = r.t_total / std::max(r.duration_s, 1e-9);
  return j.dump(2);
}

}  // namespace dydca
