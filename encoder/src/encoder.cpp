#include "dydca/encoder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>

#include "dydca/chunking.h"
#include "dydca/container.h"
#include "dydca/media.h"
#include "dydca/metrics.h"
#include "dydca/runtime.h"
#include "dydca/training.h"

namespace dydca {

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
  return a;
}

EncodeParams::EncodeParams() : arch(default_arch(2)) {}

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

Expected<WeightFormat> parse_precision(const std::string& p) {
  if (p == "fp32") return WeightFormat::kFp32;
  if (p == "fp16") return WeightFormat::kFp16;
  if (p == "int8") return WeightFormat::kInt8;
  return Status::error("unknown model precision '" + p + "' (fp32, fp16, int8)");
}

Status check_params(const EncodeParams& p) {
  if (p.input.empty()) return Status::error("no input file");
  if (p.output.empty()) return Status::error("no output file (-o OUT.mkv)");
  if (p.dist.world_size > 1 && p.baseline != "none")
    return Status::error("--baseline trains several models; it cannot be distributed (--world-size 1)");
  if (p.dist.world_size < 1 || p.dist.rank < 0 || p.dist.rank >= p.dist.world_size)
    return Status::error("--rank " + std::to_string(p.dist.rank) + " does not fit --world-size " +
                         std::to_string(p.dist.world_size));
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
  if (p.scale < 2 || p.scale > 4) return Status::error("--scale must be 2, 3 or 4");
  if (p.bitrate_kbps < 0 || p.crf < 0 || p.crf > 51) return Status::error("bad --crf or --bitrate");
  if (p.chunks < 1 || p.chunks > 16) return Status::error("--chunks must be 1..16");
  if (p.tile_size < 8 || p.tile_size > 256) return Status::error("--tile must be 8..256");
  if (p.baseline != "none" && p.baseline != "static" && p.baseline != "per-chunk" &&
      p.baseline != "per-segment")
    return Status::error("unknown --baseline " + p.baseline);
  DYDCA_TRY(parse_precision(p.precision).status());
  return Status::ok();
}

constexpr int kLevelEvalFrames = 48;

// Trains one single-path model per routing "chunk" id listed in `ids` (all
// chunks when ids is {-1}), each on its own tiles, sharing the time budget.
Expected<std::vector<Model>> train_baseline_models(const std::vector<Frame>& hr,
                                                   const std::vector<Frame>& lr,
                                                   const RoutingMap& routing, TrainConfig cfg,
                                                   const std::vector<int>& ids,
                                                   const ProgressFn& prog, int* total_steps) {
  RoutingMap r = routing;  // every chunk on the model's only path
  r.chunk_path.assign(1, std::vector<uint8_t>(size_t(r.num_chunks), 0));
  const int n = int(ids.size());
  cfg.time_budget_s /= n;
  if (cfg.steps > 0) cfg.steps = std::max(1, cfg.steps / n);
  std::vector<Model> models;
  const std::string checkpoint = cfg.checkpoint;
  for (int id : ids) {
    cfg.only_chunk = id;
    if (!checkpoint.empty()) cfg.checkpoint = checkpoint + "." + std::to_string(id + 1);
    TrainReport tr;
    auto m = train_dynamic(hr, lr, r, cfg, &tr, prog);
    if (!m) return m.status();
    *total_steps += tr.steps;
    models.push_back(std::move(*m));
  }
  return models;
}

// The training preset for this clip with the user's overrides applied.
Expected<TrainConfig> make_train_config(const EncodeParams& p, const ModelArch& arch,
                                        double duration_s) {
  auto tc = TrainConfig::preset(p.quality, arch, duration_s);
  if (!tc) return tc.status();
  TrainConfig cfg = *tc;
  cfg.seed = p.seed;
  cfg.threads = p.threads;
  cfg.stop = p.stop;
  cfg.bf16 = p.bf16;
  cfg.channels_last = p.channels_last;
  cfg.checkpoint = p.checkpoint;
  cfg.dist = p.dist;
  cfg.all_levels = p.train_all_levels;
  cfg.train_skip = p.train_skip;
  cfg.progressive = p.train_progressive;
  cfg.max_norm = p.train_max_norm;
  if (p.train_steps > 0) {
    cfg.steps = p.train_steps;
    cfg.time_budget_s = 0;
  }
  return cfg;
}

