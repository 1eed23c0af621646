// The encoder's operating point (issue 15): how many bits the video gets
// when --bitrate is a total (video + model + routing), and which scale a
// title is encoded at when --scale is auto.
//
//   total rate:  each segment's x264 target = what is left of the budget
//                after the predicted model and routing bytes, corrected by
//                what the earlier segments over- or under-spent.
//   scale auto:  short trial encodes of a sample of the title (a few windows
//                spread over it) at the target rate: plain x264 at the full
//                size, every scale >= 2 with its linear upscaler (cheap), and
//                the networks whose base is close enough to the best
//                (choose_operating_point); the best measured PSNR-Y wins,
//                plain x264 when nothing beats it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dydca/container.h"
#include "dydca/encoder.h"
#include "dydca/media.h"

namespace dydca::detail {

// PSNR-Y difference worth a rate ratio: trials land within a few percent of
// the target, and are compared at the target by this slope (dB per doubling
// of the rate; x264's PSNR-rate curves on the sample clips run 2-3 dB per
// doubling at the full size, less for LR + SR: 2 is a middle). The segment's
// "does the network pay for its bits" check uses it too.
inline constexpr double kDbPerDoubling = 2.0;

// How encode_segmented runs beyond EncodeParams (set by the trials and the
// plain-x264 decision, never by users).
struct EncodeMode {
  // x264 at the full size with a no-op model (scale 1, global path = the
  // identity): what ships when nothing beats plain x264.
  bool plain = false;
  // The chosen scale with the linear upscaler and no training: every
  // segment ships its linear alternative (a zero body and the best of
  // bicubic, lanczos and the least-squares 5x5, a few hundred bytes). What
  // --scale auto picks where the scale's network alone would take more than
  // half the rate, and what its trials measure then.
  bool linear = false;
  // Trials: charge the title's predicted model rate rather than the
  // sample's own full model (a sample of a few seconds would pay a whole
  // model in that time).
  double model_kbps_hint = -1;
  std::string work_dir;  // "" = EncodeParams' work folder
};

// The architecture of an EncodeMode::linear title: only the global path (no
// body to ship as zeros: ~140 bytes less per segment than the network's
// zeroed architecture), one QoS level.
ModelArch linear_arch(int scale);

// The network that changes nothing: scale 1, only the global path, whose
// 5x5 skip is the identity (exact in 8 bits).
Model identity_model();

// Bytes of a full model blob of `arch` in `format`. Pseudo-random weights of
// the trained models' spread: trained int8 weights compress no better.
int64_t predict_model_bytes(const ModelArch& arch, WeightFormat format);

// Model kb/s a title of `duration_s` will carry: one full model, then an
// update per segment (about half a full model each, measured on the sample
// clips with warm starts).
double predict_title_model_kbps(int64_t full_model_bytes, double duration_s,
                                double segment_seconds);

// The title's predicted model kb/s for the network of EncodeParams at `scale`.
double predict_network_kbps(const EncodeParams& p, int scale, double title_seconds);
// A network that would take more than half the total rate is not trained:
// the scale ships its linear upscaler (EncodeMode::linear), in --scale auto
// and, with --model-must-pay, at a fixed scale.
bool network_too_costly(double model_kbps, double total_kbps);

// Total-rate control over segments.
class TotalRate {
 public:
  // model_kbps_hint >= 0: charge this model rate instead of the measured
  // model bytes (trials).
  TotalRate(double total_kbps, int64_t full_model_bytes, double model_kbps_hint = -1);
  // x264 kb/s for the next segment, of `seconds`; an error when the budget
  // cannot pay the model.
  Expected<int> video_kbps(double seconds) const;
  // What a finished segment spent.
  void add(double seconds, int64_t video_bytes, int64_t model_bytes, int64_t routing_bytes);
  // Model bytes the controller expects for the next segment.
  int64_t predicted_model_bytes() const;
  // Bits the next segment, of `seconds`, should spend in all (its share of
  // the budget plus what the earlier segments left or overspent).
  double target_bits(double seconds) const;
  bool hinted() const { return model_kbps_hint_ >= 0; }
  // The routing rate to expect before any segment is measured (default: 1 %
  // of the total).
  void set_routing_guess_kbps(double kbps) { routing_kbps_ = kbps; }

 private:
  double total_kbps_;
  int64_t full_model_bytes_;
  double model_kbps_hint_;
  double seconds_ = 0;
  double spent_bits_ = 0;
  int segments_ = 0;
  int64_t last_model_bytes_ = -1;
  double routing_kbps_ = -1;
};

// A sample of the title for the trials: up to `windows` windows of
// `window_s` seconds spread over it (the whole clip when it is short),
// written to `path` as y4m. Returns the sample's duration in seconds.
Expected<double> write_sample(const std::string& input, const std::string& path,
                              double title_seconds, double sample_seconds, int threads,
                              const ProgressFn& progress);

// Runs one trial encode (encode_segmented on the sample).
using TrialRunner =
    std::function<Expected<EncodeReport>(const EncodeParams&, const EncodeMode&)>;

struct OperatingPoint {
  int scale = 2;            // chosen (1..4); with plain: 1
  bool plain = false;       // plain x264 at the full size
  bool linear = false;      // the scale with its linear upscaler (EncodeMode::linear)
  std::string downscale = "lanczos";  // the LR's filter (--downscale auto chooses it)
  int total_kbps = 0;       // the target of the encode (CRF mode: from the plain trial)
  std::vector<ScaleTrial> trials;
  std::string decision;
};

// --scale auto. `title_seconds` is the input's duration (0 = unknown).
Expected<OperatingPoint> choose_operating_point(const EncodeParams& p, double title_seconds,
                                                int hr_width, int hr_height,
                                                const TrialRunner& run,
                                                const ProgressFn& progress);

}  // namespace dydca::detail
