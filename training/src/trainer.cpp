#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>

#include "dydca/atomic_file.h"
#include "dydca/chunking.h"
#include "dydca/metrics.h"
#include "dydca/training.h"
#include <ATen/autocast_mode.h>

#include "dist.h"
#include "supernet.h"

namespace dydca {

Status check_model_arch(const ModelArch& a) {
  if (a.scale < kMinScale || a.scale > kMaxScale)
    return Status::error("model: scale must be 1, 2, 3 or 4");
  if (a.channels < 1 || a.channels > kMaxChannels || a.inner < 1 || a.inner > kMaxInner ||
      a.blocks < 0 || a.blocks > kMaxBlocks)
    return Status::error("model: C=" + std::to_string(a.channels) + " E=" +
                         std::to_string(a.inner) + " N=" + std::to_string(a.blocks) +
                         " out of range (C, E 1.." + std::to_string(kMaxChannels) + ", N 0.." +
                         std::to_string(kMaxBlocks) + ")");
  if (a.paths.empty() || a.paths.size() > size_t(kMaxPaths))
    return Status::error("model: 1 to " + std::to_string(kMaxPaths) + " paths needed");
  for (const auto& p : a.paths) {
    if (p.depth < 0 || p.depth > a.blocks || p.width < 0 || p.width > a.channels ||
        (p.width == 0 && p.depth != 0))
      return Status::error("model: path (" + std::to_string(p.depth) + "," +
                           std::to_string(p.width) + ") does not fit the network");
    if (p.width > 0 && (a.inner * p.width) % a.channels != 0)
      return Status::error("model: path width " + std::to_string(p.width) +
                           " does not slice the inner width evenly");
  }
  return Status::ok();
}

namespace {

using Clock = std::chrono::steady_clock;

// Receptive radius of the richest path in LR pixels (each 3x3 conv adds 1;
// the 5x5 skip needs 2).
int receptive_radius(const ModelArch& a) {
  int r = 2;
  for (const auto& p : a.paths)
    if (p.width > 0) r = std::max(r, 2 + 2 * p.depth);
  return r;
}

torch::Tensor to_tensor(const std::vector<uint8_t>& bytes, int count, int side) {
  return torch::from_blob(const_cast<uint8_t*>(bytes.data()), {count, 1, side, side},
                          torch::kUInt8)
      .to(torch::kFloat32)
      .div_(255.0);
}

// Per path, the activation scales of the int8 forward ([path][tensor],
// model.h); empty = fp32.
using PathScales = std::vector<std::vector<float>>;

// Path p's forward, fp32 or (with scales) int8 as the shipped int8 blob runs.
torch::Tensor forward_path(Supernet& net, const torch::Tensor& x, int p, const PathScales& act) {
  if (act.empty()) return net->forward(x, p);
  return net->forward_int8(x, p, act[size_t(p)], /*quant_skip=*/true);
}

// Runs each sample through its own path (samples grouped by path) and returns
// the core crop of the outputs, [B,1,core,core].
torch::Tensor run_paths(Supernet& net, const torch::Tensor& x, const std::vector<int>& path_of,
                        int crop, int core, const PathScales& act = {}) {
  std::map<int, std::vector<int64_t>> groups;
  for (size_t i = 0; i < path_of.size(); ++i) groups[path_of[i]].push_back(int64_t(i));
  torch::Tensor out;
  for (auto& [p, idx] : groups) {
    auto index = torch::tensor(idx, torch::kInt64);
    auto y = forward_path(net, x.index_select(0, index), p, act).narrow(2, crop, core).narrow(3, crop, core);
    if (!out.defined()) out = torch::zeros({x.size(0), 1, core, core}, y.options());
    out = out.index_copy(0, index, y);
  }
  return out;
}

// bf16 autocast for the forward pass (the backward follows the same casts).
class AutocastScope {
 public:
  explicit AutocastScope(bool on) : on_(on) {
    if (on_) {
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
  }
  void end() {
    if (on_) {
      at::autocast::set_cpu_enabled(false);
      at::autocast::clear_cache();
      on_ = false;
    }
  }
  ~AutocastScope() { end(); }

 private:
  bool on_;
};

double psnr_of(const torch::Tensor& out, const torch::Tensor& ref) {
  auto a = (out.clamp(0, 1) * 255).round();
  auto b = (ref * 255).round();
  return psnr_from_mse(torch::mse_loss(a, b).item<double>());
}

// The QAT phase once it has begun: its first step and the calibrated scales.
struct QatState {
  int begin = -1;  // -1: not begun
  PathScales act;
};

// Training state (network + Adam + next step + QAT phase) as one archive: the
// checkpoint file, and what rank 0 sends to the other ranks at the start.
torch::serialize::OutputArchive state_archive(Supernet& net, torch::optim::Adam& opt, int step,
                                              const QatState& qat) {
  torch::serialize::OutputArchive ar, oa;
  net->save(ar);
  opt.save(oa);
  ar.write("optimizer", oa);
  ar.write("step", torch::tensor(int64_t(step)));
  if (qat.begin >= 0) {
    std::vector<int64_t> counts;
    std::vector<float> flat;
    for (const auto& v : qat.act) {
      counts.push_back(int64_t(v.size()));
      flat.insert(flat.end(), v.begin(), v.end());
    }
    ar.write("qat_begin", torch::tensor(int64_t(qat.begin)));
    ar.write("act_counts", torch::tensor(counts, torch::kInt64));
    ar.write("act", torch::tensor(flat, torch::kFloat32));
  }
  return ar;
}

int load_state(torch::serialize::InputArchive& ar, Supernet& net, torch::optim::Adam& opt,
               QatState& qat) {
  torch::serialize::InputArchive oa;
  net->load(ar);
  ar.read("optimizer", oa);
  opt.load(oa);
  torch::Tensor st;
  ar.read("step", st);
  torch::Tensor begin, counts, act;
  qat = {};
  if (ar.try_read("qat_begin", begin)) {  // a checkpoint taken during QAT
    ar.read("act_counts", counts);
    ar.read("act", act);
    qat.begin = int(begin.item<int64_t>());
    int64_t off = 0;
    for (int64_t i = 0; i < counts.numel(); ++i) {
      const int64_t n = counts[i].item<int64_t>();
      auto v = act.narrow(0, off, n).contiguous();
      qat.act.emplace_back(v.data_ptr<float>(), v.data_ptr<float>() + n);
      off += n;
    }
  }
  return int(st.item<int64_t>());
}

// LibTorch throws when it cannot write; the PendingFile then removes its
// temporary file, and the old checkpoint stays.
Status save_checkpoint(const std::string& path, Supernet& net, torch::optim::Adam& opt, int step,
                       const QatState& qat) {
  PendingFile out(path);
  state_archive(net, opt, step, qat).save_to(out.temp_path());
  return out.commit();
}

// calibrate_act_scales (training.h) on a network: `tiles` tiles per path from
// the chunks that run it at some level (all present chunks when none does).
PathScales calibrate_paths(Supernet& net, TrainingSampler& sampler, const RoutingMap& routing,
                           const std::vector<int>& present, const TrainConfig& cfg) {
  const int tiles = cfg.calib_tiles;
  torch::NoGradGuard ng;
  PathScales act;
  TrainingBatch tb;
  for (int p = 0; p < int(net->arch.paths.size()); ++p) {
    act.emplace_back();
    if (net->arch.paths[size_t(p)].width == 0) continue;
    std::vector<int> chunks;
    for (int c : present)
      for (const auto& level : routing.chunk_path)
        if (level[size_t(c)] == p) {
          chunks.push_back(c);
          break;
        }
    if (chunks.empty()) chunks = present;
    std::vector<torch::Tensor> xs;
    const int k = int(chunks.size()), n = std::max(1, tiles);
    for (int j = 0; j < k; ++j) {
      const int count = n / k + (j < n % k ? 1 : 0);
      if (count == 0) continue;
      if (!sampler.next_batch_for_chunk(chunks[size_t(j)], count, tb)) continue;
      xs.push_back(to_tensor(tb.lr, tb.count, tb.lr_side).clone());
    }
    if (xs.empty()) {  // cannot happen with present chunks; stay defined anyway
      act.back().assign(size_t(1 + 2 * net->arch.paths[size_t(p)].depth), 1.0f);
      continue;
    }
    auto x = torch::cat(xs);
    std::vector<float> scales;
    net->forward_int8(x, p, {}, /*quant_skip=*/true,
                      [&](int, const torch::Tensor& v, bool is_unsigned) {
                        scales.push_back(
                            cfg.calibration == TrainConfig::Calibration::kMse
                                ? quant::mse_scale(v, is_unsigned)
                                : quant::percentile_scale(v, is_unsigned, cfg.calib_percentile));
                        return scales.back();
                      });
    act.back() = std::move(scales);
  }
  return act;
}

// Sampler of the calibration tiles: seeded apart from training and held-out.
Expected<TrainingSampler> calibration_sampler(const std::vector<Frame>& hr,
                                              const std::vector<Frame>& lr,
                                              const RoutingMap& routing, const TrainConfig& cfg) {
  SamplerParams sp;
  sp.patch = cfg.patch;
  sp.halo = receptive_radius(cfg.arch);
  sp.border = BorderMode::kReplicate;
  sp.seed = cfg.seed ^ 0x6a09e667f3bcc909ull;
  return TrainingSampler::create(hr, lr, routing, sp);
}

std::vector<int> present_chunks(const TrainingSampler& sampler, int only_chunk) {
  std::vector<int> present;
  for (int c = 0; c < int(sampler.chunk_tiles().size()); ++c)
    if (sampler.chunk_tiles()[size_t(c)] > 0 && (only_chunk < 0 || only_chunk == c))
      present.push_back(c);
  return present;
}

// Sums the gradients and `extra` over the ranks, in one message.
Status all_reduce_grads(DistGroup& dist, Supernet& net, std::vector<double>& extra) {
  std::vector<torch::Tensor> grads;
  for (auto& p : net->parameters()) grads.push_back(p.grad());  // all defined (see above)
  std::vector<torch::Tensor> flat;
  for (auto& g : grads) flat.push_back(g.reshape(-1));
  flat.push_back(torch::tensor(extra, torch::kFloat64).to(torch::kFloat32));
  auto buf = torch::cat(flat);
  DYDCA_TRY(dist.all_reduce(buf));
  int64_t off = 0;
  for (auto& g : grads) {
    g.copy_(buf.narrow(0, off, g.numel()).view_as(g));
    off += g.numel();
  }
  for (size_t i = 0; i < extra.size(); ++i) extra[i] = buf[off + int64_t(i)].item<double>();
  return Status::ok();
}

}  // namespace

Expected<TrainConfig> TrainConfig::preset(const std::string& name, const ModelArch& arch,
                                          double clip_seconds) {
  TrainConfig c;
  c.arch = arch;
  clip_seconds = std::max(clip_seconds, 1.0);
  if (name == "fast") {
    c.steps = 300;
    c.time_budget_s = 4 * clip_seconds;
  } else if (name == "balanced") {
    c.steps = 3000;
    c.time_budget_s = 14 * clip_seconds;
  } else if (name == "best") {
    c.steps = 30000;
    c.time_budget_s = 80 * clip_seconds;
  } else {
    return Status::error("unknown training preset '" + name + "' (fast, balanced, best)");
  }
  return c;
}

Expected<std::vector<std::vector<float>>> fit_global_paths(const std::vector<Frame>& hr,
                                                          const std::vector<Frame>& lr, int scale,
                                                          const std::vector<double>& ridges) {
  if (scale < kMinScale || scale > kMaxScale) return Status::error("fit_global_path: bad scale");
  if (hr.empty() || hr.size() != lr.size()) return Status::error("fit_global_path: no frames");
  constexpr int kTaps = 25, kN = kTaps + 1;  // 5x5 taps and the bias
  const int s2 = scale * scale;
  int64_t pixels = 0;
  for (size_t f = 0; f < lr.size(); ++f) {
    if (hr[f].width != lr[f].width * scale || hr[f].height != lr[f].height * scale)
      return Status::error("fit_global_path: HR is not scale x LR");
    pixels += int64_t(lr[f].width) * lr[f].height;
  }
  // At most ~2M samples, on an odd stride through the frames' pixels (odd:
  // every position modulo the codec's 8- and 16-pixel grids is sampled).
  constexpr int64_t kMaxSamples = 2'000'000;
  int64_t stride = std::max<int64_t>(1, (pixels + kMaxSamples - 1) / kMaxSamples);
  if (stride > 1 && stride % 2 == 0) ++stride;
  std::vector<double> g(size_t(kN) * kN, 0.0), b(size_t(kN) * s2, 0.0);
  double a[kN];
  int64_t next = 0, base = 0, samples = 0;
  for (size_t f = 0; f < lr.size(); ++f) {
    const Frame& L = lr[f];
    const Frame& H = hr[f];
    const int64_t n = int64_t(L.width) * L.height;
    for (; next < base + n; next += stride) {
      const int y = int((next - base) / L.width), x = int((next - base) % L.width);
      for (int ky = 0; ky < 5; ++ky) {
        const int yy = std::clamp(y + ky - 2, 0, L.height - 1);
        for (int kx = 0; kx < 5; ++kx) {
          const int xx = std::clamp(x + kx - 2, 0, L.width - 1);
          a[ky * 5 + kx] = L.y[size_t(yy) * L.width + xx] / 255.0;
        }
      }
      a[kTaps] = 1.0;
      for (int i = 0; i < kN; ++i)
        for (int j = i; j < kN; ++j) g[size_t(i) * kN + j] += a[i] * a[j];
      for (int py = 0; py < scale; ++py)
        for (int px = 0; px < scale; ++px) {
          const double t = H.y[size_t(y * scale + py) * H.width + x * scale + px] / 255.0;
          double* bp = &b[size_t(py * scale + px) * kN];
          for (int i = 0; i < kN; ++i) bp[i] += a[i] * t;
        }
      ++samples;
    }
    base += n;
  }
  if (samples < 4 * kN) return Status::error("fit_global_path: too few pixels");
  for (int i = 0; i < kN; ++i)
    for (int j = 0; j < i; ++j) g[size_t(i) * kN + j] = g[size_t(j) * kN + i];
  // Ridge toward bicubic: (G + lambda I) w = B + lambda w_bicubic, one
  // solve per ridge on the same normal equations.
  double trace = 0;
  for (int i = 0; i < kN; ++i) trace += g[size_t(i) * kN + i];
  const std::vector<float> bicubic = bicubic_skip_kernel(scale);
  std::vector<std::vector<float>> fits;
  for (double ridge : ridges) {
    if (!(ridge >= 0)) return Status::error("fit_global_path: negative ridge");
    const double lambda = ridge * trace / kN;
    std::vector<double> gr = g;
    for (int i = 0; i < kN; ++i) gr[size_t(i) * kN + i] += lambda;
    // Cholesky G = L L^T (G is symmetric positive definite with the ridge).
    std::vector<double> chol(size_t(kN) * kN, 0.0);
    for (int i = 0; i < kN; ++i)
      for (int j = 0; j <= i; ++j) {
        double sum = gr[size_t(i) * kN + j];
        for (int k = 0; k < j; ++k) sum -= chol[size_t(i) * kN + k] * chol[size_t(j) * kN + k];
        if (i == j) {
          if (!(sum > 0)) return Status::error("fit_global_path: singular system");
          chol[size_t(i) * kN + i] = std::sqrt(sum);
        } else {
          chol[size_t(i) * kN + j] = sum / chol[size_t(j) * kN + j];
        }
      }
    std::vector<float> out(size_t(s2) * (kTaps + 1), 0.f);
    for (int p = 0; p < s2; ++p) {
      double r[kN], z[kN];
      for (int i = 0; i < kN; ++i)
        r[i] = b[size_t(p) * kN + i] + lambda * (i < kTaps ? bicubic[size_t(p) * kTaps + i] : 0.0);
      for (int i = 0; i < kN; ++i) {  // L z = r
        double sum = r[i];
        for (int k = 0; k < i; ++k) sum -= chol[size_t(i) * kN + k] * z[k];
        z[i] = sum / chol[size_t(i) * kN + i];
      }
      for (int i = kN - 1; i >= 0; --i) {  // L^T w = z
        double sum = z[i];
        for (int k = i + 1; k < kN; ++k) sum -= chol[size_t(k) * kN + i] * r[k];
        r[i] = sum / chol[size_t(i) * kN + i];
      }
      for (int i = 0; i < kTaps; ++i) out[size_t(p) * kTaps + i] = float(r[i]);
      out[size_t(s2) * kTaps + p] = float(r[kTaps]);
    }
    fits.push_back(std::move(out));
  }
  return fits;
}

Expected<std::vector<float>> fit_global_path(const std::vector<Frame>& hr,
                                             const std::vector<Frame>& lr, int scale,
                                             double ridge) {
  DYDCA_ASSIGN_OR_RETURN(auto fits, fit_global_paths(hr, lr, scale, {ridge}));
  return std::move(fits[0]);
}

Expected<Model> init_model(const ModelArch& arch, uint64_t seed) {
  DYDCA_TRY(check_model_arch(arch));
  Supernet net(arch);
  net->reset(seed);
  return net->to_model();
}

namespace {
Expected<Model> train_dynamic_impl(const std::vector<Frame>& hr, const std::vector<Frame>& lr,
                                   const RoutingMap& routing, const TrainConfig& cfg,
                                   TrainReport* report, const ProgressFn& progress);
}  // namespace

// LibTorch reports errors by exception: one line of it, never an abort.
Expected<Model> train_dynamic(const std::vector<Frame>& hr, const std::vector<Frame>& lr,
                              const RoutingMap& routing, const TrainConfig& cfg,
                              TrainReport* report, const ProgressFn& progress) {
  try {
    return train_dynamic_impl(hr, lr, routing, cfg, report, progress);
  } catch (const std::exception& e) {
    std::string m = e.what();
    return Status::error("training failed in LibTorch: " + m.substr(0, std::min<size_t>(m.find('\n'), 300)));
  }
}

namespace {
Expected<Model> train_dynamic_impl(const std::vector<Frame>& hr, const std::vector<Frame>& lr,
                                   const RoutingMap& routing, const TrainConfig& cfg,
                                   TrainReport* report, const ProgressFn& progress) {
  const ModelArch& arch = cfg.arch;
  DYDCA_TRY(check_model_arch(arch));
  if (cfg.batch < 1 || cfg.batch > 1024 || cfg.patch < 4 || cfg.patch > 512 || cfg.steps < 0)
    return Status::error("train: batch, patch or steps out of range");
  if (cfg.qat && (!(cfg.qat_fraction >= 0 && cfg.qat_fraction <= 1) || !(cfg.qat_lr >= 0) ||
                  cfg.calib_tiles < 1 || cfg.calib_tiles > 4096))
    return Status::error("train: qat_fraction, qat_lr or calib_tiles out of range");
  if (routing.chunk_path.empty() || int(routing.chunk_path[0].size()) != routing.num_chunks)
    return Status::error("train: the routing has no chunk -> path table");
  for (const auto& level : routing.chunk_path)
    for (uint8_t p : level)
      if (p >= arch.paths.size()) return Status::error("train: routing names a missing path");
  const int s = arch.scale;
  const int halo = receptive_radius(arch);
  const int crop = halo * s, core = cfg.patch * s;
  at::set_num_threads(std::max(1, cfg.threads));
  torch::manual_seed(cfg.seed);

  SamplerParams sp;
  sp.patch = cfg.patch;
  sp.halo = halo;
  sp.border = BorderMode::kReplicate;  // the clamped-input border of model.h
  sp.seed = cfg.seed;
  DYDCA_ASSIGN_OR_RETURN(auto sampler, TrainingSampler::create(hr, lr, routing, sp));
  // Held-out tiles: a fixed batch from an independently seeded sampler.
  sp.seed = cfg.seed ^ 0x9e3779b97f4a7c15ull;
  DYDCA_ASSIGN_OR_RETURN(auto hold_sampler, TrainingSampler::create(hr, lr, routing, sp));
  TrainingBatch hold;
  hold_sampler.next_batch(std::max(32, 2 * routing.num_chunks), hold);
  auto hold_x = to_tensor(hold.lr, hold.count, hold.lr_side);
  auto hold_y = to_tensor(hold.hr, hold.count, hold.hr_side);
  std::vector<int> hold_path;
  for (int c : hold.chunk) hold_path.push_back(routing.chunk_path[0][size_t(c)]);

  Supernet net(arch);
  net->reset(cfg.seed);
  if (cfg.init) DYDCA_TRY(net->load_model(*cfg.init).with_context("train: warm start"));
  if (cfg.fit_skip) {
    DYDCA_ASSIGN_OR_RETURN(auto fit, fit_global_path(hr, lr, arch.scale));
    torch::NoGradGuard ng;
    const int s2 = arch.scale * arch.scale;
    net->skip_w.copy_(torch::from_blob(fit.data(), net->skip_w.sizes(), torch::kFloat32));
    net->skip_b.copy_(torch::from_blob(fit.data() + size_t(s2) * 25, {s2}, torch::kFloat32));
  }
  net->channels_last = cfg.channels_last;
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(cfg.lr));
  // Every parameter has a gradient (zero when its path did not run) from the
  // first step on, so Adam steps all of them every step: otherwise a block
  // that a step does not use keeps its momentum only in a process that has
  // used it before, and a resumed run diverges from a straight one.
  for (auto& p : net->parameters()) p.mutable_grad() = torch::zeros_like(p);
  if (!cfg.train_skip) {  // a zero gradient forever: Adam leaves the bicubic skip as it is
    net->skip_w.set_requires_grad(false);
    net->skip_b.set_requires_grad(false);
  }
  TrainReport rep;
  int start = 0;
  QatState qat;
  std::unique_ptr<DistGroup> own_dist;
  DistGroup* dist = nullptr;
  const std::string key_prefix = cfg.session ? cfg.session_tag + "/" : "";
  if (cfg.dist.world_size > 1) {
    if (cfg.batch < cfg.dist.world_size)
      return Status::error("train: the batch (" + std::to_string(cfg.batch) +
                           ") must have at least one patch per rank");
    if (cfg.session) {
      dist = cfg.session->impl().group.get();
      DYDCA_TRY(dist->barrier(key_prefix + "start"));
    } else {
      DYDCA_ASSIGN_OR_RETURN(auto g, DistGroup::connect(cfg.dist));
      own_dist = std::move(g);
      dist = own_dist.get();
    }
  }
  const bool root = !dist || dist->rank() == 0;
  if (root && !cfg.checkpoint.empty() && std::filesystem::exists(cfg.checkpoint)) {
    try {
      torch::serialize::InputArchive ar;
      ar.load_from(cfg.checkpoint);
      start = load_state(ar, net, opt, qat);
      rep.resumed = true;
      log_info("training: resumed from " + cfg.checkpoint + " at step " + std::to_string(start));
    } catch (const std::exception& e) {
      return Status::error("cannot resume from " + cfg.checkpoint + " (" +
                           std::string(e.what()).substr(0, 200) + "); delete it to start over");
    }
  }
  if (dist) {
    // Every rank starts from rank 0's state (fresh or resumed): same weights,
    // same Adam moments, same step.
    std::string bytes;
    if (root)
      state_archive(net, opt, start, qat).save_to([&](const void* d, size_t n) {
        bytes.append(static_cast<const char*>(d), n);
        return n;
      });
    DYDCA_ASSIGN_OR_RETURN(auto shared, dist->share(key_prefix + "initial-state", bytes));
    if (!root) {
      try {
        torch::serialize::InputArchive ar;
        ar.load_from(shared.data(), shared.size());
        start = load_state(ar, net, opt, qat);
        rep.resumed = start > 0;
      } catch (const std::exception& e) {
        return Status::error("distributed training: rank 0's state does not load (" +
                             std::string(e.what()).substr(0, 200) + ")");
      }
    }
  }
  {
    torch::NoGradGuard ng;
    rep.holdout_psnr_before = psnr_of(run_paths(net, hold_x, hold_path, crop, core, qat.act), hold_y);
  }