void fill_bitrates(EncodeReport& r) {
  const double kb = 8.0 / 1000.0 / std::max(r.duration_s, 1e-9);
  r.video_kbps = r.video_bytes * kb;
  r.model_kbps = r.model_bytes * kb;
  r.routing_kbps = r.routing_bytes * kb;
  r.audio_kbps = r.audio_bytes * kb;
}

// The client runtime as the encoder uses it (sized for this clip's LR frames).
RuntimeOptions runtime_options(const EncodeParams& p, const EncodeReport& r) {
  RuntimeOptions o;
  o.tile_size = p.tile_size;
  o.threads = p.threads;
  o.max_lr_width = r.lr_width;
  o.max_lr_height = r.lr_height;
  return o;
}

// Writes the .mkv (LR video + input audio + model and routing blobs,
// atomically), reads it back as a client would, and fills the byte counts
// and bitrates of the report.
Status write_output(const EncodeParams& p, const EncodedVideo& video,
                    const std::vector<std::vector<uint8_t>>& model_blobs,
                    const RoutingMap& routing, const std::map<std::string, std::string>& tags,
                    EncodeReport& r) {
  auto routing_blob = serialize_routing(routing);
  if (!routing_blob) return routing_blob.status();
  DydcaWriteParams wp;
  wp.hr_width = r.hr_width;
  wp.hr_height = r.hr_height;
  wp.copy_audio_from = p.input;
  wp.extra_tags = tags;
  DYDCA_TRY(write_dydca_file_blobs(p.output, video, model_blobs, &*routing_blob, wp));
  auto check = read_dydca_file(p.output);
  if (!check) return check.status().with_context("reading back " + p.output);
  r.video_bytes = video.total_bytes();
  r.model_bytes = 0;
  for (const auto& b : model_blobs) r.model_bytes += int64_t(b.size());
  r.routing_bytes = int64_t(routing_blob->size());
  r.audio_bytes = check->audio_bytes;
  fill_bitrates(r);
  return Status::ok();
}

