// The multi-model baselines (static, per-chunk, per-segment): the whole clip
// as one segment through the same stages as the dynamic codec, several
// single-path models in a format-1 file. They hold the clip in memory: they
// are comparisons on short clips, not a way to encode a film.
#include <algorithm>
#include <filesystem>

#include "baseline.h"
#include "dydca/container.h"

namespace dydca::detail {

namespace {

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
    DYDCA_ASSIGN_OR_RETURN(auto m, train_dynamic(hr, lr, r, cfg, &tr, prog));
    *total_steps += tr.steps;
    models.push_back(std::move(m));
  }
  return models;
}


// Writes the .mkv (LR video + input audio + model and routing blobs,
// atomically), reads it back as a client would, and fills the byte counts
// and bitrates of the report.
Status write_output(const EncodeParams& p, const EncodedVideo& video,
                    const std::vector<std::vector<uint8_t>>& model_blobs,
                    const RoutingMap& routing, const std::map<std::string, std::string>& tags,
                    EncodeReport& r) {
  DYDCA_ASSIGN_OR_RETURN(auto routing_blob, serialize_routing(routing));
  DydcaWriteParams wp;
  wp.hr_width = r.hr_width;
  wp.hr_height = r.hr_height;
  wp.copy_audio_from = p.input;
  wp.extra_tags = tags;
  DYDCA_TRY(write_dydca_file_blobs(p.output, video, model_blobs, &routing_blob, wp));
  auto check = read_dydca_file(p.output);
  if (!check) return check.status().with_context("reading back " + p.output);
  r.video_bytes = video.total_bytes();
  r.model_bytes = 0;
  for (const auto& b : model_blobs) r.model_bytes += int64_t(b.size());
  r.routing_bytes = int64_t(routing_blob.size());
  r.audio_bytes = check->audio_bytes;
  fill_bitrates(r);
  return Status::ok();
}


}  // namespace

Status evaluate_baseline(const std::vector<Model>& models, const RoutingMap& routing,
                         const std::vector<Frame>& hr, const std::vector<Frame>& lr, int hr_width,
                         int hr_height, const RuntimeOptions& options, ClipQuality* bicubic,
                         ClipQuality* sr, const ProgressFn& prog) {
  if (lr.empty() || models.empty() || hr.size() != lr.size())
    return Status::error("baseline evaluation: no frames or no models");
  DYDCA_ASSIGN_OR_RETURN(auto pool, WorkerPool::create(options.threads));
  std::vector<std::shared_ptr<const SrModel>> planned;
  std::vector<const SrModel*> ptrs;
  for (const Model& m : models) {
    DYDCA_ASSIGN_OR_RETURN(auto sm, stitch_model(m, options.model()));
    planned.push_back(std::move(sm));
    ptrs.push_back(planned.back().get());
  }
  DYDCA_ASSIGN_OR_RETURN(auto frames,
                         FrameUpscaler::create(lr[0].width, lr[0].height, planned[0]->scale(),
                                               std::move(pool), options.session()));
  QualityAccumulator bic, acc;
  Frame up;
  const int n = int(lr.size());
  for (int f = 0; f < n; ++f) {
    // The client's frame: bicubic chroma, each tile from its model.
    DYDCA_TRY(frames.chroma(lr[size_t(f)], up));
    const Frame ref = crop(hr[size_t(f)], hr_width, hr_height);
    DYDCA_TRY(bic.add(ref, crop(up, hr_width, hr_height)));
    DYDCA_TRY(frames.upscale(ptrs, lr[size_t(f)], up, routing, f, 0));
    DYDCA_TRY(acc.add(ref, crop(up, hr_width, hr_height)));
    if (prog && !prog({"evaluate", f + 1, n})) return Status::error("interrupted");
  }
  *bicubic = bic.result();
  *sr = acc.result();
  return Status::ok();
}

void fill_bitrates(EncodeReport& r) {
  const double kb = 8.0 / 1000.0 / std::max(r.duration_s, 1e-9);
  r.video_kbps = r.video_bytes * kb;
  r.model_kbps = r.model_bytes * kb;
  r.routing_kbps = r.routing_bytes * kb;
  r.audio_kbps = r.audio_bytes * kb;
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
  DYDCA_ASSIGN_OR_RETURN(auto tc, make_train_config(p, full, r.duration_s, p.train_steps));
  TrainConfig cfg = tc;
  DYDCA_ASSIGN_OR_RETURN(auto models,
                         train_baseline_models(hr, lr, br, cfg, ids, prog, &r.train_steps));
  r.t_train = since(t);

  t = Clock::now();
  ModelBlobOptions mbo;
  mbo.weights = *parse_precision(p.precision);
  std::vector<std::vector<uint8_t>> blobs;
  std::vector<Model> shipped_models;
  for (const Model& m : models) {
    DYDCA_ASSIGN_OR_RETURN(auto blob, serialize_model(m, mbo));
    DYDCA_ASSIGN_OR_RETURN(auto shipped, parse_model(blob));
    blobs.push_back(std::move(blob));
    shipped_models.push_back(std::move(shipped));
  }
  r.chunk_tiles = chunk_tile_counts(br);
  for (uint8_t v : br.chunk_path[0]) r.chunk_path.push_back(v);
  ClipQuality b, q;
  DYDCA_TRY(evaluate_baseline(shipped_models, br, hr, lr, r.hr_width, r.hr_height,
                              runtime_options(p, r.lr_width, r.lr_height), &b, &q, prog));
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


}  // namespace dydca::detail
