#include "operating_point.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <chrono>
#include <random>

#include "dydca/log.h"
#include "dydca/training.h"
#include "stages.h"

namespace dydca::detail {

namespace {

// A scale must beat plain x264 on the trials by this much to be chosen.
constexpr double kMarginDb = 0.02;
// Trials train this many steps at most (the same for every scale).
constexpr int kTrialSteps = 400;  // at the default batch of 8 (~0.9x the time of 300 at 16)
// The headroom of the first network trial (see below).
constexpr double kFirstNetworkHeadroomDb = 2.0;
// Network trials start only while the trials have used less than this share
// of the preset's training time budget for the title (balanced: 14x the
// duration, so 5.6x): a network title's final encode trains for the whole
// budget, and trials plus encode stay within ~20x the duration. Only short
// titles reach it (a 1.5-s clip spent 20 s on two network trials that both
// fell back to linear).
constexpr double kTrialShareOfTraining = 0.4;

}  // namespace

ModelArch linear_arch(int scale) {
  ModelArch a;
  a.scale = scale;
  a.channels = 1;
  a.inner = 1;
  a.blocks = 0;
  a.paths = {{0, 0}};
  return a;
}

Model identity_model() {
  auto m = init_model(linear_arch(1));  // the tensors of the architecture, then set by hand
  Model out = m ? std::move(*m) : Model{};
  for (Tensor& t : out.tensors) {
    std::fill(t.data.begin(), t.data.end(), 0.0f);
    if (t.name == "skip.weight") t.data[12] = 1.0f;  // centre tap of the 5x5
  }
  return out;
}

int64_t predict_model_bytes(const ModelArch& arch, WeightFormat format) {
  auto m = init_model(arch);  // the tensors of the architecture; values replaced below
  if (!m) return 0;
  std::mt19937 rng(12345);
  for (Tensor& t : m->tensors) {
    const bool bias = t.shape.size() == 1;
    int fan_in = 1;
    for (size_t d = 1; d < t.shape.size(); ++d) fan_in *= t.shape[d];
    std::normal_distribution<float> nd(0.0f, bias ? 0.01f : std::sqrt(2.0f / float(fan_in)));
    for (float& v : t.data) v = nd(rng);
  }
  m->act = {};
  ModelBlobOptions o;
  o.weights = format;
  auto blob = serialize_model(*m, o);
  return blob ? int64_t(blob->size()) : 0;
}

double predict_title_model_kbps(int64_t full_model_bytes, double duration_s,
                                double segment_seconds) {
  const double d = duration_s > 0 ? duration_s : segment_seconds;
  const double segments = std::max(1.0, std::ceil(d / segment_seconds - 0.01));
  const double bytes = full_model_bytes * (1.0 + 0.5 * (segments - 1));
  return bytes * 8 / 1000 / d;
}

double predict_network_kbps(const EncodeParams& p, int scale, double title_seconds) {
  const auto parsed = parse_precision(p.precision);  // checked by check_params
  const WeightFormat format = parsed ? *parsed : WeightFormat::kInt8;
  return predict_title_model_kbps(predict_model_bytes(arch_for(p, scale), format), title_seconds,
                                  p.segment_seconds);
}

bool network_too_costly(double model_kbps, double total_kbps) {
  return model_kbps > 0.5 * total_kbps;
}

TotalRate::TotalRate(double total_kbps, int64_t full_model_bytes, double model_kbps_hint)
    : total_kbps_(total_kbps), full_model_bytes_(full_model_bytes),
      model_kbps_hint_(model_kbps_hint) {}

int64_t TotalRate::predicted_model_bytes() const {
  return last_model_bytes_ >= 0 ? last_model_bytes_ : full_model_bytes_;
}

Expected<int> TotalRate::video_kbps(double seconds) const {
  seconds = std::max(seconds, 1e-3);
  // Routing: the last segment's rate; before any, 1 % of the total (a frame
  // of 32-pixel tiles costs tens of bytes; the correction takes the rest).
  const double routing_kbps = routing_kbps_ >= 0 ? routing_kbps_ : 0.01 * total_kbps_;
  const double model_bits = model_kbps_hint_ >= 0 ? model_kbps_hint_ * 1000 * seconds
                                                  : double(predicted_model_bytes()) * 8;
  const double side_kbps = model_bits / 1000 / seconds + routing_kbps;
  const double plain_kbps = total_kbps_ - side_kbps;  // this segment alone
  if (plain_kbps < 0.2 * total_kbps_) {
    char msg[200];
    std::snprintf(msg, sizeof msg,
                  "--bitrate %.0f kb/s is too low for the model at this scale (model and routing "
                  "take %.1f kb/s)",
                  total_kbps_, side_kbps);
    return Status::error(msg);
  }
  // What the earlier segments over- or under-spent is paid back over this
  // one, at most 30 % either way (x264 lands within a few percent).
  const double owed_bits = total_kbps_ * 1000 * seconds_ - spent_bits_;
  const double v = std::clamp(plain_kbps + owed_bits / 1000 / seconds, 0.7 * plain_kbps,
                              1.3 * plain_kbps);
  return std::max(1, int(std::lround(v)));
}

double TotalRate::target_bits(double seconds) const {
  return total_kbps_ * 1000 * (seconds_ + seconds) - spent_bits_;
}

void TotalRate::add(double seconds, int64_t video_bytes, int64_t model_bytes,
                    int64_t routing_bytes) {
  const double model_bits =
      model_kbps_hint_ >= 0 ? model_kbps_hint_ * 1000 * seconds : double(model_bytes) * 8;
  spent_bits_ += double(video_bytes + routing_bytes) * 8 + model_bits;
  seconds_ += seconds;
  ++segments_;
  last_model_bytes_ = model_bytes;
  if (seconds > 0) routing_kbps_ = double(routing_bytes) * 8 / 1000 / seconds;
}

Expected<double> write_sample(const std::string& input, const std::string& path,
                              double title_seconds, double sample_seconds, int threads,
                              const ProgressFn& progress) {
  DYDCA_ASSIGN_OR_RETURN(auto reader, VideoReader::open(input, threads));
  const VideoInfo info = reader.info();
  const double fps = info.frame_rate.to_double();
  DYDCA_ASSIGN_OR_RETURN(auto writer,
                         Y4mWriter::open(path, info.width, info.height, info.frame_rate));
  const int total = std::max(1, int(std::lround(sample_seconds * fps)));
  // Short titles: the start of the clip; longer ones: three windows at the
  // middles of its thirds (a film's opening titles are not its content).
  int windows = title_seconds > 2.5 * sample_seconds ? 3 : 1;
  int written = 0;
  Frame f;
  for (int w = 0; w < windows; ++w) {
    const int n = total / windows + (w < total % windows ? 1 : 0);
    if (windows > 1) {
      const double start = title_seconds * (w + 0.5) / windows - 0.5 * n / fps;
      if (Status s = reader.seek(std::max(0.0, start)); !s) {
        log_info("sample: " + s.message() + "; the trials use the start of the input");
        windows = 1;  // the reader is where it was: go on reading from there
      }
    }
    for (int i = 0; i < n || (windows == 1 && written < total); ++i) {
      DYDCA_ASSIGN_OR_RETURN(auto got, reader.read(f));
      if (!got) break;
      DYDCA_TRY(writer.write(f));
      ++written;
      if (progress && !progress({"sample", written, total})) return Status::error("interrupted");
      if (written >= total) break;
    }
    if (written >= total) break;
  }
  DYDCA_TRY(writer.close());
  if (written == 0) return Status::error(input + ": no video frames");
  return written / fps;
}

Expected<OperatingPoint> choose_operating_point(const EncodeParams& p, double title_seconds,
                                                int hr_width, int hr_height,
                                                const TrialRunner& run,
                                                const ProgressFn& progress) {
  namespace fs = std::filesystem;
  OperatingPoint op;
  const std::string dir = p.output + ".trials" + (p.dist.rank > 0 ? "-r" + std::to_string(p.dist.rank) : "");
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (!fs::create_directories(dir, ec) && ec)
    return Status::error("cannot create " + dir + ": " + ec.message());
  struct Cleanup {
    std::string d;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(d, e);
    }
  } cleanup{dir};

