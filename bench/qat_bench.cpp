// int8 quality bench (issue 16): level-0 PSNR-Y of one clip with
//   (a) the fp32 network,
//   (b) the same weights in int8 after post-training calibration (no QAT),
//   (c) a network trained with the same step budget whose last fraction was
//       quantisation-aware fine-tuning, in int8,
// the int8 ones as the shipped model runs them: weights through the int8
// model blob, the network through the LibTorch int8 reference
// (reference_upscale_int8, model.h's rules). Step-bounded training, so the
// numbers do not depend on the machine's load. Every tile on its chunk's
// level-0 path (the trained routing), all frames read, whole frames.
//
//   dydca_qat_bench samples/cache/cityCC0.mpg --frames 48 --steps 1500
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

#include "dydca/atomic_file.h"
#include "dydca/chunking.h"
#include "dydca/container.h"
#include "dydca/media.h"
#include "dydca/metrics.h"
#include "dydca/training.h"

using namespace dydca;

namespace {

struct Clip {
  std::vector<Frame> hr, lr;
  RoutingMap routing;
};

// Level-0 PSNR-Y over whole frames: each tile from the output of its chunk's path.
Expected<double> level0_psnr(const Model& m, const Clip& c, bool int8, int threads) {
  const RoutingMap& r = c.routing;
  const int s = m.arch.scale;
  double sse = 0, n = 0;
  for (size_t f = 0; f < c.hr.size(); ++f) {
    const Frame& L = c.lr[f];
    const Frame& H = c.hr[f];
    std::vector<std::vector<uint8_t>> outs(m.arch.paths.size());
    for (int ty = 0; ty < r.tiles_y(); ++ty)
      for (int tx = 0; tx < r.tiles_x(); ++tx) {
        const int p = r.chunk_path[0][r.chunk(int(f), tx, ty)];
        if (outs[size_t(p)].empty()) {
          DYDCA_ASSIGN_OR_RETURN(
              auto y, int8 ? reference_upscale_int8_u8(m, p, L.y.data(), L.width, L.height, threads)
                           : reference_upscale_u8(m, p, L.y.data(), L.width, L.height, threads));
          outs[size_t(p)] = std::move(y);
        }
        const auto& o = outs[size_t(p)];
        const int x0 = tx * r.tile_size * s, y0 = ty * r.tile_size * s;
        const int x1 = std::min(H.width, x0 + r.tile_size * s);
        const int y1 = std::min(H.height, y0 + r.tile_size * s);
        for (int y = y0; y < y1; ++y)
          for (int x = x0; x < x1; ++x) {
            const double d = double(o[size_t(y) * H.width + x]) - H.y[size_t(y) * H.width + x];
            sse += d * d;
            n += 1;
          }
      }
  }
  return psnr_from_mse(sse / n);
}

// The model as the client gets it from an int8 blob (weights rounded once,
// the skip's too); the activation scales ride along.
Expected<Model> shipped_int8(const Model& m) {
  DYDCA_ASSIGN_OR_RETURN(auto blob, serialize_model(m, ModelBlobOptions{WeightFormat::kInt8, 3}));
  DYDCA_ASSIGN_OR_RETURN(auto back, parse_model(blob.data(), blob.size()));
  back.act = m.act;
  return back;
}

Status run(const std::string& input, int frames, int scale, int crf, const TrainConfig& base,
           const std::string& json_out) {
  VideoInfo info;
  ReadOptions ro;
  ro.max_frames = frames;
  DYDCA_ASSIGN_OR_RETURN(auto raw, read_all_frames(input, &info, ro));
  Clip c;
  std::vector<Frame> lr;
  for (auto& f : raw) {
    c.hr.push_back(pad_to_multiple(f, 2 * scale));
    DYDCA_ASSIGN_OR_RETURN(auto d, downscale(c.hr.back(), scale));
    lr.push_back(std::move(d));
  }
  raw.clear();
  X264Config xc;
  xc.preset = "veryfast";
  xc.crf = crf;
  DYDCA_ASSIGN_OR_RETURN(auto enc, encode_h264(lr, {25, 1}, xc));
  DYDCA_ASSIGN_OR_RETURN(auto dec, decode_h264(enc));
  c.lr = std::move(dec);
  ChunkingParams cp;
  cp.scale = scale;
  DYDCA_ASSIGN_OR_RETURN(auto ch, chunk_video(c.hr, c.lr, cp));
  c.routing = ch.routing;
  DYDCA_TRY(fill_path_tables(c.routing, base.arch, int(base.arch.paths.size())));
  QualityAccumulator bic_acc(false);
  for (size_t i = 0; i < c.hr.size(); ++i) {
    DYDCA_ASSIGN_OR_RETURN(auto up,
                           resize(c.lr[i], c.hr[i].width, c.hr[i].height, ScaleFilter::kBicubic));
    DYDCA_TRY(bic_acc.add(c.hr[i], up));
  }
  const double bicubic = bic_acc.result().psnr_y;

  TrainConfig cfg = base;
  cfg.qat = false;
  TrainReport rep_fp;
  DYDCA_ASSIGN_OR_RETURN(auto fp, train_dynamic(c.hr, c.lr, c.routing, cfg, &rep_fp));
  DYDCA_ASSIGN_OR_RETURN(auto scales, calibrate_act_scales(fp, c.hr, c.lr, c.routing, cfg));
  Model ptq = fp;
  ptq.act = scales;
  cfg.qat = true;
  TrainReport rep_q;
  DYDCA_ASSIGN_OR_RETURN(auto q, train_dynamic(c.hr, c.lr, c.routing, cfg, &rep_q));

  // Post-training int8 under other calibrations (percentiles of |v|).
  std::vector<std::pair<double, double>> ptq_pct;
  for (double pct : {100.0, 99.999, 99.99, 99.9}) {
    TrainConfig pc = cfg;
    pc.calibration = TrainConfig::Calibration::kPercentile;
    pc.calib_percentile = pct;
    DYDCA_ASSIGN_OR_RETURN(auto sc, calibrate_act_scales(fp, c.hr, c.lr, c.routing, pc));
    Model m = fp;
    m.act = sc;
    DYDCA_ASSIGN_OR_RETURN(auto ship, shipped_int8(m));
    DYDCA_ASSIGN_OR_RETURN(auto v, level0_psnr(ship, c, true, cfg.threads));
    ptq_pct.emplace_back(pct, v);
  }
  DYDCA_ASSIGN_OR_RETURN(auto ptq_ship, shipped_int8(ptq));
  DYDCA_ASSIGN_OR_RETURN(auto q_ship, shipped_int8(q));
  DYDCA_ASSIGN_OR_RETURN(auto a, level0_psnr(fp, c, false, cfg.threads));
  DYDCA_ASSIGN_OR_RETURN(auto b, level0_psnr(ptq_ship, c, true, cfg.threads));
  DYDCA_ASSIGN_OR_RETURN(auto cq, level0_psnr(q_ship, c, true, cfg.threads));
  DYDCA_ASSIGN_OR_RETURN(auto cq32, level0_psnr(q, c, false, cfg.threads));

  std::printf("%s: %d frames %dx%d, x%d, CRF %d, C%d E%d N%d, %d steps (QAT run: last %d)\n",
              input.c_str(), int(c.hr.size()), c.hr[0].width, c.hr[0].height, scale, crf,
              cfg.arch.channels, cfg.arch.inner, cfg.arch.blocks, rep_fp.steps, rep_q.qat_steps);
  std::printf("  bicubic                         %.3f dB\n", bicubic);
  std::printf("  (a) fp32                        %.3f dB\n", a);
  std::printf("  (b) int8, post-training scales  %.3f dB  (%+.3f)\n", b, b - a);
  for (auto [pct, v] : ptq_pct)
    std::printf("      int8, post-training, %7.3f %% of |v|: %.3f dB  (%+.3f)\n", pct, v, v - a);
  std::printf("  (c) int8 after QAT              %.3f dB  (%+.3f)\n", cq, cq - a);
  std::printf("      QAT run's weights in fp32   %.3f dB\n", cq32);
  std::printf("  held-out tiles at QAT start: fp32 %.3f, int8 %.3f; after QAT int8 %.3f dB\n",
              rep_q.holdout_psnr_fp32_at_qat, rep_q.holdout_psnr_int8_at_qat,
              rep_q.holdout_psnr_after);
  if (!json_out.empty()) {
    nlohmann::json j;
    j["input"] = input;
    j["frames"] = c.hr.size();
    j["scale"] = scale;
    j["arch"] = {cfg.arch.channels, cfg.arch.inner, cfg.arch.blocks};
    j["crf"] = crf;
    j["steps"] = rep_fp.steps;
    j["qat_steps"] = rep_q.qat_steps;
    j["qat_lr"] = cfg.qat_lr;
    j["qat_fraction"] = cfg.qat_fraction;
    j["calibration"] = cfg.calibration == TrainConfig::Calibration::kMse ? "mse" : "percentile";
    j["bicubic"] = bicubic;
    j["fp32"] = a;
    j["int8_ptq"] = b;
    j["int8_qat"] = cq;
    for (auto [pct, v] : ptq_pct) j["int8_ptq_percentile"][std::to_string(pct)] = v;
    j["qat_weights_fp32"] = cq32;
    j["act_scales"] = q.act.path;
    DYDCA_TRY(write_file_atomic(json_out, j.dump(2) + "\n"));
  }
  return Status::ok();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"int8 quality: fp32 vs post-training int8 vs QAT int8 (issue 16)"};
  std::string input, json_out;
  int frames = 48, scale = 2, crf = 26;
  TrainConfig cfg;
  cfg.arch.scale = 2;
  cfg.arch.channels = 16;
  cfg.arch.inner = 16;
  cfg.arch.blocks = 2;
  cfg.arch.paths = {{0, 0}, {1, 8}, {2, 16}};  // the encoder's default network
  cfg.steps = 1500;
  app.add_option("input", input, "video file")->required();
  app.add_option("--frames", frames, "frames read from the start")->capture_default_str();
  app.add_option("--scale", scale, "2, 3 or 4")->capture_default_str();
  app.add_option("--crf", crf, "x264 CRF of the LR (veryfast)")->capture_default_str();
  app.add_option("--channels", cfg.arch.channels, "C (paths: (0,0), (N/2,C/2), (N,C))")
      ->capture_default_str();
  app.add_option("--inner", cfg.arch.inner, "E")->capture_default_str();
  app.add_option("--blocks", cfg.arch.blocks, "N")->capture_default_str();
  app.add_option("--steps", cfg.steps, "training steps of each run")->capture_default_str();
  app.add_option("--qat-fraction", cfg.qat_fraction, "last fraction of the steps in QAT")
      ->capture_default_str();
  app.add_option("--qat-lr", cfg.qat_lr, "QAT peak learning rate (0: the run's cosine goes on)")->capture_default_str();
  app.add_option("--calib-tiles", cfg.calib_tiles, "calibration tiles per path")
      ->capture_default_str();
  std::string calibration = "mse";
  app.add_option("--calibration", calibration, "mse | percentile: scales of (b) and (c)")
      ->check(CLI::IsMember({"mse", "percentile"}))
      ->capture_default_str();
  app.add_option("--calib-percentile", cfg.calib_percentile, "with --calibration percentile")
      ->capture_default_str();
  app.add_option("--seed", cfg.seed, "training seed")->capture_default_str();
  app.add_option("--threads", cfg.threads, "LibTorch threads")->capture_default_str();
  app.add_option("--json", json_out, "write the numbers here");
  CLI11_PARSE(app, argc, argv);
  cfg.arch.scale = scale;
  const int N = cfg.arch.blocks, C = cfg.arch.channels;
  cfg.arch.paths = {{0, 0}, {std::max(1, N / 2), C / 2}, {N, C}};
  if (calibration == "percentile") cfg.calibration = TrainConfig::Calibration::kPercentile;
  Status st = run(input, frames, scale, crf, cfg, json_out);
  if (!st) {
    std::fprintf(stderr, "dydca_qat_bench: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
