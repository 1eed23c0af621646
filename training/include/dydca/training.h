// dydca training (server side, LibTorch inside, no torch types here): overfit
// ONE dynamic shared-weight SR network to one video, every tile through its
// content chunk's path; plus the multi-model baselines and the LibTorch
// reference forward used as the correctness oracle for the client runtime.
//
// Usage:
//   dydca::TrainConfig cfg = dydca::TrainConfig::preset("balanced", arch, clip_seconds);
//   dydca::TrainReport report;
//   auto model = dydca::train_dynamic(hr, lr_decoded, routing, cfg, &report, progress);
//   // model->tensors are fp32, named as in dydca/model.h; hand it to the container.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dydca/log.h"
#include "dydca/media.h"
#include "dydca/model.h"
#include "dydca/routing.h"
#include "dydca/status.h"

namespace dydca {

// Data-parallel training (c10d: TCPStore + ProcessGroupGloo). Every rank runs
// train_dynamic on the same frames and routing with the same config; each
// step, rank r computes the gradient of its share of the global batch
// (patches [r*B/W, (r+1)*B/W)) and the gradients are summed over the ranks,
// so the result equals a one-process run of the same global batch and seed
// up to float rounding. Rank 0 hosts the store and owns the checkpoint; its
// starting state (fresh or resumed) is sent to the others.
struct DistConfig {
  int world_size = 1;  // 1 = no distribution
  int rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double timeout_s = 120;  // joining, and each collective: then a clear error
  std::string interface;   // network interface for Gloo ("" = the one reaching the master)
};

// One c10d group for a whole multi-segment encode (data-parallel mode): the
// ranks connect once, and every train_dynamic call given the session uses
// it (a store hosted by rank 0 cannot be torn down and rebuilt on the same
// port between segments while a faster rank already knocks).
class DistSession {
 public:
  static Expected<std::shared_ptr<DistSession>> connect(const DistConfig& config);
  ~DistSession();
  int rank() const;
  int world_size() const;
  // Returns when every rank has called it with this name. Rank 0 waits at most
  // the config's timeout for the others; the others wait for rank 0 as long
  // as it lives (it may be evaluating the previous segment), and fail when
  // its store goes away.
  Status barrier(const std::string& name);

  struct Impl;  // private to training/
  Impl& impl() { return *impl_; }