  const int levels = routing.levels();
  std::mt19937_64 level_rng;
  TrainingBatch tb;
  // chunks with tiles to learn from
  const std::vector<int> present = present_chunks(sampler, cfg.only_chunk);
  if (present.empty()) return Status::error("train: no tiles to train on");
  // The int8 phase: calibrate the activation scales on the current weights
  // (every rank the same tiles; the max over the ranks guards against any
  // difference), then fine-tune through the int8 forward from this step on.
  auto begin_qat = [&](int at_step) -> Status {
    DYDCA_ASSIGN_OR_RETURN(auto cs, calibration_sampler(hr, lr, routing, cfg));
    qat.act = calibrate_paths(net, cs, routing, present, cfg);
    qat.begin = at_step;
    if (dist) {
      std::vector<float> flat;
      for (const auto& v : qat.act) flat.insert(flat.end(), v.begin(), v.end());
      auto t = torch::tensor(flat, torch::kFloat32);
      DYDCA_TRY(dist->all_reduce(t, /*max=*/true));
      int64_t off = 0;
      for (auto& v : qat.act)
        for (float& a : v) a = t[off++].item<float>();
    }
    torch::NoGradGuard ng;
    rep.holdout_psnr_fp32_at_qat = psnr_of(run_paths(net, hold_x, hold_path, crop, core), hold_y);
    rep.holdout_psnr_int8_at_qat =
        psnr_of(run_paths(net, hold_x, hold_path, crop, core, qat.act), hold_y);
    log_info("training: int8 scales calibrated at step " + std::to_string(at_step) +
             ", held-out " + std::to_string(rep.holdout_psnr_fp32_at_qat) + " dB fp32, " +
             std::to_string(rep.holdout_psnr_int8_at_qat) + " dB int8");
    return Status::ok();
  };
  // The last qat_fraction of the steps are the QAT phase.
  auto qat_start = [&](int total_steps) {
    if (!cfg.qat) return total_steps;
    return std::clamp(total_steps - int(std::lround(cfg.qat_fraction * total_steps)), 0,
                      total_steps);
  };
  // Replay the sampler so that a resumed run draws the same batches.
  for (int i = 0; i < start; ++i)
    DYDCA_TRY(sampler.next_batch_for_chunk(present[size_t(i) % present.size()], cfg.batch, tb));

