// `dydca bench`: the runs (probe, x264 ladder, dydca, baselines, decoders,
// crop). Analysis helpers are here too; reports and plots in rd_report.cpp,
// the crop PNG in rd_crops.cpp. See rd_bench.h.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "dydca/atomic_file.h"
#include "dydca/encoder.h"
#include "dydca/media.h"
#include "dydca/metrics.h"
#include "dydca/synthetic.h"
#include "rd_bench.h"
#ifdef DYDCA_BENCH_HAVE_DECODER
#include "dydca/decoder.h"
#endif

namespace dydca::bench {
namespace fs = std::filesystem;

// ---- analysis ---------------------------------------------------------------------

std::vector<RdSample> upper_hull(std::vector<RdSample> pts) {
  // The best point of each nominal rate (every scale targeted the same rates;
  // their measured rates differ only by x264's rate-control error).
  std::map<int, RdSample> best;
  for (const auto& s : pts) {
    if (!(s.total_kbps > 0) || !std::isfinite(s.psnr_y)) continue;
    auto it = best.find(s.rate);
    if (it == best.end() || s.psnr_y > it->second.psnr_y) best[s.rate] = s;
  }
  std::vector<RdSample> hull;
  for (const auto& [rate, s] : best) hull.push_back(s);
  std::sort(hull.begin(), hull.end(), [](const RdSample& a, const RdSample& b) {
    return a.total_kbps < b.total_kbps;
  });
  // A point that costs more than another one and is worse is not on the
  // envelope (drop it while 4 points are left for BD).
  for (size_t i = 1; i < hull.size() && hull.size() > 4;) {
    if (hull[i].psnr_y <= hull[i - 1].psnr_y)
      hull.erase(hull.begin() + long(i));
    else
      ++i;
  }
  return hull;
}

double psnr_at_rate(const std::vector<RdSample>& points, double kbps) {
  std::vector<std::pair<double, double>> v;
  for (const auto& s : points)
    if (s.total_kbps > 0) v.push_back({std::log10(s.total_kbps), s.psnr_y});
  if (v.size() < 2 || !(kbps > 0)) return NAN;
  std::sort(v.begin(), v.end());
  const double x = std::log10(kbps);
  size_t i = 1;
  while (i + 1 < v.size() && x > v[i].first) ++i;
  const auto& [x0, y0] = v[i - 1];
  const auto& [x1, y1] = v[i];
  if (x1 - x0 < 1e-12) return 0.5 * (y0 + y1);
  return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
}

namespace {
// Rate (kb/s) where the probe reaches `db`: log-rate interpolation between
// the probe points around it; the nearest end when it never gets there.
double probe_rate_at(std::vector<ProbePoint> probe, double db) {
  std::sort(probe.begin(), probe.end(),
            [](const ProbePoint& a, const ProbePoint& b) { return a.psnr_y < b.psnr_y; });
  if (db <= probe.front().psnr_y) return probe.front().kbps;
  if (db >= probe.back().psnr_y) return probe.back().kbps;
  for (size_t i = 1; i < probe.size(); ++i) {
    const ProbePoint& a = probe[i - 1];
    const ProbePoint& b = probe[i];
    if (db > b.psnr_y) continue;
    if (b.psnr_y - a.psnr_y < 1e-9) return std::max(a.kbps, b.kbps);
    const double t = (db - a.psnr_y) / (b.psnr_y - a.psnr_y);
    return std::pow(10.0, std::log10(a.kbps) + t * (std::log10(b.kbps) - std::log10(a.kbps)));
  }
  return probe.back().kbps;
}

int round_2_significant(double v) {
  if (v < 1) return 1;
  const double mag = std::pow(10.0, std::floor(std::log10(v)) - 1);
  return std::max(1, int(std::lround(std::round(v / mag) * mag)));
}
}  // namespace

std::vector<int> log_spaced_rates(double lo, double hi, int count) {
  std::vector<int> out;
  if (!(lo > 0) || !(hi > 0) || count < 1) return out;
  if (hi < lo) std::swap(lo, hi);
  // A probe that never spans the range (e.g. screen content above 32 dB at
  // CRF 51): keep a 4x span from what it reached, so the curves have shape.
  if (hi < 1.5 * lo) hi = 4 * lo;
  for (int i = 0; i < count; ++i) {
    const double t = count == 1 ? 0.5 : double(i) / (count - 1);
    const int r = round_2_significant(lo * std::pow(hi / lo, t));
    if (out.empty() || r > out.back()) out.push_back(r);
  }
  return out;
}

std::vector<int> pick_rates(const std::vector<ProbePoint>& probe, double lo_db, double hi_db,
                            int count) {
  std::vector<ProbePoint> crf;
  for (const auto& x : probe)
    if (x.abr_kbps == 0) crf.push_back(x);
  if (crf.empty()) return {};
  return log_spaced_rates(probe_rate_at(crf, lo_db), probe_rate_at(crf, hi_db), count);
}

BdNumbers bd_numbers(const std::vector<RdSample>& anchor, const std::vector<RdSample>& test) {
  BdNumbers out{NAN, NAN};
  if (anchor.size() < 4 || test.size() < 4) return out;
  std::vector<RdPoint> a, t;
  for (const auto& s : anchor) a.push_back({s.total_kbps, s.psnr_y});
  for (const auto& s : test) t.push_back({s.total_kbps, s.psnr_y});
  constexpr double kMinOverlapDb = 0.25;
  const auto range = [](const std::vector<RdPoint>& v) {
    double lo = v[0].psnr, hi = v[0].psnr;
    for (const auto& x : v) lo = std::min(lo, x.psnr), hi = std::max(hi, x.psnr);
    return std::pair<double, double>{lo, hi};
  };
  const auto [alo, ahi] = range(a);
  const auto [tlo, thi] = range(t);
  if (std::min(ahi, thi) - std::max(alo, tlo) >= kMinOverlapDb)
    if (auto r = bd_rate(a, t)) out.rate_pct = *r;
  if (auto q = bd_psnr(a, t)) out.psnr_db = *q;
  return out;
}

const RdCurve* find_curve(const RdResult& r, const std::string& m) {
  for (const auto& c : r.curves)
    if (c.method == m) return &c;
  return nullptr;
}

const RdCurve* main_dydca_curve(const RdResult& r) {
  for (const auto& c : r.curves)
    if (c.kind == kKindDydca && !c.points.empty()) return &c;
  return nullptr;
}

// ---- decode probe -------------------------------------------------------------------

// The probe's result line: one list of members for the child's writer and
// the parent's reader (measure_decode).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DecodeProbeResult, frames, best_wall_s, setup_s,
                                                rss_idle_kb, rss_peak_kb, runtime_bytes, models,
                                                models_loaded, model_load_ms, tile_switches,
                                                frame_switches)