 private:
  explicit DistSession(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct TrainConfig {
  ModelArch arch;
  int steps = 1000;       // upper bound; time_budget_s may stop earlier
  // LR patches per step. 8, not 16: at an equal time budget more, smaller
  // steps buy more quality (training/README.md, "Batch size").
  int batch = 8;
  int patch = 48;         // LR core side of a patch
  double lr = 1e-3;       // Adam, cosine schedule down to lr_min
  double lr_min = 1e-5;
  // AdaSR / DySR: every step also trains, for each patch, a randomly chosen
  // cheaper QoS level's path (sandwich rule), with this weight, and distils
  // it from the assigned path's output (detached) with distill_weight.
  double qos_weight = 0.5;
  double distill_weight = 0.5;
  // Train the 5x5 global path (skip) too. Off: it stays the exact bicubic
  // kernel, so path 0 is bicubic and the routing can always fall back to it.
  bool train_skip = false;
  // The frozen global path: the exact bicubic kernel (false), or the 5x5
  // linear filter + bias per output phase that fits this clip's HR from its
  // decoded LR best in the least-squares sense (fit_global_path; true). The
  // fit is done before training (also on a warm start: each segment gets its
  // own) and then frozen like bicubic, so the body learns a residual over the
  // best linear upscaler of the clip, and path 0 is at least as good as
  // bicubic on the training frames by construction (bicubic is one candidate).
  bool fit_skip = false;
  // AdaSR's stabilisers, off by default (measured in training/README.md):
  bool all_levels = false;  // every cheaper level's path each step, not one random one
  double progressive = 0;   // first fraction of the steps grows the allowed path cheap -> rich
  double max_norm = 0;      // > 0: L2 norm of every conv filter clipped to this after each step
  uint64_t seed = 1;
  int threads = 2;
  bool bf16 = false;           // bf16 autocast (AMX on Sapphire Rapids) for forward/backward
  bool channels_last = false;  // NHWC activations and weights in LibTorch
  double time_budget_s = 0;  // 0 = none; otherwise the cosine schedule follows time
  std::string checkpoint;    // file to resume from and save to ("" = none)
  int checkpoint_every = 200;
  const std::atomic<bool>* stop = nullptr;  // set to request a clean early stop
  // Train on the tiles of this chunk only (-1 = all chunks, round robin): the
  // multi-model baselines train one model per content chunk or per segment.
  int only_chunk = -1;
  // Warm start (a segment's network from the previous segment's shipped
  // weights): the network starts from this model instead of the seeded
  // initialisation; Adam starts fresh. Same architecture as `arch`. A
  // checkpoint, when one exists, still wins.
  const Model* init = nullptr;
  DistConfig dist;
  // int8 (issue 16; the rules are model.h's, above ActScales). qat: the last
  // qat_fraction of the steps fine-tune the network through the int8 forward
  // (fake quantisation with the runtime's rounding, straight-through
  // gradients, every path of the sandwich at its own activation scales). The
  // learning rate follows the run's cosine on (at 85 % of it: ~6 % of lr,
  // down to lr_min), so QAT takes no step from the fp32 training's schedule;
  // qat_lr > 0 restarts a cosine from qat_lr for the QAT steps instead
  // (measured in training/README.md). The activation scales are calibrated once
  // when QAT starts (calibrate_act_scales, on calib_tiles tiles per path) and
  // kept fixed; the weight scales follow the weights (max/127 per output
  // channel, as the int8 blob writes them; the skip's too). With qat the
  // model returned has Model::act filled (even when no QAT step was left);
  // without, act stays empty. Off by default here; the encoder turns it on
  // when it ships int8 weights (--precision int8).
  bool qat = false;
  double qat_fraction = 0.15;
  double qat_lr = 0;
  int calib_tiles = 64;
  // How a calibrated activation scale is chosen (calibrate_act_scales). A
  // percentile of |v| (100 = the max) is the usual alternative; measured in
  // training/README.md.
  enum class Calibration { kMse, kPercentile };
  Calibration calibration = Calibration::kMse;
  double calib_percentile = 99.99;
  // With a session (dist.world_size > 1), training uses its group instead of
  // connecting, after a barrier named session_tag; keys it shares are
  // prefixed with the tag (one tag per training run of the session).
  std::shared_ptr<DistSession> session;
  std::string session_tag;

  // fast / balanced / best: steps and time budget scaled with the clip length.
  static Expected<TrainConfig> preset(const std::string& name, const ModelArch& arch,
                                      double clip_seconds);
};

struct TrainReport {
  int steps = 0;
  double seconds = 0;
  double final_loss = 0;
  bool resumed = false;
  bool stopped_early = false;
  // PSNR-Y (dB) on a held set of tiles of the assigned paths, before and after.
  double holdout_psnr_before = 0;
  double holdout_psnr_after = 0;
  double allreduce_seconds = 0;
  // Held-out PSNR-Y during training: (step, dB), every ~5 % of the steps.
  std::vector<std::pair<int, double>> holdout_history;  // distributed: time in the gradient all-reduce (incl. waiting)
  // With qat (holdout_psnr_after and the history are then the int8 forward's
  // from the calibration on): the held-out PSNR-Y when QAT started, in fp32 and
  // in int8 with the freshly calibrated scales (post-training quantisation).
  int qat_steps = 0;
  double holdout_psnr_fp32_at_qat = 0;
  double holdout_psnr_int8_at_qat = 0;
};

// Trains the dynamic network. routing.chunk_path must be filled (level 0 is
// each chunk's path; higher levels give the cheaper paths trained alongside).
// hr frames are the padded HR (multiple of 2*scale), lr the decoded LR.
// Progress: stage "train", one unit per step. Deterministic for a given seed
// and thread count.
Expected<Model> train_dynamic(const std::vector<Frame>& hr, const std::vector<Frame>& lr,
                              const RoutingMap& routing, const TrainConfig& config,
                              TrainReport* report = nullptr, const ProgressFn& progress = {});

// The least-squares global path (TrainConfig::fit_skip): for each of the
// scale^2 output phases, the 5x5 taps on the edge-replicated LR luma and a
// bias that minimise the squared error to the HR luma over (a sample of) the
// frames, ridge-regularised toward the bicubic kernel. Returns scale^2*25
// weights then scale^2 biases, in the network's units (luma / 255). Plain
// C++ (double normal equations), deterministic. ridge: the regularisation
// toward bicubic relative to the mean diagonal of the normal equations (on
// flat content the system is ill-conditioned: a larger ridge keeps the taps
// small enough for an int8 blob).
Expected<std::vector<float>> fit_global_path(const std::vector<Frame>& hr,
                                             const std::vector<Frame>& lr, int scale,
                                             double ridge = 1e-5);
// The same for several ridges: the normal equations are accumulated once
// (the pass over the frames) and solved once per ridge, in `ridges` order.
Expected<std::vector<std::vector<float>>> fit_global_paths(const std::vector<Frame>& hr,
                                                          const std::vector<Frame>& lr, int scale,
                                                          const std::vector<double>& ridges);

// A fixed global path: lanczos with `lobes` lobes (2 or 3), separable, cut
// to the 5x5 support and renormalised per phase; scale^2*25 weights (no
// biases), pixel centres as in bicubic_skip_kernel. Lanczos 3 cut to 5 taps
// is close to swscale's SWS_LANCZOS, the "LR + lanczos" of the bench.
std::vector<float> lanczos_skip_kernel(int scale, int lobes);

// A freshly initialised model (skip = bicubic, tail = 0: the output starts as
// bicubic upscaling). Deterministic for a seed.
Expected<Model> init_model(const ModelArch& arch, uint64_t seed = 1);

// LibTorch reference forward of path `path` on a whole LR luma plane (edge-
// replicated borders, model.h): HR luma in [0,255] as float, before rounding.
Expected<std::vector<float>> reference_upscale(const Model& model, int path, const uint8_t* lr,
                                               int width, int height, int threads = 2);
// The same, rounded and clamped to 8 bits.
Expected<std::vector<uint8_t>> reference_upscale_u8(const Model& model, int path,
                                                    const uint8_t* lr, int width, int height,
                                                    int threads = 2);

// int8 (model.h, ActScales). Post-training calibration of the activation
// scales of every path: tiles of the chunks that run the path at some QoS
// level (all chunks when none does), config.calib_tiles of them (config.patch
// LR pixels plus the receptive halo, config.seed), through the int8 forward
// with the quantised weights; tensor by tensor in model.h order, each with
// the tensors before it already quantised, the scale that minimises the
// tensor's mean squared quantisation error over 64 clipping ranges from its
// max |v| down to max/16 (config.calibration kMse), or the one whose range
// ends at config.calib_percentile of |v|. The global path (0, 0) gets no scales.
Expected<ActScales> calibrate_act_scales(const Model& model, const std::vector<Frame>& hr,
                                         const std::vector<Frame>& lr, const RoutingMap& routing,
                                         const TrainConfig& config);

// LibTorch reference of the int8 runtime (model.h, ActScales; model.act must
// be filled): path `path` on a whole LR luma plane, HR luma in [0,255] as
// float before rounding. Integer codes are summed exactly by fp32
// convolutions and requantised with model.h's formula in its order, so the
// runtime may differ by one code where it folds the multipliers (exact
// ties). The skip's weights are used as they are (the int8 blob has already
// quantised them in a shipped model).
Expected<std::vector<float>> reference_upscale_int8(const Model& model, int path,
                                                    const uint8_t* lr, int width, int height,
                                                    int threads = 2);
Expected<std::vector<uint8_t>> reference_upscale_int8_u8(const Model& model, int path,
                                                         const uint8_t* lr, int width, int height,
                                                         int threads = 2);

// PSNR-Y of every (chunk, path) pair on the given frames: psnr[c][p]; used to
// refine the chunk -> path assignment after training.
Expected<std::vector<std::vector<double>>> measure_chunk_path_psnr(
    const Model& model, const std::vector<Frame>& hr, const std::vector<Frame>& lr,
    const RoutingMap& routing, const std::vector<int>& frames, int threads = 2);

}  // namespace dydca