  int total = cfg.steps;
  const auto t0 = Clock::now();
  double loss_ema = 0;
  int step = start;
  double last_holdout = rep.holdout_psnr_before;
  bool want_stop = false;  // Ctrl-C or the progress callback, agreed on by all ranks
  for (; step < total; ++step) {
    if (cfg.stop && cfg.stop->load()) want_stop = true;
    if (want_stop && !dist) {
      rep.stopped_early = true;
      break;
    }
    // With a time budget, the step count is set after a short calibration and
    // re-set every 50 steps from the measured pace (the machine's load changes),
    // so that the cosine schedule ends with the budget (the slowest rank's).
    if (cfg.time_budget_s > 0 && step >= start + 8 && (step - start) % 50 == 8) {
      double per = std::chrono::duration<double>(Clock::now() - t0).count() / (step - start);
      if (dist) {
        auto t = torch::tensor({per}, torch::kFloat64);
        DYDCA_TRY(dist->all_reduce(t, /*max=*/true));
        per = t.item<double>();
      }
      int fit = start + int(cfg.time_budget_s / std::max(per, 1e-6));
      total = std::max(step + 1, std::min(cfg.steps, fit));
    }
    double frac = total > 0 ? double(step) / total : 1.0;
    double lr_now = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + std::cos(M_PI * frac));
    if (cfg.qat && qat.begin < 0 && step >= qat_start(total)) DYDCA_TRY(begin_qat(step));
    if (qat.begin >= 0 && cfg.qat_lr > 0) {  // a cosine of its own, qat_lr down to lr_min
      const double fq = double(step - qat.begin) / std::max(1, total - qat.begin);
      lr_now = cfg.lr_min + 0.5 * (cfg.qat_lr - cfg.lr_min) * (1 + std::cos(M_PI * fq));
    }
    for (auto& g : opt.param_groups())
      static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr_now);