  // Up to 6 s: a title that short is its own sample (a part of it misled the
  // choice: on a 3.2-s screen clip the first 2 s favoured x2, the whole clip
  // x264). The network trials' cost hardly grows with the sample (fixed
  // steps); x264 and the linear trials' does, a little.
  const double sample_target = title_seconds > 0 ? std::min(title_seconds, 6.0) : 6.0;
  const std::string sample = dir + "/sample.y4m";
  DYDCA_ASSIGN_OR_RETURN(auto sample_s, write_sample(p.input, sample, title_seconds, sample_target,
                                                     p.threads, progress));

  EncodeParams q = p;
  q.input = sample;
  q.max_frames = 0;
  q.resume = false;
  q.dist = DistConfig{};  // every rank runs the same trials on its own
  q.stop = p.stop;
  q.train_steps = p.train_steps > 0 ? std::min(p.train_steps, kTrialSteps) : kTrialSteps;
  // --downscale auto: lanczos first; area is tried at the best linear scale
  // below, and the better filter makes every later trial and the title.
  const bool choose_filter = p.downscale == "auto";
  q.downscale = resolved_downscale(p.downscale);
  op.downscale = q.downscale;
  auto trial = [&](int scale, bool plain, bool linear, double model_hint) -> Expected<EncodeReport> {
    q.scale = scale;
    // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on
    // "literal" + std::string chains here.
    std::string name = "x264";
    if (!plain) {
      name = "x";
      name += std::to_string(scale);
    }
    q.output = dir + "/trial-" + name + (linear ? "-linear-" : "-") + q.downscale + ".mkv";
    if (linear) name += " linear";
    q.checkpoint = q.output + ".parts";
    EncodeMode mode;
    mode.plain = plain;
    mode.linear = linear;
    mode.model_kbps_hint = model_hint;
    const std::string tag = "trial " + name;
    ProgressFn tp = [&](const Progress& pr) {
      const std::string stage = tag + " " + std::string(pr.stage);
      return progress ? progress(Progress(stage, pr.done, pr.total, pr.detail)) : true;
    };
    auto r = run(q, mode);
    if (!r) return r.status().with_context(tag);
    return r;
  };
  auto adjusted = [&](const ScaleTrial& t) {
    return t.psnr_y + kDbPerDoubling * std::log2(double(op.total_kbps) / std::max(t.total_kbps, 1e-3));
  };