// The multi-model baselines, trained by the same code on the same LR video:
//   static      one single-path model of the full path's size for every tile;
//   per-chunk   one such model per content chunk (STDO style);
//   per-segment one such model per temporal segment (NAS / CaFM style).
// The routing blob maps each chunk (or segment) to its model index.
Expected<EncodeReport> encode_baseline(const EncodeParams& p, EncodeReport r,
                                       const std::vector<Frame>& hr, const std::vector<Frame>& lr,
                                       const EncodedVideo& video, const ChunkingResult& chunks,
                                       const ProgressFn& prog, Clock::time_point t_start) {
  auto t = Clock::now();
  ModelArch full = r.arch;
  full.paths = {{full.blocks, full.channels}};
  r.arch = full;
  RoutingMap br = chunks.routing;
  std::vector<int> ids;
  const int K = br.num_chunks;
  if (p.baseline == "static") {
    br.chunk_path = {std::vector<uint8_t>(size_t(K), 0)};
    ids = {-1};
  } else if (p.baseline == "per-chunk") {
    br.chunk_path = {std::vector<uint8_t>(size_t(K))};
    for (int c = 0; c < K; ++c) br.chunk_path[0][size_t(c)] = uint8_t(c), ids.push_back(c);
  } else {  // per-segment: every tile of a frame belongs to its segment
    const int S = int(chunks.segments.size());
    if (S > kMaxModelsPerFile)
      return Status::error("per-segment baseline: " + std::to_string(S) + " segments exceed " +
                           std::to_string(kMaxModelsPerFile) + " models per file");
    br.num_chunks = S;
    br.chunk_path = {std::vector<uint8_t>(size_t(S))};
    const size_t tiles = size_t(br.tiles_per_frame());
    for (int si = 0; si < S; ++si) {
      br.chunk_path[0][size_t(si)] = uint8_t(si);
      ids.push_back(si);
      for (int f = chunks.segments[size_t(si)].start; f < chunks.segments[size_t(si)].end; ++f)
        std::fill_n(br.chunk_ids.begin() + ptrdiff_t(size_t(f) * tiles), tiles, uint8_t(si));
    }
  }
  auto tc = make_train_config(p, full, r.duration_s);
  if (!tc) return tc.status();
  TrainConfig cfg = *tc;
  auto models = train_baseline_models(hr, lr, br, cfg, ids, prog, &r.train_steps);
  if (!models) return models.status();
  r.t_train = since(t);

  t = Clock::now();
  ModelBlobOptions mbo;
  mbo.weights = *parse_precision(p.precision);
  std::vector<std::vector<uint8_t>> blobs;
  std::vector<SrRuntime> rts;
  const RuntimeOptions ropt = runtime_options(p, r);
  for (const Model& m : *models) {
    auto blob = serialize_model(m, mbo);
    if (!blob) return blob.status();
    auto shipped = parse_model(*blob);
    if (!shipped) return shipped.status();
    auto rt = SrRuntime::create(*shipped, ropt);
    if (!rt) return rt.status();
    blobs.push_back(std::move(*blob));
    rts.push_back(std::move(*rt));
  }
  r.chunk_tiles = chunk_tile_counts(br);
  for (uint8_t v : br.chunk_path[0]) r.chunk_path.push_back(v);
  // Quality: each tile from its model (a model runs on the whole frame once
  // per frame that uses it, its tiles are kept).
  QualityAccumulator bic, acc;
  std::vector<uint8_t> tmp;
  const int s = r.scale, T = br.tile_size;
  for (int f = 0; f < r.frames; ++f) {
    const Frame& L = lr[size_t(f)];
    const Frame& H = hr[size_t(f)];
    auto up = resize(L, H.width, H.height, ScaleFilter::kBicubic);
    if (!up) return up.status();
    Frame ref = crop(H, r.hr_width, r.hr_height);
    DYDCA_TRY(bic.add(ref, crop(*up, r.hr_width, r.hr_height)));
    tmp.resize(H.y.size());
    for (size_t m = 0; m < rts.size(); ++m) {
      bool used = false;
      for (int ty = 0; ty < br.tiles_y() && !used; ++ty)
        for (int tx = 0; tx < br.tiles_x() && !used; ++tx)
          used = br.chunk_path[0][br.chunk(f, tx, ty)] == m;
      if (!used) continue;
      DYDCA_TRY(rts[m].upscale_luma(L.y.data(), L.width, L.height, L.width, tmp.data(), H.width, 0));
      for (int ty = 0; ty < br.tiles_y(); ++ty)
        for (int tx = 0; tx < br.tiles_x(); ++tx) {
          if (br.chunk_path[0][br.chunk(f, tx, ty)] != m) continue;
          int x0 = tx * T * s, y0 = ty * T * s;
          int x1 = std::min(H.width, x0 + T * s), y1 = std::min(H.height, y0 + T * s);
          for (int yy = y0; yy < y1; ++yy)
            std::copy(tmp.begin() + ptrdiff_t(size_t(yy) * H.width + x0),
                      tmp.begin() + ptrdiff_t(size_t(yy) * H.width + x1),
                      up->y.begin() + ptrdiff_t(size_t(yy) * H.width + x0));
        }
    }
    DYDCA_TRY(acc.add(ref, crop(*up, r.hr_width, r.hr_height)));
    if (!prog({"evaluate", f + 1, r.frames})) return Status::error("interrupted");
  }
  ClipQuality b = bic.result(), q = acc.result();
  r.bicubic_psnr_y = b.psnr_y;
  r.bicubic_psnr_yuv = b.psnr_yuv;
  r.bicubic_ssim_y = b.ssim_y;
  LevelQuality lq;
  lq.psnr_y = q.psnr_y;
  lq.psnr_yuv = q.psnr_yuv;
  lq.ssim_y = q.ssim_y;
  lq.frames = q.frames;
  lq.macs_per_lr_pixel = double(full.macs_per_lr_pixel(0));
  r.levels = {lq};
  r.t_eval = since(t);

  t = Clock::now();
  DYDCA_TRY(write_output(p, video, blobs, br, {{"DYDCA_BASELINE", p.baseline}}, r));
  r.t_write = since(t);
  r.t_total = since(t_start);
  return r;
}

}  // namespace