    // One content chunk per step, round robin (balanced), a full batch through
    // its path: full batches keep LibTorch on its fast convolution kernels.
    // With several ranks, each takes its share of the batch's patches.
    const int chunk = present[size_t(step) % present.size()];
    DYDCA_TRY(sampler.next_batch_for_chunk(chunk, cfg.batch, tb));
    auto x = to_tensor(tb.lr, tb.count, tb.lr_side);
    auto y = to_tensor(tb.hr, tb.count, tb.hr_side);
    double share = 1.0;
    if (dist) {
      const int64_t n = tb.count, w = dist->world_size(), r = dist->rank();
      const int64_t lo = r * n / w, hi = (r + 1) * n / w;
      x = x.narrow(0, lo, hi - lo);
      y = y.narrow(0, lo, hi - lo);
      share = double(hi - lo) / double(n);  // mean over the share x share = its part of the mean
    }
    if (cfg.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    // Progressive growth (AdaSR): early steps cap the path index, the cap
    // rising from the cheapest body path to the richest.
    const int P = int(arch.paths.size());
    int cap = P - 1;
    if (cfg.progressive > 0 && frac < cfg.progressive && P > 2)
      cap = std::clamp(1 + int(frac / cfg.progressive * (P - 1)), 1, P - 1);
    const int p = std::min<int>(routing.chunk_path[0][size_t(chunk)], cap);
    // No autocast through the int8 forward: its integer sums must stay exact.
    AutocastScope autocast(cfg.bf16 && qat.begin < 0);
    auto out = forward_path(net, x, p, qat.act).narrow(2, crop, core).narrow(3, crop, core).to(torch::kFloat32);
    auto loss = torch::l1_loss(out, y);
    if (levels > 1 && (cfg.qos_weight > 0 || cfg.distill_weight > 0)) {
      // Sandwich: the same patches through the path of a random cheaper level
      // (or of every cheaper level, averaged), trained on the target and
      // distilled from the assigned path.
      std::vector<int> cheaper;
      if (cfg.all_levels) {
        for (int l = 1; l < levels; ++l) {
          const int q = std::min<int>(routing.chunk_path[size_t(l)][size_t(chunk)], cap);
          if (q != p && std::find(cheaper.begin(), cheaper.end(), q) == cheaper.end())
            cheaper.push_back(q);
        }
      } else {
        level_rng.seed(cfg.seed * 1000003ull + uint64_t(step));
        const int l = 1 + int(level_rng() % uint64_t(levels - 1));
        const int q = std::min<int>(routing.chunk_path[size_t(l)][size_t(chunk)], cap);
        if (q != p) cheaper.push_back(q);
      }
      for (int q : cheaper) {
        auto out_c = forward_path(net, x, q, qat.act)
                         .narrow(2, crop, core)
                         .narrow(3, crop, core)
                         .to(torch::kFloat32);
        loss = loss + (cfg.qos_weight * torch::l1_loss(out_c, y) +
                       cfg.distill_weight * torch::l1_loss(out_c, out.detach())) /
                          double(cheaper.size());
      }
    }
    autocast.end();
    if (dist) loss = loss * share;
    opt.zero_grad();
    // A chunk on the global path with the skip frozen has nothing to train.
    if (loss.requires_grad()) loss.backward();
    double l = loss.item<double>();
    if (dist) {
      std::vector<double> extra{l, want_stop ? 1.0 : 0.0};
      const auto ta = Clock::now();
      DYDCA_TRY(all_reduce_grads(*dist, net, extra));
      rep.allreduce_seconds += std::chrono::duration<double>(Clock::now() - ta).count();
      l = extra[0];
      if (extra[1] > 0) {  // some rank was asked to stop: all leave before this step
        rep.stopped_early = true;
        break;
      }
    }
    opt.step();
    if (cfg.max_norm > 0) {  // AdaSR max-norm: bound every filter where slices meet
      torch::NoGradGuard ng;
      for (auto* w : net->conv_weights()) w->renorm_(2, 0, cfg.max_norm);
    }
    loss_ema = step == start ? l : 0.95 * loss_ema + 0.05 * l;
    if (root && !cfg.checkpoint.empty() && cfg.checkpoint_every > 0 &&
        (step + 1) % cfg.checkpoint_every == 0)
      DYDCA_TRY(save_checkpoint(cfg.checkpoint, net, opt, step + 1, qat));
    // Held-out PSNR now and then (a forward pass of the fixed held-out tiles).
    const int every = std::max(25, (total - start) / 20);
    if ((step + 1 - start) % every == 0 || step + 1 == total) {
      torch::NoGradGuard ng;
      last_holdout = psnr_of(run_paths(net, hold_x, hold_path, crop, core, qat.act), hold_y);
      rep.holdout_history.emplace_back(step + 1, last_holdout);
    }
    char detail[96];
    std::snprintf(detail, sizeof detail, "loss %.5f  held-out %.2f dB", loss_ema, last_holdout);
    if (progress && !progress({"train", step + 1 - start, total - start, detail})) {
      want_stop = true;
      if (!dist) {
        rep.stopped_early = true;
        ++step;
        break;
      }
    }
  }
  rep.steps = step;
  rep.final_loss = loss_ema;
  rep.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (root && !cfg.checkpoint.empty())
    DYDCA_TRY(save_checkpoint(cfg.checkpoint, net, opt, step, qat));
  // No QAT step left (qat_fraction 0, or stopped before): post-training scales.
  if (cfg.qat && qat.begin < 0 && !rep.stopped_early) DYDCA_TRY(begin_qat(step));
  rep.qat_steps = qat.begin >= 0 ? step - qat.begin : 0;
  {
    torch::NoGradGuard ng;
    rep.holdout_psnr_after = psnr_of(run_paths(net, hold_x, hold_path, crop, core, qat.act), hold_y);
  }
  if (report) *report = rep;
  if (rep.stopped_early && cfg.stop && cfg.stop->load()) return Status::error("interrupted");
  if (rep.stopped_early && dist) return Status::error("interrupted (a rank was stopped)");
  Model model = net->to_model();
  model.act.path = qat.act;
  return model;
}
}  // namespace