  // Plain x264 at the full size: the anchor (in CRF mode it also sets the
  // rate every scale is tried at).
  const auto t0 = std::chrono::steady_clock::now();
  q.bitrate_kbps = p.bitrate_kbps;
  DYDCA_ASSIGN_OR_RETURN(auto plain, trial(1, true, false, -1));
  ScaleTrial pt;
  pt.scale = 0;
  pt.total_kbps = plain.video_kbps + plain.model_kbps + plain.routing_kbps;
  pt.psnr_y = plain.levels.empty() ? 0 : plain.levels[0].psnr_y;
  pt.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  op.total_kbps = p.bitrate_kbps > 0 ? p.bitrate_kbps : std::max(1, int(std::lround(pt.total_kbps)));
  op.trials.push_back(pt);
  q.bitrate_kbps = op.total_kbps;

  // 1. Every scale >= 2 with its linear upscaler: x264 and a least-squares
  //    fit, no training (a second or two each).
  //    With --downscale auto, area at the best linear scale too.
  // 2. Network trials (400 training steps each, the bulk of the trials' time),
  //    best reach first: a scale's base is its linear trial (x1's: plain
  //    x264, the identity), less what the network's predicted model bits
  //    would have bought the video (its cost). A network is tried only when
  //    its base less its cost plus the headroom could still beat the best
  //    trial so far, and never when its cost alone exceeds the headroom; the
  //    headroom is the largest gain a network has measured over its own base
  //    on this title (before paying its bits), plus 0.5 dB, and at least
  //    1 dB (2 dB before any network was measured). Scales whose network
  //    alone would take more than half the rate get no network trial.
  int best = -1;
  double best_db = adjusted(pt) + kMarginDb;
  std::string skipped;
  auto consider = [&](const ScaleTrial& st) {
    op.trials.push_back(st);
    if (adjusted(st) > best_db) {
      best_db = adjusted(st);
      best = int(op.trials.size()) - 1;
    }
  };
  auto measure = [&](int s, const EncodeReport& r, bool shipped_linear, double model_kbps,
                     std::chrono::steady_clock::time_point t) {
    ScaleTrial st;
    st.scale = s;
    st.linear = shipped_linear;
    st.total_kbps = r.video_kbps + (shipped_linear ? r.model_kbps : model_kbps) + r.routing_kbps;
    st.psnr_y = r.levels.empty() ? 0 : r.levels[0].psnr_y;
    st.lanczos_psnr_y = s > 1 ? r.lanczos_psnr_y : 0;
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    st.downscale = q.downscale;
    return st;
  };
  struct Candidate {
    int scale;
    double model_kbps;
    double base_db;  // adjusted PSNR-Y of what the network must beat
    // What the model's bits would have bought the video (the network trial
    // gives x264 that much less): its gain must first make up for this.
    double model_cost_db;
  };
  std::vector<Candidate> nets;
  for (int s : p.scale_candidates) {
    if (s < 1 || s > 4) continue;
    if (hr_width < 16 * s || hr_height < 16 * s) {
      skipped += " x" + std::to_string(s) + " (frame too small)";
      continue;
    }
    const double model_kbps = predict_network_kbps(p, s, title_seconds);
    double base_db = adjusted(pt);
    if (s >= 2) {
      const auto t = std::chrono::steady_clock::now();
      DYDCA_ASSIGN_OR_RETURN(auto r, trial(s, false, true, -1));
      const ScaleTrial st = measure(s, r, true, 0, t);
      consider(st);
      base_db = adjusted(st);
    }
    if (network_too_costly(model_kbps, op.total_kbps)) {
      char why[96];
      std::snprintf(why, sizeof why, " x%d network (its model alone is %.0f kb/s)", s, model_kbps);
      skipped += why;
      continue;
    }
    const double cost_db = kDbPerDoubling *
                           std::log2(op.total_kbps / std::max(op.total_kbps - model_kbps, 1e-3));
    nets.push_back({s, model_kbps, base_db, cost_db});
  }
  // The downscaling filter, measured per title where it matters most: area
  // at the best linear scale. Lanczos keeps more of the detail x264 and the
  // upscaler can use (+0.05-0.5 dB at equal bytes on the sample clips), but
  // not on every picture (docs/decisions.md).
  if (choose_filter) {
    int lin = -1;
    for (size_t i = 0; i < op.trials.size(); ++i) {
      const ScaleTrial& t = op.trials[i];
      if (t.scale >= 2 && (lin < 0 || adjusted(t) > adjusted(op.trials[size_t(lin)]))) lin = int(i);
    }
    if (lin >= 0) {
      const ScaleTrial lz = op.trials[size_t(lin)];
      q.downscale = "area";
      const auto t = std::chrono::steady_clock::now();
      DYDCA_ASSIGN_OR_RETURN(auto r, trial(lz.scale, false, true, -1));
      const ScaleTrial st = measure(lz.scale, r, true, 0, t);
      consider(st);
      if (adjusted(st) > adjusted(lz)) {
        for (Candidate& c : nets)
          if (c.scale == lz.scale) c.base_db = adjusted(st);
      } else {
        q.downscale = "lanczos";
      }
    }
  }
  std::stable_sort(nets.begin(), nets.end(),
                   [](const Candidate& a, const Candidate& b) {
                     return a.base_db - a.model_cost_db > b.base_db - b.model_cost_db;
                   });
  double trial_budget_s = 0;  // 0: none (fixed --steps, or an unknown duration)
  if (p.train_steps == 0 && title_seconds > 0) {
    auto tc = TrainConfig::preset(p.quality, arch_for(p, 2), title_seconds);
    if (tc && tc->time_budget_s > 0) trial_budget_s = kTrialShareOfTraining * tc->time_budget_s;
  }
  double max_gain = 0;
  bool measured = false;
  for (const Candidate& c : nets) {
    const double spent =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (trial_budget_s > 0 && spent > trial_budget_s) {
      char why[128];
      std::snprintf(why, sizeof why, " x%d network (the trials' %.0f s are spent)", c.scale,
                    trial_budget_s);
      skipped += why;
      continue;
    }
    // Before any network was measured on this title, the a-priori
    // headroom: a network's largest gain over its linear base seen so far
    // (+1.6 dB, an animated clip at x2), rounded up. A network whose bits
    // take more from the video than the headroom can give back is not worth
    // its training (a 1.5-s title at 150 kb/s), nor one whose base less that
    // cost is too far under the best (plain x264's x1 post-filter 4 dB under
    // an x3 linear trial).
    const double headroom = measured ? std::max(1.0, max_gain + 0.5) : kFirstNetworkHeadroomDb;
    const double reach = c.base_db - c.model_cost_db + headroom;
    if (reach < best_db || c.model_cost_db > headroom) {
      char why[128];
      if (c.model_cost_db > headroom)
        std::snprintf(why, sizeof why, " x%d network (its model costs the video %.2f dB)", c.scale,
                      c.model_cost_db);
      else
        std::snprintf(why, sizeof why,
                      " x%d network (its base less its model's cost is %.2f dB under the best)",
                      c.scale, best_db - (c.base_db - c.model_cost_db));
      skipped += why;
      continue;
    }
    const auto t = std::chrono::steady_clock::now();
    DYDCA_ASSIGN_OR_RETURN(auto r, trial(c.scale, false, false, c.model_kbps));
    // A trial whose every segment shipped the linear upscaler (a network
    // that did not pay) costs its own few hundred bytes, not the predicted
    // network's rate.
    const bool shipped_linear = all_segments_linear(r);
    const ScaleTrial st = measure(c.scale, r, shipped_linear, c.model_kbps, t);
    consider(st);
    // The network's own gain, before its bits are paid (a network that fell
    // back gained less than its cost: what its trial shows, about 0, stands).
    max_gain = std::max(max_gain, adjusted(st) - c.base_db + (shipped_linear ? 0 : c.model_cost_db));
    measured = true;
  }
  char line[256];
  if (best < 0) {
    op.plain = true;
    op.scale = 1;
    std::snprintf(line, sizeof line,
                  "plain x264 at the full size: no scale beat it on a %.1f s sample at %d kb/s "
                  "(x264 %.2f dB)",
                  sample_s, op.total_kbps, pt.psnr_y);
  } else {
    const ScaleTrial& b = op.trials[size_t(best)];
    op.scale = b.scale;
    op.linear = b.linear;
    op.downscale = b.downscale;
    std::snprintf(line, sizeof line,
                  "x%d%s: %.2f dB vs x264 at the full size %.2f dB on a %.1f s sample at %d kb/s",
                  b.scale, b.linear ? " with the linear upscaler" : "", b.psnr_y, pt.psnr_y,
                  sample_s, op.total_kbps);
  }
  op.decision = line;
  if (!skipped.empty()) op.decision += "; not tried:" + skipped;
  return op;
}

}  // namespace dydca::detail
