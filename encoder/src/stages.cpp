#include "stages.h"

#include <algorithm>
#include <cmath>

namespace dydca::detail {

Expected<WeightFormat> parse_precision(const std::string& p) {
  if (p == "fp32") return WeightFormat::kFp32;
  if (p == "fp16") return WeightFormat::kFp16;
  if (p == "int8") return WeightFormat::kInt8;
  return Status::error("unknown model precision '" + p + "' (fp32, fp16, int8)");
}

std::string resolved_downscale(const std::string& name) {
  return name == "auto" ? "lanczos" : name;
}

Expected<ScaleFilter> downscale_filter(const std::string& name) {
  if (resolved_downscale(name) == "lanczos") return ScaleFilter::kLanczos;
  if (name == "area") return ScaleFilter::kArea;
  if (name == "bicubic") return ScaleFilter::kBicubic;
  return Status::error("unknown --downscale '" + name + "' (auto, lanczos, area, bicubic)");
}

X264Config x264_config(const EncodeParams& p) {
  X264Config xc;
  xc.preset = p.preset;
  xc.crf = p.crf;
  xc.gop = p.gop;
  xc.threads = p.threads;
  if (p.bitrate_kbps > 0) {
    xc.bitrate_kbps = p.bitrate_kbps;
    xc.two_pass = true;
  }
  return xc;
}

RuntimeOptions runtime_options(const EncodeParams& p, int lr_width, int lr_height) {
  RuntimeOptions o;
  o.tile_size = p.tile_size;
  o.threads = p.threads;
  o.max_lr_width = lr_width;
  o.max_lr_height = lr_height;
  return o;
}

Expected<LrRoundTrip> x264_round_trip(const std::vector<Frame>& lr, Rational frame_rate,
                                      const X264Config& config, int threads,
                                      const ProgressFn& progress) {
  LrRoundTrip out;
  DYDCA_ASSIGN_OR_RETURN(auto video, encode_h264(lr, frame_rate, config, progress));
  DYDCA_ASSIGN_OR_RETURN(auto dec, decode_h264(video, threads));
  if (dec.size() != lr.size())
    return Status::error("x264 round trip lost frames (" + std::to_string(dec.size()) + " of " +
                         std::to_string(lr.size()) + ")");
  out.video = std::move(video);
  out.decoded = std::move(dec);
  return out;
}

Expected<ChunkingResult> chunk_stage(const std::vector<Frame>& hr, const std::vector<Frame>& lr,
                                     const EncodeParams& p, const ModelArch& arch,
                                     const ProgressFn& progress) {
  ChunkingParams cp;
  cp.scale = arch.scale;
  cp.tile_size = p.tile_size;
  cp.cluster.chunks = p.chunks;
  cp.cluster.seed = p.seed;
  DYDCA_ASSIGN_OR_RETURN(auto chunks, chunk_video(hr, lr, cp, progress));
  // One QoS level per path in every segment: the client sees one set of
  // levels for the whole file (a level may repeat the one above it).
  DYDCA_TRY(fill_path_tables(chunks.routing, arch, int(arch.paths.size())));
  return chunks;
}

Expected<TrainConfig> make_train_config(const EncodeParams& p, const ModelArch& arch,
                                        double duration_s, int steps) {
  DYDCA_ASSIGN_OR_RETURN(auto tc, TrainConfig::preset(p.quality, arch, duration_s));
  TrainConfig cfg = tc;
  cfg.seed = p.seed;
  cfg.threads = p.threads;
  cfg.stop = p.stop;
  cfg.bf16 = p.bf16;
  cfg.channels_last = p.channels_last;
  cfg.dist = p.dist;
  cfg.all_levels = p.train_all_levels;
  cfg.train_skip = p.train_skip;
  cfg.fit_skip = p.global_path == "fit";
  cfg.progressive = p.train_progressive;
  cfg.max_norm = p.train_max_norm;
  if (p.train_lr > 0) cfg.lr = p.train_lr;
  if (p.train_batch > 0) cfg.batch = p.train_batch;
  if (p.train_patch > 0) cfg.patch = p.train_patch;
  if (p.train_qos_weight >= 0) cfg.qos_weight = cfg.distill_weight = p.train_qos_weight;
  // The int8 runtime runs what QAT trained (model.h, ActScales).
  cfg.qat = p.int8_activations && p.precision == "int8";
  if (steps > 0) {
    cfg.steps = steps;
    cfg.time_budget_s = 0;
  }
  return cfg;
}

Status refine_stage(SrSession& session, const SrModel& model, const std::vector<Frame>& hr,
                    const std::vector<Frame>& lr, RoutingMap& routing, const ModelArch& arch,
                    double tolerance_db, const ProgressFn& progress) {
  const int P = int(arch.paths.size());
  const int frames = int(hr.size());
  ChunkPathError err(routing, arch.scale, P);
  std::vector<uint8_t> out;
  const int n_eval = std::min<int>(16, frames);
  for (int i = 0; i < n_eval; ++i) {
    const int f = int((int64_t(i) * frames) / n_eval);
    const Frame& L = lr[size_t(f)];
    const Frame& H = hr[size_t(f)];
    out.resize(size_t(H.width) * H.height);
    for (int path = 0; path < P; ++path) {
      DYDCA_TRY(session.upscale_luma(model, L.y.data(), L.width, L.height, L.width, out.data(),
                                     H.width, path));
      err.add(f, path, H, out.data());
    }
    if (progress && !progress({"refine", i + 1, n_eval})) return Status::error("interrupted");
  }
  DYDCA_ASSIGN_OR_RETURN(auto level0, refine_paths(err.psnr(), arch, tolerance_db));
  DYDCA_ASSIGN_OR_RETURN(auto tables, qos_level_tables(level0, arch, int(arch.paths.size())));
  routing.chunk_path = std::move(tables);
  return Status::ok();
}

void QualitySum::add(const FrameQuality& q) {
  mse_y += q.mse_y;
  mse_u += q.mse_u;
  mse_v += q.mse_v;
  ssim_y += q.ssim_y;
  ++frames;
}

void QualitySum::merge(const QualitySum& o) {
  mse_y += o.mse_y;
  mse_u += o.mse_u;
  mse_v += o.mse_v;
  ssim_y += o.ssim_y;
  frames += o.frames;
}

double QualitySum::psnr_y() const {
  return frames ? psnr_from_mse(mse_y / double(frames)) : 0;
}

double QualitySum::psnr_yuv() const {
  if (!frames) return 0;
  const double n = double(frames);
  return (6 * psnr_y() + psnr_from_mse(mse_u / n) + psnr_from_mse(mse_v / n)) / 8;
}

Expected<SegmentQuality> evaluate_stage(FrameUpscaler& frames, const SrModel& model,
                                        const SrModel* model_fp32,
                                        const std::vector<Frame>& hr,
                                        const std::vector<Frame>& lr, const RoutingMap& routing,
                                        int hr_width, int hr_height, int sample_frames,
                                        const ProgressFn& progress) {
  SegmentQuality q;
  q.levels.resize(size_t(routing.levels()));
  const int n_frames = int(hr.size());
  const int stride = std::max(1, (n_frames + sample_frames - 1) / std::max(1, sample_frames));
  auto measure = [&](const Frame& ref, const Frame& up, QualitySum& into) -> Status {
    DYDCA_ASSIGN_OR_RETURN(auto fq, compare_frames(ref, crop(up, hr_width, hr_height)));
    into.add(fq);
    return Status::ok();
  };
  Frame up;
  for (int f = 0; f < n_frames; ++f) {
    const Frame& L = lr[size_t(f)];
    const Frame& H = hr[size_t(f)];
    DYDCA_TRY(frames.chroma(L, up));  // all planes bicubic: the client's before its SR
    const Frame ref = crop(H, hr_width, hr_height);
    DYDCA_TRY(measure(ref, up, q.bicubic));
    if (L.width == H.width) {
      DYDCA_TRY(measure(ref, up, q.lanczos));  // x1: both are the stream itself
    } else {
      DYDCA_ASSIGN_OR_RETURN(auto lz, resize(L, H.width, H.height, ScaleFilter::kLanczos));
      DYDCA_TRY(measure(ref, lz, q.lanczos));
    }
    for (int l = 0; l < routing.levels(); ++l) {
      if (l > 0 && f % stride != 0) continue;
      DYDCA_TRY(frames.luma(model, L, up, &routing, f, l));
      DYDCA_TRY(measure(ref, up, q.levels[size_t(l)]));
      if (l == 0 && model_fp32 && f % stride == 0) {
        DYDCA_TRY(measure(ref, up, q.quant_shipped));
        DYDCA_TRY(frames.luma(*model_fp32, L, up, &routing, f, 0));
        DYDCA_TRY(measure(ref, up, q.quant_fp32));
      }
    }
    if (progress && !progress({"evaluate", f + 1, n_frames})) return Status::error("interrupted");
  }
  return q;
}

}  // namespace dydca::detail