// ---- the LibTorch reference forward ---------------------------------------------

Expected<std::vector<float>> reference_upscale(const Model& model, int path, const uint8_t* lr,
                                               int width, int height, int threads) {
  DYDCA_TRY(check_model_arch(model.arch));
  if (path < 0 || path >= int(model.arch.paths.size())) return Status::error("no such path");
  if (width <= 0 || height <= 0) return Status::error("bad LR size");
  at::set_num_threads(std::max(1, threads));
  torch::NoGradGuard ng;
  Supernet net(model.arch);
  DYDCA_TRY(net->load_model(model));
  auto x = torch::from_blob(const_cast<uint8_t*>(lr), {1, 1, height, width}, torch::kUInt8)
               .to(torch::kFloat32)
               .div_(255.0);
  auto y = (net->forward_frame(x, path) * 255.0).contiguous();
  return std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel());
}

Expected<std::vector<uint8_t>> reference_upscale_u8(const Model& model, int path,
                                                    const uint8_t* lr, int width, int height,
                                                    int threads) {
  DYDCA_ASSIGN_OR_RETURN(auto f, reference_upscale(model, path, lr, width, height, threads));
  std::vector<uint8_t> out(f.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = uint8_t(std::clamp(std::lround(f[i]), 0L, 255L));
  return out;
}

Expected<ActScales> calibrate_act_scales(const Model& model, const std::vector<Frame>& hr,
                                         const std::vector<Frame>& lr, const RoutingMap& routing,
                                         const TrainConfig& config) {
  try {
    DYDCA_TRY(check_model_arch(model.arch));
    if (config.patch < 4 || config.patch > 512 || config.calib_tiles < 1 ||
        config.calib_tiles > 4096 || !(config.calib_percentile > 0 && config.calib_percentile <= 100))
      return Status::error("calibrate: patch, calib_tiles or calib_percentile out of range");
    if (routing.chunk_path.empty()) return Status::error("calibrate: the routing has no path table");
    for (const auto& level : routing.chunk_path)
      for (uint8_t p : level)
        if (p >= model.arch.paths.size()) return Status::error("calibrate: routing names a missing path");
    at::set_num_threads(std::max(1, config.threads));
    Supernet net(model.arch);
    DYDCA_TRY(net->load_model(model));
    TrainConfig cfg = config;
    cfg.arch = model.arch;
    DYDCA_ASSIGN_OR_RETURN(auto sampler, calibration_sampler(hr, lr, routing, cfg));
    const std::vector<int> present = present_chunks(sampler, cfg.only_chunk);
    if (present.empty()) return Status::error("calibrate: no tiles");
    ActScales act;
    act.path = calibrate_paths(net, sampler, routing, present, cfg);
    return act;
  } catch (const std::exception& e) {
    std::string m = e.what();
    return Status::error("calibration failed in LibTorch: " + m.substr(0, std::min<size_t>(m.find('\n'), 300)));
  }
}

Expected<std::vector<float>> reference_upscale_int8(const Model& model, int path,
                                                    const uint8_t* lr, int width, int height,
                                                    int threads) {
  DYDCA_TRY(check_model_arch(model.arch));
  if (path < 0 || path >= int(model.arch.paths.size())) return Status::error("no such path");
  if (width <= 0 || height <= 0) return Status::error("bad LR size");
  const PathSpec& ps = model.arch.paths[size_t(path)];
  if (model.act.path.size() != model.arch.paths.size())
    return Status::error("int8 reference: the model has no activation scales for every path");
  const auto& act = model.act.path[size_t(path)];
  if (act.size() != (ps.width > 0 ? size_t(1 + 2 * ps.depth) : 0))
    return Status::error("int8 reference: path " + std::to_string(path) + " has " +
                         std::to_string(act.size()) + " activation scales");
  for (float a : act)
    if (!std::isfinite(a) || !(a > 0)) return Status::error("int8 reference: bad activation scale");
  at::set_num_threads(std::max(1, threads));
  torch::NoGradGuard ng;
  Supernet net(model.arch);
  DYDCA_TRY(net->load_model(model));
  auto x = torch::from_blob(const_cast<uint8_t*>(lr), {1, 1, height, width}, torch::kUInt8)
               .to(torch::kFloat32)
               .div_(255.0);
  auto y = (net->forward_frame_int8(x, path, act, /*quant_skip=*/false) * 255.0).contiguous();
  return std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel());
}