Expected<EncodeReport> encode_video(const EncodeParams& p, const ProgressFn& progress) {
  DYDCA_TRY(check_params(p));
  const auto t_start = Clock::now();
  EncodeReport r;
  r.input = p.input;
  r.output = p.output;
  r.scale = p.scale;
  r.precision = p.precision;
  r.baseline = p.baseline;
  auto interrupted = [&] { return p.stop && p.stop->load(); };
  ProgressFn prog = [&](const Progress& pr) {
    if (interrupted()) return false;
    return progress ? progress(pr) : true;
  };

  // 1. Input -> HR (padded) -> LR.
  auto t = Clock::now();
  VideoInfo info;
  ReadOptions ro;
  ro.max_frames = p.max_frames;
  ro.threads = p.threads;
  auto frames = read_all_frames(p.input, &info, ro, prog);
  if (!frames) return frames.status();
  const int s = p.scale;
  if (info.width < 16 * s || info.height < 16 * s)
    return Status::error(p.input + ": " + std::to_string(info.width) + "x" +
                         std::to_string(info.height) + " is too small for scale " +
                         std::to_string(s) + " (needs at least " + std::to_string(16 * s) +
                         " pixels each way)");
  r.frames = int(frames->size());
  r.fps = info.frame_rate.to_double();
  r.duration_s = r.frames / r.fps;
  r.hr_width = info.width;
  r.hr_height = info.height;
  std::vector<Frame> hr, lr;
  hr.reserve(frames->size());
  for (auto& f : *frames) {
    if (f.width != info.width || f.height != info.height) {
      auto fixed = resize(f, info.width, info.height, ScaleFilter::kBicubic);
      if (!fixed) return fixed.status();
      f = std::move(*fixed);
    }
    hr.push_back(pad_to_multiple(f, 2 * s));
    f = Frame();
    auto d = downscale(hr.back(), s, ScaleFilter::kArea);
    if (!d) return d.status();
    lr.push_back(std::move(*d));
  }
  frames->clear();
  r.lr_width = lr[0].width;
  r.lr_height = lr[0].height;
  r.t_read = since(t);

  // 2. x264 and decode back: training sees what the client will decode.
  t = Clock::now();
  X264Config xc;
  xc.preset = p.preset;
  xc.crf = p.crf;
  xc.gop = p.gop;
  xc.threads = p.threads;
  if (p.bitrate_kbps > 0) {
    xc.bitrate_kbps = p.bitrate_kbps;
    xc.two_pass = true;
  }
  auto video = encode_h264(lr, info.frame_rate, xc, prog);
  if (!video) return video.status();
  auto lr_dec = decode_h264(*video, p.threads);
  if (!lr_dec) return lr_dec.status();
  if (lr_dec->size() != lr.size())
    return Status::error("x264 round trip lost frames (" + std::to_string(lr_dec->size()) +
                         " of " + std::to_string(lr.size()) + ")");
  lr.clear();
  r.t_x264 = since(t);

  // 3. Chunking and routing.
  t = Clock::now();
  ModelArch arch = p.arch;
  arch.scale = s;
  r.arch = arch;
  ChunkingParams cp;
  cp.scale = s;
  cp.tile_size = p.tile_size;
  cp.cluster.chunks = p.chunks;
  cp.cluster.seed = p.seed;
  auto chunks = chunk_video(hr, *lr_dec, cp, prog);
  if (!chunks) return chunks.status();
  RoutingMap routing = chunks->routing;
  DYDCA_TRY(fill_path_tables(routing, arch));
  r.t_chunking = since(t);
  if (interrupted()) return Status::error("interrupted");
  if (p.baseline != "none")
    return encode_baseline(p, r, hr, *lr_dec, *video, *chunks, prog, t_start);

  // 4. Training.
  t = Clock::now();
  auto tc = make_train_config(p, arch, r.duration_s);
  if (!tc) return tc.status();
  TrainConfig cfg = *tc;
  TrainReport tr;
  auto model = train_dynamic(hr, *lr_dec, routing, cfg, &tr, prog);
  if (!model) return model.status();
  r.train_steps = tr.steps;
  r.holdout_psnr_before = tr.holdout_psnr_before;
  r.holdout_psnr_after = tr.holdout_psnr_after;
  r.holdout_history = tr.holdout_history;
  r.t_train = since(t);
  r.dist_world_size = p.dist.world_size;
  r.t_allreduce = tr.allreduce_seconds;
  if (p.dist.rank > 0) {  // rank 0 refines, evaluates and writes
    r.worker_only = true;
    r.t_total = since(t_start);
    return r;
  }

  // 5. Quantize exactly as the file will carry it, then refine the routing
  // with the error the client's model really makes.
  t = Clock::now();
  ModelBlobOptions mbo;
  mbo.weights = *parse_precision(p.precision);
  auto blob = serialize_model(*model, mbo);
  if (!blob) return blob.status();
  auto shipped = parse_model(*blob);
  if (!shipped) return shipped.status();
  const RuntimeOptions ropt = runtime_options(p, r);
  auto rt = SrRuntime::create(*shipped, ropt);
  if (!rt) return rt.status();
  const int P = int(arch.paths.size());
  if (p.refine) {
    // Per chunk and path: squared error over the chunk's tiles, on up to 16
    // evenly spread frames.
    ChunkPathError err(routing, s, P);
    std::vector<uint8_t> out(size_t(r.lr_width) * s * r.lr_height * s);
    const int n_eval = std::min<int>(16, r.frames);
    for (int i = 0; i < n_eval; ++i) {
      int f = int((int64_t(i) * r.frames) / n_eval);
      const Frame& L = (*lr_dec)[size_t(f)];
      const Frame& H = hr[size_t(f)];
      for (int path = 0; path < P; ++path) {
        DYDCA_TRY(rt->upscale_luma(L.y.data(), L.width, L.height, L.width, out.data(), H.width, path));
        err.add(f, path, H, out.data());
      }
      if (!prog({"refine", i + 1, n_eval})) return Status::error("interrupted");
    }
    const auto psnr = err.psnr();
    auto level0 = refine_paths(psnr, arch, p.refine_tolerance_db);
    if (!level0) return level0.status();
    auto tables = qos_level_tables(*level0, arch);
    if (!tables) return tables.status();
    routing.chunk_path = std::move(*tables);
  }
  for (uint8_t v : routing.chunk_path[0]) r.chunk_path.push_back(v);
  r.chunk_tiles = chunk_tile_counts(routing);
  r.t_refine = since(t);

  // 6. Quality per QoS level over every frame, as the client will see it.
  t = Clock::now();
  {
    QualityAccumulator bic;
    std::vector<QualityAccumulator> lev(size_t(routing.levels()));
    // The quantization's cost: level 0 of the fp32 weights vs the shipped
    // ones, on the sampled frames.
    QualityAccumulator q_fp32, q_shipped;
    std::optional<SrRuntime> rt32;
    if (p.precision != "fp32") {
      auto made = SrRuntime::create(*model, ropt);
      if (!made) return made.status();
      rt32.emplace(std::move(*made));
    }
    for (int f = 0; f < r.frames; ++f) {
      const Frame& L = (*lr_dec)[size_t(f)];
      const Frame& H = hr[size_t(f)];
      auto up = resize(L, H.width, H.height, ScaleFilter::kBicubic);
      if (!up) return up.status();
      Frame ref = crop(H, r.hr_width, r.hr_height);
      DYDCA_TRY(bic.add(ref, crop(*up, r.hr_width, r.hr_height)));
      // Level 0 (what viewers get) on every frame; cheaper levels on an even
      // sample of at most kLevelEvalFrames frames to bound the encode time.
      const int stride = std::max(1, (r.frames + kLevelEvalFrames - 1) / kLevelEvalFrames);
      for (int l = 0; l < routing.levels(); ++l) {
        if (l > 0 && f % stride != 0) continue;
        DYDCA_TRY(rt->upscale_luma(L.y.data(), L.width, L.height, L.width, up->y.data(), up->width,
                                   routing, f, l));
        DYDCA_TRY(lev[size_t(l)].add(ref, crop(*up, r.hr_width, r.hr_height)));
        if (l == 0 && rt32 && f % stride == 0) {
          DYDCA_TRY(q_shipped.add(ref, crop(*up, r.hr_width, r.hr_height)));
          DYDCA_TRY(rt32->upscale_luma(L.y.data(), L.width, L.height, L.width, up->y.data(),
                                       up->width, routing, f, 0));
          DYDCA_TRY(q_fp32.add(ref, crop(*up, r.hr_width, r.hr_height)));
        }
      }
      if (!prog({"evaluate", f + 1, r.frames})) return Status::error("interrupted");
    }
    if (rt32) {
      r.quant_fp32_psnr_y = q_fp32.result().psnr_y;
      r.quant_shipped_psnr_y = q_shipped.result().psnr_y;
    }
    ClipQuality b = bic.result();
    r.bicubic_psnr_y = b.psnr_y;
    r.bicubic_psnr_yuv = b.psnr_yuv;
    r.bicubic_ssim_y = b.ssim_y;
    for (int l = 0; l < routing.levels(); ++l) {
      ClipQuality q = lev[size_t(l)].result();
      LevelQuality lq;
      lq.level = l;
      lq.psnr_y = q.psnr_y;
      lq.psnr_yuv = q.psnr_yuv;
      lq.ssim_y = q.ssim_y;
      lq.frames = q.frames;
      lq.macs_per_lr_pixel = mean_macs_per_lr_pixel(routing.chunk_path[size_t(l)], r.chunk_tiles, arch);
      r.levels.push_back(lq);
    }
  }
  r.t_eval = since(t);

  // 7. The file: LR video + input audio + the two blobs, written atomically.
  t = Clock::now();
  DYDCA_TRY(write_output(p, *video, {*blob}, routing, {}, r));
  r.t_write = since(t);
  r.t_total = since(t_start);
  return r;
}