std::string decode_probe_json(const DecodeProbeResult& r) { return nlohmann::json(r).dump(); }

int64_t proc_status_kb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(f, line))
    if (line.compare(0, key.size(), key) == 0) return std::atoll(line.c_str() + key.size());
  return -1;
}

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return bool(f);
}

Expected<DecodeCost> measure_decode(const RdBenchParams& p, const std::string& file, int level,
                                    int plain_scale, bool plain_video) {
  if (p.probe_exe.empty()) return Status::error("no probe binary");
  std::vector<std::string> args{p.probe_exe,
                                "-q",
                                "--threads",
                                std::to_string(p.threads),
                                "bench",
                                "--decode-probe",
                                file,
                                "--probe-level",
                                std::to_string(level),
                                "--probe-scale",
                                std::to_string(plain_scale),
                                "--probe-runs",
                                std::to_string(std::max(1, p.decode_runs)),
                                "--probe-decode-threads",
                                std::to_string(plain_video ? p.threads : 1)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  if (pipe(fds) != 0) return Status::error(std::string("pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, p.probe_exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return Status::error("cannot run " + p.probe_exe + ": " + std::strerror(rc));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0)
      out.append(buf, size_t(n));
    else if (n < 0 && errno == EINTR)
      continue;
    else
      break;
  }
  close(fds[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return Status::error("decode probe of " + file + " failed (status " + std::to_string(st) + ")");
  const size_t nl = out.find_last_of('{');
  if (nl == std::string::npos) return Status::error("decode probe of " + file + ": no result");
  DecodeProbeResult r;
  try {
    nlohmann::json::parse(out.substr(nl)).get_to(r);
  } catch (const nlohmann::json::exception&) {
    return Status::error("decode probe of " + file + ": bad result line");
  }
  DecodeCost c;
  c.level = level;
  c.frames = r.frames;
  c.fps = r.best_wall_s > 0 ? double(r.frames) / r.best_wall_s : 0;
  c.setup_s = r.setup_s;
  c.rss_idle_kb = r.rss_idle_kb;
  c.rss_peak_kb = r.rss_peak_kb;
  c.runtime_bytes = r.runtime_bytes;
  c.models = r.models;
  c.models_loaded = r.models_loaded;
  c.switch_ms = r.model_load_ms;
  c.tile_switches = r.tile_switches;
  c.frame_switches = r.frame_switches;
  return c;
}

// ---- runs ---------------------------------------------------------------------------

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void say(const RdBenchParams& p, const std::string& m) {
  if (!p.quiet) std::fprintf(stderr, "[bench] %s\n", m.c_str());
}

std::string dydca_method(int scale) {
  return scale == 0 ? "dydca auto" : "dydca x" + std::to_string(scale);
}
std::string ladder_method(int scale) {
  return scale == 1 ? "x264-full" : "x264 x" + std::to_string(scale) + "+lanczos";
}

// The clip as x264 at `scale` sees it: padded to a multiple of 2 x scale
// (even LR sizes, as the encoder does), lanczos-downscaled (the encoder's default filter). Scale 1 without
// padding need returns an empty vector (use the HR frames themselves).
Expected<std::vector<Frame>> ladder_input(const std::vector<Frame>& hr, int scale) {
  std::vector<Frame> out;
  const int m = 2 * scale;
  if (scale == 1 && hr[0].width % m == 0 && hr[0].height % m == 0) return out;
  out.reserve(hr.size());
  for (const auto& f : hr) {
    Frame padded = pad_to_multiple(f, m);
    if (scale == 1) {
      out.push_back(std::move(padded));
      continue;
    }
    DYDCA_ASSIGN_OR_RETURN(auto d, downscale(padded, scale, ScaleFilter::kLanczos));
    out.push_back(std::move(d));
  }
  return out;
}

// Decodes `video`, upscales every frame by `scale` with lanczos (the free
// upscale; scale 1: as decoded), crops to the HR size and measures it against
// `hr`. Streams: one decoded frame at a time. `mid_out` receives frame `mid`.
Expected<ClipQuality> upscaled_quality(const EncodedVideo& video, int scale,
                                       const std::vector<Frame>& hr, int threads, size_t mid,
                                       Frame* mid_out, bool with_ssim = true) {
  if (video.width * scale < hr[0].width || video.height * scale < hr[0].height)
    return Status::error("stream " + std::to_string(video.width) + "x" +
                         std::to_string(video.height) + " x" + std::to_string(scale) +
                         " is smaller than the input");
  DYDCA_ASSIGN_OR_RETURN(auto dec, VideoDecoder::open(video, threads));
  QualityAccumulator acc(with_ssim);
  size_t i = 0;
  Frame f;
  const auto drain = [&]() -> Status {
    for (;;) {
      DYDCA_ASSIGN_OR_RETURN(auto got, dec.receive(f));
      if (!got) return Status::ok();
      if (i >= hr.size()) return Status::error("the stream has more frames than the input");
      Frame up;
      if (scale > 1) {
        DYDCA_ASSIGN_OR_RETURN(auto r,
                               resize(f, f.width * scale, f.height * scale, ScaleFilter::kLanczos));
        up = crop(r, hr[i].width, hr[i].height);
      } else {
        up = crop(f, hr[i].width, hr[i].height);
      }
      DYDCA_TRY(acc.add(hr[i], up));
      if (i == mid && mid_out) *mid_out = std::move(up);
      ++i;
    }
  };
  for (const auto& pkt : video.packets) {
    DYDCA_TRY(dec.send(&pkt));
    DYDCA_TRY(drain());
  }
  DYDCA_TRY(dec.send(nullptr));
  DYDCA_TRY(drain());
  if (i != hr.size())
    return Status::error("decoded " + std::to_string(i) + " frames of " +
                         std::to_string(hr.size()));
  return acc.result();
}

// One x264 ladder point: 2-pass at `rate` kb/s on `in` (the clip at `scale`),
// lanczos back to the full size. `keep` non-empty: the stream is written
// there too (for the decode probe). Like dydca's own x264 runs (total-rate
// control), a run more than 3 % off the rate runs again, at most twice, with
// the target scaled by rate / landed; the closest run counts. (Uncorrected,
// x264's 2-pass landed 13 % under 79 kb/s on a 3-s screen clip, and dydca's
// corrected points were compared with an extrapolation past x264's curve.)
Expected<RdSample> run_ladder_point(const std::vector<Frame>& in, const std::vector<Frame>& hr,
                                    Rational fps, int scale, int rate, const RdBenchParams& p,
                                    size_t mid, Frame* mid_out, const std::string& keep) {
  const double t0 = now_s();
  const double dur = double(hr.size()) / fps.to_double();
  X264Config cfg;
  cfg.preset = p.preset;
  cfg.bitrate_kbps = rate;
  cfg.two_pass = true;
  cfg.threads = p.threads;
  DYDCA_ASSIGN_OR_RETURN(auto enc, encode_h264(in, fps, cfg));
  const auto kbps_of = [&](const EncodedVideo& v) {
    return double(v.total_bytes()) * 8.0 / dur / 1000.0;
  };
  for (int attempt = 0; attempt < 2; ++attempt) {
    const double got = kbps_of(enc);
    if (std::fabs(got - rate) <= 0.03 * rate || got <= 0) break;
    const int next = std::max(
        1, int(std::lround(std::clamp(cfg.bitrate_kbps * rate / got, 0.5 * rate, 2.0 * rate))));
    if (next == cfg.bitrate_kbps) break;
    cfg.bitrate_kbps = next;
    DYDCA_ASSIGN_OR_RETURN(auto again, encode_h264(in, fps, cfg));
    if (std::fabs(kbps_of(again) - rate) < std::fabs(got - rate)) enc = std::move(again);
  }
  if (!keep.empty()) DYDCA_TRY(write_video_file(keep, enc));
  DYDCA_ASSIGN_OR_RETURN(auto q, upscaled_quality(enc, scale, hr, p.threads, mid, mid_out));
  RdSample s;
  s.rate = rate;
  s.scale = scale;
  s.video_kbps = s.total_kbps = kbps_of(enc);
  s.psnr_y = q.psnr_y;
  s.ssim_y = q.ssim_y;
  s.encode_s = now_s() - t0;
  return s;
}

// The clip's rates from x264 at the full size on a sample of the clip (up to
// three windows of ~2 s, each encoded as its own stream): a CRF search for
// where PSNR-Y crosses lo_db and hi_db (the curve's shape, cheap), then both
// ends refined with 2-pass runs at the estimated rates, what the anchor runs
// (on screen content 2-pass lands up to 2-3 dB under CRF at the same rate).
// Fills r->probe and r->probe_frames.
Expected<std::vector<int>> probe_rates(const std::vector<Frame>& hr, Rational fps,
                                       const RdBenchParams& p, RdResult* r) {
  int* sample_frames = &r->probe_frames;
  const int n = int(hr.size());
  const int w = std::clamp(int(std::lround(2 * fps.to_double())), 8, n);
  std::vector<std::pair<int, int>> windows;  // [first, first + count)
  if (n <= 3 * w) {
    windows.push_back({0, n});
  } else {
    for (int k = 0; k < 3; ++k)
      windows.push_back({std::clamp(int(n * (2 * k + 1) / 6.0) - w / 2, 0, n - w), w});
  }
  std::vector<std::vector<Frame>> in, ref;
  int total = 0;
  for (const auto& [first, count] : windows) {
    in.emplace_back();
    ref.emplace_back();
    for (int i = first; i < first + count; ++i) {
      in.back().push_back(pad_to_multiple(hr[size_t(i)], 2));
      ref.back().push_back(hr[size_t(i)]);
    }
    total += count;
  }
  *sample_frames = total;
  const double dur = double(total) / fps.to_double();
  std::map<int, ProbePoint> memo;
  const auto at = [&](int crf) -> Expected<ProbePoint> {
    if (auto it = memo.find(crf); it != memo.end()) return it->second;
    X264Config cfg;
    cfg.preset = p.preset;
    cfg.crf = crf;
    cfg.threads = p.threads;
    int64_t bytes = 0;
    QualityAccumulator acc(false);
    for (size_t k = 0; k < in.size(); ++k) {
      DYDCA_ASSIGN_OR_RETURN(auto enc, encode_h264(in[k], fps, cfg));
      bytes += enc.total_bytes();
      DYDCA_ASSIGN_OR_RETURN(auto q,
                             upscaled_quality(enc, 1, ref[k], p.threads, 0, nullptr, false));
      for (const auto& f : q.per_frame) acc.add(f);
    }
    ProbePoint pt{crf, double(bytes) * 8.0 / dur / 1000.0, acc.result().psnr_y};
    memo[crf] = pt;
    say(p, "  probe crf " + std::to_string(crf) + ": " + std::to_string(int(pt.kbps)) +
               " kb/s, " + std::to_string(pt.psnr_y).substr(0, 5) + " dB");
    return pt;
  };
  constexpr double kDbPerCrf = 0.6;  // a first guess of the slope; the probes refine it
  for (double target : {p.target_hi_db, p.target_lo_db}) {
    int crf = memo.empty() ? 26 : -1;
    for (int iter = 0; iter < 6; ++iter) {
      if (crf < 0) {
        // The probes around the target: a = highest CRF still >= target,
        // b = lowest CRF below it.
        const ProbePoint *a = nullptr, *b = nullptr;
        for (const auto& [c, pt] : memo) {
          if (pt.psnr_y >= target && (!a || c > a->crf)) a = &pt;
          if (pt.psnr_y < target && (!b || c < b->crf)) b = &pt;
        }
        if (a && b) {
          if (b->crf - a->crf <= 1) break;
          const double t = (a->psnr_y - target) / std::max(1e-6, a->psnr_y - b->psnr_y);
          crf = std::clamp(int(std::lround(a->crf + t * (b->crf - a->crf))), a->crf + 1,
                           b->crf - 1);
        } else if (a) {
          if (a->crf >= 51) break;
          crf = std::min(51, a->crf + std::max(1, int(std::ceil((a->psnr_y - target) / kDbPerCrf))));
        } else {
          if (b->crf <= 0) break;
          crf = std::max(0, b->crf - std::max(1, int(std::ceil((target - b->psnr_y) / kDbPerCrf))));
        }
      }
      DYDCA_ASSIGN_OR_RETURN(auto pt, at(crf));
      if (std::fabs(pt.psnr_y - target) <= 0.5) break;
      crf = -1;
    }
  }
  for (const auto& [c, pt] : memo) r->probe.push_back(pt);
  const std::vector<ProbePoint> crf_points = r->probe;
  // 2-pass at a target rate on the same sample.
  const auto abr = [&](int kbps) -> Expected<ProbePoint> {
    X264Config cfg;
    cfg.preset = p.preset;
    cfg.bitrate_kbps = kbps;
    cfg.two_pass = true;
    cfg.threads = p.threads;
    int64_t bytes = 0;
    QualityAccumulator acc(false);
    for (size_t k = 0; k < in.size(); ++k) {
      DYDCA_ASSIGN_OR_RETURN(auto enc, encode_h264(in[k], fps, cfg));
      bytes += enc.total_bytes();
      DYDCA_ASSIGN_OR_RETURN(auto q,
                             upscaled_quality(enc, 1, ref[k], p.threads, 0, nullptr, false));
      for (const auto& f : q.per_frame) acc.add(f);
    }
    ProbePoint pt{-1, double(bytes) * 8.0 / dur / 1000.0, acc.result().psnr_y, kbps};
    r->probe.push_back(pt);
    say(p, "  probe 2-pass " + std::to_string(kbps) + " kb/s: " + std::to_string(int(pt.kbps)) +
               " kb/s, " + std::to_string(pt.psnr_y).substr(0, 5) + " dB");
    return pt;
  };
  // dB per decade of rate around `db` on the CRF curve (a first slope).
  const auto crf_slope = [&](double db) {
    std::vector<ProbePoint> v = crf_points;
    std::sort(v.begin(), v.end(), [](auto& x, auto& y) { return x.kbps < y.kbps; });
    double best = 15;
    double dist = 1e9;
    for (size_t i = 1; i < v.size(); ++i) {
      const double dl = std::log10(v[i].kbps) - std::log10(v[i - 1].kbps);
      const double d = std::fabs(0.5 * (v[i].psnr_y + v[i - 1].psnr_y) - db);
      if (dl > 1e-3 && d < dist) dist = d, best = (v[i].psnr_y - v[i - 1].psnr_y) / dl;
    }
    return std::clamp(best, 3.0, 60.0);
  };
  const std::vector<int> est = pick_rates(crf_points, p.target_lo_db, p.target_hi_db, 2);
  if (est.empty()) return Status::error("x264 probe: no points");
  double ends[2] = {double(est.front()), double(est.back())};
  const double targets[2] = {p.target_lo_db, p.target_hi_db};
  for (int e = 0; e < 2; ++e) {
    double rate = ends[e];
    std::vector<std::pair<double, double>> seen;  // (log10 target rate, PSNR-Y)
    for (int iter = 0; iter < 3; ++iter) {
      const int kbps = std::max(1, int(std::lround(rate)));
      DYDCA_ASSIGN_OR_RETURN(auto pt, abr(kbps));
      if (std::fabs(pt.psnr_y - targets[e]) <= 0.5) break;
      seen.push_back({std::log10(double(kbps)), pt.psnr_y});
      double slope = crf_slope(targets[e]);
      if (seen.size() >= 2) {
        const auto& [x0, y0] = seen[seen.size() - 2];
        const auto& [x1, y1] = seen.back();
        if (std::fabs(x1 - x0) > 1e-3 && (y1 - y0) / (x1 - x0) > 1) slope = (y1 - y0) / (x1 - x0);
      }
      rate = kbps * std::clamp(std::pow(10.0, (targets[e] - pt.psnr_y) / slope), 0.25, 4.0);
    }
    ends[e] = rate;
  }
  return log_spaced_rates(ends[0], ends[1], p.rate_count);
}

RdSample sample_from(const EncodeReport& r, int rate, size_t level) {
  RdSample s;
  s.rate = rate;
  s.video_kbps = r.video_kbps;
  s.model_kbps = r.model_kbps;
  s.routing_kbps = r.routing_kbps;
  s.total_kbps = r.video_kbps + r.model_kbps + r.routing_kbps;
  s.model_bytes = r.model_bytes;
  s.routing_bytes = r.routing_bytes;
  if (level < r.levels.size()) {  // a plain x264 output may have none: measured by the bench
    s.psnr_y = r.levels[level].psnr_y;
    s.ssim_y = r.levels[level].ssim_y;
    s.macs_per_lr_pixel = r.levels[level].macs_per_lr_pixel;
  }
  s.encode_s = r.t_total;
  s.scale = r.plain_x264 ? 1 : r.scale;
  s.plain_x264 = r.plain_x264;
  s.decision = r.scale_decision;
  for (const auto& t : r.scale_trials)
    s.trials.push_back(
        {t.scale, t.total_kbps, t.psnr_y, t.lanczos_psnr_y, t.seconds, t.linear, t.downscale});
  if (!r.plain_x264) s.downscale = r.downscale;
  s.linear = !r.plain_x264 && all_segments_linear(r);
  for (const auto& l : r.levels)
    s.levels.push_back({l.level, l.psnr_y, l.ssim_y, l.macs_per_lr_pixel});
  return s;
}

#ifdef DYDCA_BENCH_HAVE_DECODER
// Keeps frame `index` of a decode (what the client shows).
class CaptureSink final : public FrameSink {
 public:
  CaptureSink(int64_t index, Frame* out) : index_(index), out_(out) {}
  Status open(const SinkFormat&) override { return Status::ok(); }
  Status write(const Frame& f) override {
    if (n_++ == index_) *out_ = f;
    return Status::ok();
  }
  Status finish() override { return Status::ok(); }

 private:
  int64_t index_, n_ = 0;
  Frame* out_;
};
#endif

// Frame `index` of a dydca file as the client decodes it (level 0).
Status decoded_frame(const std::string& mkv, int64_t index, int threads, Frame* out) {
#ifdef DYDCA_BENCH_HAVE_DECODER
  DecodeOptions o;
  o.threads = threads;
  o.max_frames = index + 1;
  o.plain_scale = 1;  // a plain x264 output of --scale auto is at the full size
  CaptureSink sink(index, out);
  DYDCA_TRY(decode_file(mkv, o, sink).status());
  if (out->empty()) return Status::error(mkv + ": frame " + std::to_string(index) + " not decoded");
  return Status::ok();
#else
  (void)mkv, (void)index, (void)threads, (void)out;
  return Status::error("this build has no decoder");
#endif
}

std::string kbps_db(double kbps, double db) {
  char b[64];
  std::snprintf(b, sizeof b, "%.0f kb/s, %.2f dB", kbps, db);
  return b;
}

}  // namespace

Status run_rd_bench(const RdBenchParams& p, std::vector<RdResult>* out) {
  std::error_code ec;
  fs::create_directories(p.out_dir + "/work", ec);
  if (ec) return Status::error("cannot create " + p.out_dir + ": " + ec.message());
  std::vector<RdResult> results;
  const auto write_all = [&](const RdResult* partial) -> Status {
    std::vector<RdResult> all = results;
    if (partial) all.push_back(*partial);
    DYDCA_TRY(write_file_atomic(p.out_dir + "/report.json", rd_report_json(p, all) + "\n"));
    return write_file_atomic(p.out_dir + "/report.md", rd_report_md(p, all));
  };
  const auto stopped = [&] { return p.stop && p.stop->load(); };
  for (const auto& clip : p.clips) {
    VideoInfo info;
    ReadOptions ro;
    ro.max_frames = p.max_frames;
    ro.threads = p.threads;
    auto hr = read_all_frames(clip, &info, ro);
    if (!hr) return hr.status().with_context(clip);
    if (hr->empty()) return Status::error(clip + ": no frames");
    const Rational fps = info.frame_rate.valid() ? info.frame_rate : Rational{25, 1};
    RdResult r;
    r.clip = clip;
    r.name = fs::path(clip).stem().string();
    r.frames = int(hr->size());
    r.fps = fps.to_double();
    r.duration_s = r.frames / r.fps;
    r.hr_width = (*hr)[0].width;
    r.hr_height = (*hr)[0].height;
    const std::string& name = r.name;
    const size_t mid = hr->size() / 2;
    const std::string work = p.out_dir + "/work/" + name;

    // Rates.
    if (!p.rates.empty()) {
      r.rates = p.rates;
      r.rates_from = "--rates";
    } else {
      say(p, name + ": x264 probe for rates spanning " + std::to_string(int(p.target_lo_db)) +
                 "-" + std::to_string(int(p.target_hi_db)) + " dB");
      auto rates = probe_rates(*hr, fps, p, &r);
      if (!rates) return rates.status().with_context(clip + ": x264 probe");
      r.rates = *rates;
      r.rates_from = "probe";
    }
    r.ref_rate = std::find(r.rates.begin(), r.rates.end(), p.ref_rate) != r.rates.end()
                     ? p.ref_rate
                     : r.rates[r.rates.size() / 2];
    std::string rl;
    for (int x : r.rates) rl += (rl.empty() ? "" : ",") + std::to_string(x);
    say(p, name + ": rates " + rl + " kb/s (reference " + std::to_string(r.ref_rate) + ")");
    const bool probe_decodes = !p.probe_exe.empty() && p.decode_runs > 0;

    // Frames for the crop PNG (frame `mid` at the reference rate).
    std::map<std::string, Frame> mids;
    std::map<std::string, std::string> mid_labels;

    // x264 ladder: full size (the anchor) and each LR scale + lanczos.
    std::vector<int> ladder = p.ladder_scales;
    if (std::find(ladder.begin(), ladder.end(), 1) == ladder.end()) ladder.insert(ladder.begin(), 1);
    for (int s : ladder) {
      RdCurve c{ladder_method(s), kKindX264, s, {}};
      auto in = ladder_input(*hr, s);
      if (!in) {
        r.errors.push_back(c.method + ": " + in.error_message());
        continue;
      }
      const std::vector<Frame>& src = in->empty() ? *hr : *in;
      for (int rate : r.rates) {
        if (stopped()) return Status::error("interrupted");
        say(p, name + ": " + c.method + " " + std::to_string(rate) + " kb/s");
        const bool ref = rate == r.ref_rate;
        const std::string keep =
            ref && s == 1 && probe_decodes ? work + "_x264_full_" + std::to_string(rate) + ".mkv" : "";
        Frame m;
        auto pt = run_ladder_point(src, *hr, fps, s, rate, p, mid, ref ? &m : nullptr, keep);
        if (!pt) {
          r.errors.push_back(c.method + " " + std::to_string(rate) + ": " + pt.error_message());
          log_warning("bench: " + r.errors.back());
          continue;
        }
        c.points.push_back(*pt);
        if (ref) {
          mids[c.method] = std::move(m);
          mid_labels[c.method] = (s == 1 ? std::string("x264 full size")
                                         : "x264 x" + std::to_string(s) + " + lanczos") +
                                 "\n" + kbps_db(pt->total_kbps, pt->psnr_y);
        }
        if (!keep.empty()) {
          say(p, name + ": decode " + c.method + " " + std::to_string(rate) + " kb/s");
          auto d = measure_decode(p, keep, 0, 1, true);
          if (d) {
            d->method = c.method;
            d->decoder = "H.264 full size (plain video)";
            d->rate = rate;
            r.decodes.push_back(*d);
          } else {
            r.errors.push_back("decode " + c.method + ": " + d.error_message());
          }
          fs::remove(keep, ec);
        }
      }
      r.curves.push_back(std::move(c));
    }
    {
      std::vector<RdSample> all;
      for (const auto& c : r.curves)
        if (c.kind == kKindX264) all.insert(all.end(), c.points.begin(), c.points.end());
      r.curves.push_back({"x264 hull", kKindHull, 0, upper_hull(all)});
    }
    DYDCA_TRY(write_all(&r));

    // dydca curves (auto first: the main one) and the model baselines.
    struct Run {
      std::string method, kind, baseline;
      int scale;
    };
    std::vector<Run> runs;
    for (int s : p.scales) runs.push_back({dydca_method(s), kKindDydca, "none", s});
    for (const auto& b : p.baselines)
      runs.push_back({b + " x" + std::to_string(p.baseline_scale), kKindBaseline, b,
                      p.baseline_scale});
    bool main_done = false;  // the first dydca file at the reference rate gets every measurement
    for (const auto& run : runs) {
      RdCurve c{run.method, run.kind, run.scale, {}};
      for (int rate : r.rates) {
        if (stopped()) return Status::error("interrupted");
        const std::string tag = name + " " + run.method + " " + std::to_string(rate) + " kb/s";
        say(p, tag);
        EncodeParams e;
        e.input = clip;
        e.output = work + "_" + (run.scale ? "x" + std::to_string(run.scale) : "auto") + "_" +
                   std::to_string(rate) + "_" + run.baseline + ".mkv";
        e.scale = run.scale;
        // e.arch stays the encoder's default: default_arch of whichever scale it uses.
        e.bitrate_kbps = rate;
        e.preset = p.preset;
        e.quality = p.quality;
        e.train_steps = p.steps;
        e.baseline = run.baseline;
        e.threads = p.threads;
        e.max_frames = p.max_frames;
        e.stop = p.stop;
        auto rep = encode_video(e);
        if (!rep || (rep->levels.empty() && !rep->plain_x264)) {
          fs::remove(e.output, ec);
          r.errors.push_back(tag + ": " + (rep ? "no quality levels" : rep.error_message()));
          log_warning("bench: " + r.errors.back());
          continue;
        }
        RdSample s = sample_from(*rep, rate, 0);
        const bool ref = rate == r.ref_rate;
        const bool is_main = run.kind == kKindDydca && ref && !main_done;
        const std::string lr_label =
            s.scale > 1 ? "dydca's LR x" + std::to_string(s.scale) + " + lanczos"
                        : std::string("dydca's x264 stream (no SR)");
        // The file's own LR stream, upscaled by lanczos: the SR gain's reference.
        if (run.kind == kKindDydca) {
          auto dm = demux_file(e.output);
          Frame m;
          auto q = dm ? upscaled_quality(dm->video, s.scale, *hr, p.threads, mid,
                                         is_main ? &m : nullptr)
                      : Expected<ClipQuality>(dm.status());
          if (q) {
            s.lanczos_psnr_y = q->psnr_y;
            if (rep->levels.empty()) {  // plain x264 without a quality report: the stream is the output
              s.psnr_y = q->psnr_y;
              s.ssim_y = q->ssim_y;
            }
            if (is_main && s.scale > 1) {
              mids["lr"] = std::move(m);
              mid_labels["lr"] = lr_label + "\n" + kbps_db(s.video_kbps, s.lanczos_psnr_y);
            }
          } else {
            r.errors.push_back(tag + ": LR + lanczos: " + q.error_message());
          }
        }
        if (is_main && p.crops) {
          Frame m;
          if (auto st = decoded_frame(e.output, int64_t(mid), p.threads, &m); st) {
            mids["dydca"] = std::move(m);
            // auto: say what it chose.
            const std::string chose = s.plain_x264 ? std::string(" (plain x264)")
                                      : run.scale == 0 ? " (x" + std::to_string(s.scale) + ")"
                                                       : std::string();
            mid_labels["dydca"] = run.method + chose + "\n" + kbps_db(s.total_kbps, s.psnr_y);
          } else {
            r.errors.push_back(tag + ": decode for the crop: " + st.message());
          }
        }
        if (ref && probe_decodes) {
          const auto one = [&](int level, int plain_scale, const std::string& file,
                               const std::string& decoder) {
            say(p, name + ": decode " + run.method + " (" + decoder + ")");
            auto d = measure_decode(p, file, level, std::max(1, plain_scale), plain_scale > 0);
            if (!d) {
              r.errors.push_back("decode " + run.method + ": " + d.error_message());
              log_warning("bench: " + r.errors.back());
              return;
            }
            d->method = run.method;
            d->decoder = decoder;
            d->rate = rate;
            r.decodes.push_back(*d);
          };
          const int levels = int(rep->levels.size());
          if (run.kind == kKindBaseline) {
            one(0, 0, e.output,
                run.baseline == "static"
                    ? "SR, 1 model"
                    : "SR, 1 model per " +
                          std::string(run.baseline == "per-chunk" ? "chunk" : "segment"));
          } else {
            one(0, 0, e.output,
                s.plain_x264 ? std::string("H.264 full size (plain x264 output, no model)")
                             : "SR level 0 of " + std::to_string(levels));
            if (is_main && levels > 1)
              one(levels - 1, 0, e.output, "SR level " + std::to_string(levels - 1) + " (cheapest)");
            if (is_main && !s.plain_x264) {
              // The LR stream alone: what a player without the model shows.
              const std::string lr = work + "_lr.mkv";
              auto dm = demux_file(e.output);
              Status st = dm ? write_video_file(lr, dm->video) : dm.status();
              if (st)
                one(0, s.scale, lr,
                    "H.264 LR + bicubic x" + std::to_string(s.scale) + " (plain video, no model)");
              else
                r.errors.push_back("LR stream of " + e.output + ": " + st.message());
              fs::remove(lr, ec);
            }
          }
        }
        if (is_main) main_done = true;
        fs::remove(e.output, ec);
        c.points.push_back(std::move(s));
      }
      r.curves.push_back(std::move(c));
      // Partial reports after every curve, so a long run can be read early.
      DYDCA_TRY(write_all(&r));
    }

    // The crop compared by eye: original, x264 full size, LR + lanczos, dydca.
    if (p.crops) {
      const Frame& orig = (*hr)[mid];
      const int side = std::clamp((std::min(orig.width, orig.height) / 4) & ~1, 16, 160);
      const CropRect rect = pick_detail_crop(orig, side);
      const int magnify = std::max(2, (300 + rect.side - 1) / rect.side);
      std::vector<CropPanel> panels{{&orig, "original\nframe " + std::to_string(mid)}};
      const auto add = [&](const std::string& key) {
        auto it = mids.find(key);
        if (it != mids.end() && it->second.width == orig.width &&
            it->second.height == orig.height)
          panels.push_back({&it->second, mid_labels[key]});
      };
      add("x264-full");
      if (mids.count("lr"))
        add("lr");
      else
        add("x264 x2+lanczos");  // the main file has no LR stream (x1 / plain x264)
      add("dydca");
      const std::string png = "crop_" + name + ".png";
      if (auto st = write_crop_png(p.out_dir + "/" + png, panels, rect, magnify); st) {
        r.crop = {png, int(mid), rect.x, rect.y, rect.side, magnify, r.ref_rate, {}};
        for (const auto& pn : panels) r.crop.panels.push_back(pn.label);
      } else {
        r.errors.push_back("crop PNG: " + st.message());
      }
    }
    results.push_back(std::move(r));
    DYDCA_TRY(write_all(nullptr));
    DYDCA_TRY(write_rd_plots(p, results));
  }
  DYDCA_TRY(write_all(nullptr));
  DYDCA_TRY(write_rd_plots(p, results));
  fs::remove_all(p.out_dir + "/work", ec);
  if (out) *out = std::move(results);
  return Status::ok();
}

Status write_quick_clip(const std::string& path) {
  const Rational fps{24, 1};
  DYDCA_ASSIGN_OR_RETURN(auto w, Y4mWriter::open(path, 384, 256, fps));
  for (const auto& f : synthetic_clip(192, 128, 24, 1, /*noise=*/false)) {
    DYDCA_ASSIGN_OR_RETURN(auto up, resize(f, 384, 256, ScaleFilter::kBicubic));
    DYDCA_TRY(w.write(up));
  }
  return w.close();
}

}  // namespace dydca::bench