Expected<std::vector<uint8_t>> reference_upscale_int8_u8(const Model& model, int path,
                                                         const uint8_t* lr, int width, int height,
                                                         int threads) {
  DYDCA_ASSIGN_OR_RETURN(auto f, reference_upscale_int8(model, path, lr, width, height, threads));
  std::vector<uint8_t> out(f.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = uint8_t(std::clamp(std::lround(f[i]), 0L, 255L));
  return out;
}

Expected<std::vector<std::vector<double>>> measure_chunk_path_psnr(
    const Model& model, const std::vector<Frame>& hr, const std::vector<Frame>& lr,
    const RoutingMap& routing, const std::vector<int>& frames, int threads) {
  DYDCA_TRY(check_model_arch(model.arch));
  const int P = int(model.arch.paths.size()), s = model.arch.scale;
  at::set_num_threads(std::max(1, threads));
  torch::NoGradGuard ng;
  Supernet net(model.arch);
  DYDCA_TRY(net->load_model(model));
  ChunkPathError err(routing, s, P);
  for (int f : frames) {
    if (f < 0 || f >= int(lr.size()) || f >= routing.frames) return Status::error("bad frame index");
    const Frame& L = lr[size_t(f)];
    const Frame& H = hr[size_t(f)];
    if (H.width != L.width * s || H.height != L.height * s)
      return Status::error("HR is not scale x LR");
    auto x = torch::from_blob(const_cast<uint8_t*>(L.y.data()), {1, 1, L.height, L.width},
                              torch::kUInt8)
                 .to(torch::kFloat32)
                 .div_(255.0);
    for (int p = 0; p < P; ++p) {
      auto y = (net->forward_frame(x, p) * 255.0).contiguous();
      err.add(f, p, H, y.data_ptr<float>());
    }
  }
  return err.psnr();
}

}  // namespace dydca