std::string report_text(const EncodeReport& r) {
  std::string o;
  char line[512];
  auto add = [&](const char* fmt, auto... args) {
    std::snprintf(line, sizeof line, fmt, args...);
    o += line;
  };
  add("%s -> %s\n", r.input.c_str(), r.output.c_str());
  add("  %d frames, %.3f fps, %.2f s; HR %dx%d, LR %dx%d (x%d)\n", r.frames, r.fps, r.duration_s,
      r.hr_width, r.hr_height, r.lr_width, r.lr_height, r.scale);
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
  for (const auto& l : r.levels)
    add("    dydca level %-2d                         %6.2f  %8.2f  %.4f   %10.0f%s\n", l.level,
        l.psnr_y, l.psnr_yuv, l.ssim_y, l.macs_per_lr_pixel,
 l.frames < r.frames ? "  (sampled frames)" : "");
  if (r.quant_fp32_psnr_y > 0)
    add("  weights  level 0 PSNR-Y fp32 %.3f -> %s %.3f dB (%+.3f dB, sampled frames)\n",
        r.quant_fp32_psnr_y, r.precision.c_str(), r.quant_shipped_psnr_y,
        r.quant_shipped_psnr_y - r.quant_fp32_psnr_y);
  add("  training held-out tiles %.2f -> %.2f dB\n", r.holdout_psnr_before, r.holdout_psnr_after);
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
    j["quantization"] = {{"level0_psnr_y_fp32", r.quant_fp32_psnr_y},
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
  nlohmann::json lv = nlohmann::json::array();
  for (const auto& l : r.levels)
    lv.push_back({{"level", l.level}, {"psnr_y", l.psnr_y}, {"psnr_yuv", l.psnr_yuv},
                  {"ssim_y", l.ssim_y}, {"macs_per_lr_pixel", l.macs_per_lr_pixel},
                  {"frames_measured", l.frames}});
  j["levels"] = lv;
  j["seconds"] = {{"read", r.t_read}, {"x264", r.t_x264}, {"chunking", r.t_chunking},
                  {"train", r.t_train}, {"allreduce", r.t_allreduce}, {"refine", r.t_refine}, {"evaluate", r.t_eval},
                  {"write", r.t_write}, {"total", r.t_total}};
  j["encode_time_ratio"] = r.t_total / std::max(r.duration_s, 1e-9);
  return j.dump(2);
}

}  // namespace dydca
