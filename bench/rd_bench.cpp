// `dydca bench`: see rd_bench.h.
#include "rd_bench.h"

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
#include <sstream>

#include "dydca/encoder.h"
#include "dydca/media.h"
#include "dydca/metrics.h"
#include "dydca/synthetic.h"

namespace dydca::bench {
namespace fs = std::filesystem;
namespace {

const char* kHr = "x264-HR";
const char* kBicubic = "LR+bicubic";

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void say(const RdBenchParams& p, const std::string& m) {
  if (!p.quiet) std::fprintf(stderr, "[bench] %s\n", m.c_str());
}

RdCurve& curve(RdResult& r, const std::string& method) {
  for (auto& c : r.curves)
    if (c.method == method) return c;
  r.curves.push_back({method, {}, {}});
  return r.curves.back();
}

// x264 at HR resolution, 2-pass at `rate` kb/s, same preset.
// `keep` non-empty: the stream is also written there (for the decode probe).
Expected<RdSample> run_hr_x264(const std::vector<Frame>& hr, Rational fps, int rate,
                               const RdBenchParams& p, const std::string& keep = {}) {
  const double t0 = now_s();
  std::vector<Frame> padded;
  padded.reserve(hr.size());
  for (const auto& f : hr) padded.push_back(pad_to_multiple(f, 2));
  X264Config cfg;
  cfg.preset = p.preset;
  cfg.bitrate_kbps = rate;
  cfg.two_pass = true;
  cfg.threads = p.threads;
  auto enc = encode_h264(padded, fps, cfg);
  if (!enc) return enc.status();
  if (!keep.empty()) DYDCA_TRY(write_video_file(keep, *enc));
  auto dec = decode_h264(*enc, p.threads);
  if (!dec) return dec.status();
  if (dec->size() != hr.size()) return Status::error("HR x264: frame count changed");
  for (size_t i = 0; i < dec->size(); ++i) (*dec)[i] = crop((*dec)[i], hr[i].width, hr[i].height);
  auto q = compare_clips(hr, *dec, true);
  if (!q) return q.status();
  RdSample s;
  s.rate = rate;
  const double dur = double(hr.size()) / fps.to_double();
  s.video_kbps = s.total_kbps = double(enc->total_bytes()) * 8.0 / dur / 1000.0;
  s.psnr_y = q->psnr_y;
  s.ssim_y = q->ssim_y;
  s.encode_s = now_s() - t0;
  return s;
}

RdSample sample_from(const EncodeReport& r, int rate, size_t level) {
  RdSample s;
  s.rate = rate;
  s.video_kbps = r.video_kbps;
  s.model_kbps = r.model_kbps;
  s.routing_kbps = r.routing_kbps;
  s.total_kbps = r.video_kbps + r.model_kbps + r.routing_kbps;
  s.model_bytes = r.model_bytes;
  s.psnr_y = r.levels[level].psnr_y;
  s.ssim_y = r.levels[level].ssim_y;
  s.macs_per_lr_pixel = r.levels[level].macs_per_lr_pixel;
  s.encode_s = r.t_total;
  s.routing_bytes = r.routing_bytes;
  for (const auto& l : r.levels)
    s.levels.push_back({l.level, l.psnr_y, l.ssim_y, l.macs_per_lr_pixel});
  return s;
}

const RdSample* point_at(const RdCurve& c, int rate) {
  for (const auto& s : c.points)
    if (s.rate == rate) return &s;
  return nullptr;
}

// gnuplot string literal (single quotes; a quote is doubled).
std::string gq(const std::string& s) {
  std::string o = "'";
  for (char ch : s) o += ch == '\'' ? std::string("''") : std::string(1, ch);
  return o + "'";
}
// Data-file string (double quotes; gnuplot reads "a b" as one column).
std::string dq(const std::string& s) {
  std::string o = "\"";
  for (char ch : s) o += ch == '"' ? '\'' : ch;
  return o + "\"";
}

std::vector<RdPoint> rd_points(const RdCurve& c) {
  std::vector<RdPoint> v;
  for (const auto& s : c.points) v.push_back({s.total_kbps, s.psnr_y});
  return v;
}

const RdCurve* find_curve(const RdResult& r, const std::string& m) {
  for (const auto& c : r.curves)
    if (c.method == m) return &c;
  return nullptr;
}

// BD-rate (%) and BD-PSNR (dB) of `test` against `anchor`; NaN when not computable.
std::pair<double, double> bd(const RdCurve* anchor, const RdCurve& test) {
  if (!anchor || anchor->points.size() < 4 || test.points.size() < 4) return {NAN, NAN};
  auto a = rd_points(*anchor), t = rd_points(test);
  // BD-rate integrates over the common PSNR range: on (nearly) flat curves it
  // is noise, so it is only given when the ranges overlap by >= kMinOverlapDb.
  constexpr double kMinOverlapDb = 0.25;
  auto range = [](const std::vector<RdPoint>& v) {
    double lo = v[0].psnr, hi = v[0].psnr;
    for (const auto& x : v) lo = std::min(lo, x.psnr), hi = std::max(hi, x.psnr);
    return std::pair<double, double>{lo, hi};
  };
  const auto [alo, ahi] = range(a);
  const auto [tlo, thi] = range(t);
  const bool overlap = std::min(ahi, thi) - std::max(alo, tlo) >= kMinOverlapDb;
  auto r = overlap ? bd_rate(a, t) : Expected<double>(Status::error("no overlap"));
  auto q = bd_psnr(a, t);
  return {r ? *r : NAN, q ? *q : NAN};
}

std::string na(double v, const char* f) { return std::isnan(v) ? "n/a" : fmt(f, v); }

Status make_quick_clip(const std::string& path) {
  auto frames = synthetic_clip(192, 128, 24, 1, true);
  auto w = Y4mWriter::open(path, 192, 128, Rational{24, 1});
  if (!w) return w.status();
  for (const auto& f : frames)
    if (auto s = w->write(f); !s) return s;
  return w->close();
}

}  // namespace

int reference_rate(const RdBenchParams& p) {
  if (p.ref_rate > 0) return p.ref_rate;
  return p.rates.empty() ? 0 : p.rates[p.rates.size() / 2];
}

// ---- decode probe -------------------------------------------------------------

std::string decode_probe_json(const DecodeProbeResult& r) {
  nlohmann::json j{{"frames", r.frames},
                   {"best_wall_s", r.best_wall_s},
                   {"setup_s", r.setup_s},
                   {"rss_idle_kb", r.rss_idle_kb},
                   {"rss_peak_kb", r.rss_peak_kb},
                   {"runtime_bytes", r.runtime_bytes},
                   {"models", r.models},
                   {"models_loaded", r.models_loaded},
                   {"model_load_ms", r.model_load_ms},
                   {"tile_switches", r.tile_switches},
                   {"frame_switches", r.frame_switches}};
  return j.dump();
}

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
  nlohmann::json j = nlohmann::json::parse(out.substr(nl), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::error("decode probe of " + file + ": bad result line");
  DecodeCost c;
  c.level = level;
  c.frames = j.value("frames", int64_t{0});
  const double wall = j.value("best_wall_s", 0.0);
  c.fps = wall > 0 ? double(c.frames) / wall : 0;
  c.setup_s = j.value("setup_s", 0.0);
  c.rss_idle_kb = j.value("rss_idle_kb", int64_t{0});
  c.rss_peak_kb = j.value("rss_peak_kb", int64_t{0});
  c.runtime_bytes = j.value("runtime_bytes", int64_t{0});
  c.models = j.value("models", 0);
  c.models_loaded = j.value("models_loaded", 0);
  c.switch_ms = j.value("model_load_ms", 0.0);
  c.tile_switches = j.value("tile_switches", int64_t{0});
  c.frame_switches = j.value("frame_switches", int64_t{0});
  return c;
}

std::string rd_report_json(const RdBenchParams& p, const std::vector<RdResult>& results) {
  using nlohmann::json;
  json j;
  j["preset"] = p.preset;
  j["rates"] = p.rates;
  j["scales"] = p.scales;
  j["steps"] = p.steps;
  j["quality"] = p.quality;
  j["max_frames"] = p.max_frames;
  j["reference_rate"] = reference_rate(p);
  j["decode_runs"] = p.decode_runs;
  j["threads"] = p.threads;
  json rs = json::array();
  for (const auto& r : results) {
    json jr;
    jr["clip"] = r.clip;
    jr["name"] = r.name;
    jr["scale"] = r.scale;
    jr["frames"] = r.frames;
    jr["fps"] = r.fps;
    jr["hr"] = {r.hr_width, r.hr_height};
    jr["lr"] = {r.lr_width, r.lr_height};
    jr["errors"] = r.errors;
    const RdCurve* hr = find_curve(r, kHr);
    const RdCurve* bic = find_curve(r, kBicubic);
    json cs = json::array();
    for (const auto& c : r.curves) {
      json jc;
      jc["method"] = c.method;
      json pts = json::array();
      for (const auto& s : c.points) {
        json lv = json::array();
        for (const auto& l : s.levels)
          lv.push_back({{"level", l.level},
                        {"psnr_y", l.psnr_y},
                        {"ssim_y", l.ssim_y},
                        {"macs_per_lr_pixel", l.macs_per_lr_pixel}});
        pts.push_back({{"rate", s.rate},
                       {"total_kbps", s.total_kbps},
                       {"video_kbps", s.video_kbps},
                       {"model_kbps", s.model_kbps},
                       {"routing_kbps", s.routing_kbps},
                       {"model_bytes", s.model_bytes},
                       {"routing_bytes", s.routing_bytes},
                       {"psnr_y", s.psnr_y},
                       {"ssim_y", s.ssim_y},
                       {"macs_per_lr_pixel", s.macs_per_lr_pixel},
                       {"encode_s", s.encode_s},
                       {"levels", lv}});
      }
      jc["points"] = pts;
      if (c.decode) {
        const DecodeCost& d = *c.decode;
        jc["decode"] = {{"decoder", d.decoder},
                        {"rate", d.rate},
                        {"level", d.level},
                        {"frames", d.frames},
                        {"fps", d.fps},
                        {"setup_s", d.setup_s},
                        {"rss_idle_kb", d.rss_idle_kb},
                        {"rss_peak_kb", d.rss_peak_kb},
                        {"runtime_bytes", d.runtime_bytes},
                        {"models", d.models},
                        {"models_loaded", d.models_loaded},
                        {"switch_ms", d.switch_ms},
                        {"tile_switches", d.tile_switches},
                        {"frame_switches", d.frame_switches}};
      } else {
        jc["decode"] = nullptr;
      }
      auto [r1, p1] = bd(hr, c);
      auto [r2, p2] = bd(bic, c);
      auto num = [](double v) { return std::isnan(v) ? json(nullptr) : json(v); };
      jc["bd_rate_vs_x264_hr"] = num(r1);
      jc["bd_psnr_vs_x264_hr"] = num(p1);
      jc["bd_rate_vs_bicubic"] = num(r2);
      jc["bd_psnr_vs_bicubic"] = num(p2);
      cs.push_back(jc);
    }
    jr["methods"] = cs;
    rs.push_back(jr);
  }
  j["results"] = rs;
  return j.dump(2);
}

std::string rd_report_md(const RdBenchParams& p, const std::vector<RdResult>& results) {
  std::ostringstream o;
  o << "# dydca bench: rate-distortion\n\n";
  o << "Total kb/s = LR video + models + routing (audio excluded). PSNR-Y is full-frame against "
       "the "
       "HR input. Rates are the LR video targets (2-pass x264, preset "
    << p.preset << "); x264-HR uses the same list as its total rate. Training steps: "
    << (p.steps > 0 ? std::to_string(p.steps) : "preset '" + p.quality + "'")
    << (p.max_frames > 0 ? ", first " + std::to_string(p.max_frames) + " frames" : "") << ".\n\n";
  for (const auto& r : results) {
    o << "## " << r.name << " x" << r.scale << " (" << r.hr_width << "x" << r.hr_height << " <- "
      << r.lr_width << "x" << r.lr_height << ", " << r.frames << " frames @ " << fmt("%.3g", r.fps)
      << " fps)\n\n";
    // RD table: rows = methods, columns = rate points.
    o << "| method |";
    for (int rate : p.rates) o << " " << rate << " |";
    o << "\n|---|";
    for (size_t i = 0; i < p.rates.size(); ++i) o << "---|";
    o << "\n";
    for (const auto& c : r.curves) {
      o << "| " << c.method << " |";
      for (int rate : p.rates) {
        const RdSample* s = nullptr;
        for (const auto& x : c.points)
          if (x.rate == rate) s = &x;
        if (s)
          o << " " << fmt("%.0f", s->total_kbps) << " kb/s, " << fmt("%.2f", s->psnr_y) << " dB |";
        else
          o << " - |";
      }
      o << "\n";
    }
    o << "\n";
    // BD table.
    const RdCurve* hr = find_curve(r, kHr);
    const RdCurve* bic = find_curve(r, kBicubic);
    o << "| method | BD-rate vs x264-HR | BD-PSNR vs x264-HR | BD-rate vs LR+bicubic | BD-PSNR vs "
         "LR+bicubic |\n|---|---|---|---|---|\n";
    for (const auto& c : r.curves) {
      auto [r1, p1] = bd(hr, c);
      auto [r2, p2] = bd(bic, c);
      o << "| " << c.method << " | " << na(r1, "%+.1f %%") << " | " << na(p1, "%+.2f dB") << " | "
        << na(r2, "%+.1f %%") << " | " << na(p2, "%+.2f dB") << " |\n";
    }
    o << "BD-rate is n/a where the two curves' PSNR ranges overlap by < 0.25 dB (it would "
         "extrapolate); BD-PSNR integrates over the common rate range.\n\n";
    // Cost table: model bytes, MACs, encode time (mean over rates).
    o << "| method | model bytes (mean) | routing bytes (mean) | model+routing kb/s (mean) | MACs "
         "/ "
         "LR pixel | encode s (mean) |\n|---|---|---|---|---|---|\n";
    for (const auto& c : r.curves) {
      if (c.points.empty()) continue;
      double mb = 0, rb = 0, mk = 0, macs = 0, t = 0;
      for (const auto& s : c.points) {
        mb += double(s.model_bytes);
        rb += double(s.routing_bytes);
        mk += s.model_kbps + s.routing_kbps;
        macs += s.macs_per_lr_pixel;
        t += s.encode_s;
      }
      const double n = double(c.points.size());
      o << "| " << c.method << " | " << fmt("%.0f", mb / n) << " | " << fmt("%.0f", rb / n) << " | "
        << fmt("%.1f", mk / n) << " | " << fmt("%.0f", macs / n) << " | " << fmt("%.1f", t / n)
        << " |\n";
    }
    o << "\n";
    // Quality vs compute at the reference rate: every QoS level of every file.
    const int ref = reference_rate(p);
    o << "Quality vs compute at " << ref
      << " kb/s (every QoS level of each file; levels > 0 are "
         "measured by the encoder on an even frame sample):\n\n";
    o << "| method | level | MACs / LR pixel | PSNR-Y dB | SSIM-Y |\n|---|---|---|---|---|\n";
    for (const auto& c : r.curves) {
      if (c.method == kHr || c.method == "dydca cheapest") continue;  // no SR / same file as L0
      const RdSample* s = point_at(c, ref);
      if (!s) continue;
      if (c.method == kBicubic) {
        o << "| " << c.method << " | - | 0 | " << fmt("%.2f", s->psnr_y) << " | "
          << fmt("%.4f", s->ssim_y) << " |\n";
        continue;
      }
      const std::string m = c.method == "dydca L0" ? "dydca" : c.method;
      for (const auto& l : s->levels)
        o << "| " << m << " | " << l.level << " | " << fmt("%.0f", l.macs_per_lr_pixel) << " | "
          << fmt("%.2f", l.psnr_y) << " | " << fmt("%.4f", l.ssim_y) << " |\n";
    }
    o << "\n";
    // Decoder cost of each method's file at the reference rate.
    bool any_decode = false;
    for (const auto& c : r.curves) any_decode = any_decode || c.decode.has_value();
    if (any_decode) {
      o << "Decoders (file at " << ref << " kb/s, dydca::decode_file into a null sink, "
        << p.threads << " threads, best of " << p.decode_runs << " runs, in a child process):\n\n";
      o << "| method | decoder | fps | setup s | peak RSS MB | idle RSS MB | decode RSS MB | SR "
           "runtime MB | models loaded | switch ms | tile switches | frame switches "
           "|\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
      for (const auto& c : r.curves) {
        if (!c.decode) continue;
        const DecodeCost& d = *c.decode;
        const bool multi = d.models > 1;
        o << "| " << c.method << " | " << d.decoder << " | " << fmt("%.1f", d.fps) << " | "
          << fmt("%.2f", d.setup_s) << " | " << fmt("%.0f", d.rss_peak_kb / 1024.0) << " | "
          << fmt("%.0f", d.rss_idle_kb / 1024.0) << " | "
          << fmt("%.0f", (d.rss_peak_kb - d.rss_idle_kb) / 1024.0) << " | "
          << fmt("%.1f", double(d.runtime_bytes) / (1 << 20)) << " | "
          << (d.models > 0 ? std::to_string(d.models_loaded) + "/" + std::to_string(d.models)
                           : std::string("-"))
          << " | " << (multi ? fmt("%.1f", d.switch_ms) : std::string("-")) << " | "
          << (multi ? std::to_string(d.tile_switches) : std::string("-")) << " | "
          << (multi ? std::to_string(d.frame_switches) : std::string("-")) << " |\n";
      }
      o << "\nidle RSS = the child process before decoding (binary and shared libraries; this "
           "binary links LibTorch for the encoder), decode RSS = peak - idle. Switch ms = creating "
           "the runtimes of multi-model files on first use (the model switch); a tile or frame "
           "switch after that picks an already created runtime.\n\n";
    }
    if (!r.errors.empty()) {
      o << "Failed runs:\n\n";
      for (const auto& e : r.errors) o << "- " << e << "\n";
      o << "\n";
    }
    const std::string tag = r.name + "_x" + std::to_string(r.scale);
    o << "![RD " << r.name << " x" << r.scale << "](rd_" << tag << ".png)\n";
    o << "![PSNR-Y vs MACs " << r.name << " x" << r.scale << "](macs_" << tag << ".png)\n";
    if (any_decode)
      o << "![decode fps and RSS " << r.name << " x" << r.scale << "](decode_" << tag << ".png)\n";
    o << "![model bytes " << r.name << " x" << r.scale << "](bytes_" << tag << ".png)\n\n";
  }
  o << "Encode time of dydca rows is the whole server pipeline (x264 + training + eval) per rate; "
       "the LR+bicubic row comes from the dynamic run (no separate encode). The LR+bicubic decoder "
       "is the dynamic file's LR stream remuxed alone and decoded by the plain-video fallback "
       "(swscale bicubic, all planes); x264-HR is its HR stream through the same path at x1.\n";
  return o.str();
}

namespace {

// Feeds one script to gnuplot; a failure is a warning (plots are extras).
void run_gnuplot(const std::string& script, const std::string& png) {
  FILE* g = popen("gnuplot", "w");
  if (!g) {
    log_warning("bench: cannot start gnuplot for " + png);
    return;
  }
  std::fputs(script.c_str(), g);
  if (pclose(g) != 0) log_warning("bench: gnuplot failed for " + png);
}

const char* kTerm = "set terminal pngcairo size 900,600 enhanced font 'sans,10'\n";

// One colour per method in every plot.
std::string method_color(const std::string& m) {
  static const std::map<std::string, std::string> colors{
      {kHr, "#000000"},          {kBicubic, "#999999"},
      {"dydca L0", "#0072b2"},   {"dydca cheapest", "#56b4e9"},
      {"static", "#e69f00"},     {"per-chunk", "#d55e00"},
      {"per-segment", "#009e73"}};
  auto it = colors.find(m);
  return it == colors.end() ? "#cc79a7" : it->second;
}

Status plot_rd(const std::string& base, const RdResult& r) {
  if (std::none_of(r.curves.begin(), r.curves.end(),
                   [](const RdCurve& c) { return !c.points.empty(); }))
    return Status::ok();
  {
    std::ofstream d(base + ".dat");
    for (const auto& c : r.curves) {
      if (c.points.empty()) continue;  // a run still going or failed: no block
      d << "# " << c.method << "\n";
      for (const auto& s : c.points) d << s.total_kbps << " " << s.psnr_y << "\n";
      d << "\n\n";
    }
    if (!d) return Status::error("cannot write " + base + ".dat");
  }
  std::ostringstream g;
  g << kTerm << "set output " << gq(base + ".png") << "\n";
  g << "set title "
    << gq(r.name + " x" + std::to_string(r.scale) + ": PSNR-Y vs total kb/s (video+model+routing)")
    << "\n";
  g << "set xlabel 'total kb/s'\nset ylabel 'PSNR-Y (dB)'\nset logscale x 2\n";
  g << "set grid\nset key outside right top\n";
  g << "plot ";
  int idx = 0;
  for (const auto& c : r.curves) {
    if (c.points.empty()) continue;
    if (idx) g << ", ";
    g << gq(base + ".dat") << " index " << idx << " with linespoints lw 2 lc rgb "
      << gq(method_color(c.method)) << " title " << gq(c.method);
    ++idx;
  }
  g << "\n";
  run_gnuplot(g.str(), base + ".png");
  return Status::ok();
}

// PSNR-Y vs MACs per LR pixel at the reference rate: dydca's QoS levels as a
// labelled line, the model baselines' levels, bicubic at 0 MACs.
Status plot_macs(const std::string& base, const RdResult& r, int ref) {
  std::vector<std::string> titles, colors;
  {
    std::ofstream d(base + ".dat");
    for (const auto& c : r.curves) {
      if (c.method == kHr || c.method == "dydca cheapest") continue;
      const RdSample* s = point_at(c, ref);
      if (!s) continue;
      std::vector<LevelPoint> lv = s->levels;
      if (c.method == kBicubic) lv = {{0, s->psnr_y, s->ssim_y, 0.0}};
      if (lv.empty()) continue;
      std::sort(lv.begin(), lv.end(), [](const LevelPoint& x, const LevelPoint& y) {
        return x.macs_per_lr_pixel < y.macs_per_lr_pixel;
      });
      d << "# " << c.method << "\n";
      for (const auto& l : lv)
        d << l.macs_per_lr_pixel << " " << l.psnr_y << " "
          << dq(lv.size() > 1 ? "L" + std::to_string(l.level) : "") << "\n";
      d << "\n\n";
      titles.push_back(c.method == "dydca L0" ? "dydca (QoS levels)" : c.method);
      colors.push_back(method_color(c.method));
    }
    if (!d) return Status::error("cannot write " + base + ".dat");
  }
  if (titles.empty()) return Status::ok();
  std::ostringstream g;
  g << kTerm << "set output " << gq(base + ".png") << "\n";
  g << "set title "
    << gq(r.name + " x" + std::to_string(r.scale) + ": PSNR-Y vs MACs per LR pixel (" +
          std::to_string(ref) + " kb/s LR video)")
    << "\n";
  g << "set xlabel 'MACs per LR pixel'\nset ylabel 'PSNR-Y (dB)'\nset grid\n";
  g << "set key outside right top\nset xrange [0:*]\n";
  g << "set offsets 0, graph 0.05, graph 0.1, graph 0.1\n";
  g << "plot ";
  for (size_t i = 0; i < titles.size(); ++i) {
    if (i) g << ", ";
    g << gq(base + ".dat") << " index " << i
      << " using 1:2 with linespoints lw 2 pt 7 ps 1.2 lc rgb " << gq(colors[i]) << " title "
      << gq(titles[i]) << ", " << gq(base + ".dat") << " index " << i
      << " using 1:2:3 with labels offset char 0,1 notitle";
  }
  g << "\n";
  run_gnuplot(g.str(), base + ".png");
  return Status::ok();
}

// Decode fps and peak RSS (idle + decode) per decoder, two bar panels.
Status plot_decode(const std::string& base, const RdResult& r, const RdBenchParams& p) {
  int n = 0;
  {
    std::ofstream d(base + ".dat");
    d << "# method fps idle_MB decode_MB\n";
    for (const auto& c : r.curves) {
      if (!c.decode) continue;
      const DecodeCost& x = *c.decode;
      d << dq(c.method) << " " << x.fps << " " << x.rss_idle_kb / 1024.0 << " "
        << std::max<int64_t>(0, x.rss_peak_kb - x.rss_idle_kb) / 1024.0 << "\n";
      ++n;
    }
    if (!d) return Status::error("cannot write " + base + ".dat");
  }
  if (n == 0) return Status::ok();
  std::ostringstream g;
  g << "set terminal pngcairo size 1100,550 enhanced font 'sans,10'\n";
  g << "set output " << gq(base + ".png") << "\n";
  g << "set multiplot layout 1,2 title "
    << gq(r.name + " x" + std::to_string(r.scale) + ": decoders (" +
          std::to_string(reference_rate(p)) + " kb/s files, " + std::to_string(r.frames) +
          " frames, " + std::to_string(p.threads) + " threads, null sink)")
    << "\n";
  g << "set style data histograms\nset style fill solid 0.8 border -1\nset boxwidth 0.7\n";
  g << "set xtics rotate by -30 nomirror\nset grid ytics\nset yrange [0:*]\n";
  g << "set style histogram clustered gap 1\nset title 'decode fps (best run)'\n";
  g << "set ylabel 'frames/s'\nset offsets 0, 0, graph 0.1, 0\n";
  g << "plot " << gq(base + ".dat") << " using 2:xtic(1) lc rgb '#4477aa' notitle, '' using "
    << "0:2:(sprintf('%.1f',$2)) with labels offset char 0,0.7 notitle\n";
  g << "set style histogram rowstacked\nset title 'peak RSS of the decoder process'\n";
  g << "set ylabel 'MB'\nset key outside top center horizontal\n";
  g << "plot " << gq(base + ".dat")
    << " using 3:xtic(1) lc rgb '#bbbbbb' title 'idle (binary + libs)', "
    << "'' using 4 lc rgb '#cc6677' title 'decoding'\n";
  g << "unset multiplot\n";
  run_gnuplot(g.str(), base + ".png");
  return Status::ok();
}

// Model + routing bytes per model method at the reference rate.
Status plot_bytes(const std::string& base, const RdResult& r, int ref) {
  int n = 0;
  {
    std::ofstream d(base + ".dat");
    d << "# method model_kB routing_kB\n";
    for (const auto& c : r.curves) {
      const RdSample* s = point_at(c, ref);
      if (!s || s->model_bytes <= 0 || c.method == "dydca cheapest") continue;
      d << dq(c.method == "dydca L0" ? "dydca" : c.method) << " " << s->model_bytes / 1000.0 << " "
        << s->routing_bytes / 1000.0 << "\n";
      ++n;
    }
    if (!d) return Status::error("cannot write " + base + ".dat");
  }
  if (n == 0) return Status::ok();
  std::ostringstream g;
  g << "set terminal pngcairo size 700,500 enhanced font 'sans,10'\n";
  g << "set output " << gq(base + ".png") << "\n";
  g << "set title "
    << gq(r.name + " x" + std::to_string(r.scale) + ": model + routing bytes (" +
          std::to_string(ref) + " kb/s run)")
    << "\n";
  g << "set style data histograms\nset style histogram rowstacked\n";
  g << "set style fill solid 0.8 border -1\nset boxwidth 0.6\nset grid ytics\nset yrange [0:*]\n";
  g << "set ylabel 'kB'\nset key outside top center horizontal\nset offsets 0, 0, graph 0.1, 0\n";
  g << "plot " << gq(base + ".dat")
    << " using 2:xtic(1) lc rgb '#4477aa' title 'model', '' using 3 "
    << "lc rgb '#ddcc77' title 'routing', '' using 0:($2+$3):(sprintf('%.1f kB',$2+$3)) with "
       "labels "
    << "offset char 0,0.7 notitle\n";
  run_gnuplot(g.str(), base + ".png");
  return Status::ok();
}

}  // namespace

Status write_rd_plots(const RdBenchParams& p, const std::vector<RdResult>& results) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    log_warning("bench: gnuplot not found, no plots written");
    return Status::ok();
  }
  const int ref = reference_rate(p);
  for (const auto& r : results) {
    const std::string tag = r.name + "_x" + std::to_string(r.scale);
    DYDCA_TRY(plot_rd(p.out_dir + "/rd_" + tag, r));
    DYDCA_TRY(plot_macs(p.out_dir + "/macs_" + tag, r, ref));
    DYDCA_TRY(plot_decode(p.out_dir + "/decode_" + tag, r, p));
    DYDCA_TRY(plot_bytes(p.out_dir + "/bytes_" + tag, r, ref));
  }
  return Status::ok();
}

Status replot_rd_report(const std::string& dir) {
  using nlohmann::json;
  std::ifstream f(dir + "/report.json");
  if (!f) return Status::error("cannot read " + dir + "/report.json");
  json j = json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::error(dir + "/report.json: not JSON");
  RdBenchParams p;
  p.out_dir = dir;
  try {
    p.preset = j.value("preset", p.preset);
    p.rates = j.value("rates", p.rates);
    p.scales = j.value("scales", p.scales);
    p.steps = j.value("steps", 0);
    p.quality = j.value("quality", p.quality);
    p.max_frames = j.value("max_frames", int64_t{0});
    p.ref_rate = j.value("reference_rate", 0);
    p.decode_runs = j.value("decode_runs", p.decode_runs);
    p.threads = j.value("threads", p.threads);
    std::vector<RdResult> results;
    for (const auto& jr : j.at("results")) {
      RdResult r;
      r.clip = jr.value("clip", "");
      r.name = jr.value("name", "");
      r.scale = jr.value("scale", 2);
      r.frames = jr.value("frames", 0);
      r.fps = jr.value("fps", 0.0);
      r.hr_width = jr.at("hr").at(0), r.hr_height = jr.at("hr").at(1);
      r.lr_width = jr.at("lr").at(0), r.lr_height = jr.at("lr").at(1);
      r.errors = jr.value("errors", std::vector<std::string>{});
      for (const auto& jc : jr.at("methods")) {
        RdCurve c;
        c.method = jc.value("method", "");
        for (const auto& jp : jc.at("points")) {
          RdSample s;
          s.rate = jp.value("rate", 0);
          s.total_kbps = jp.value("total_kbps", 0.0);
          s.video_kbps = jp.value("video_kbps", 0.0);
          s.model_kbps = jp.value("model_kbps", 0.0);
          s.routing_kbps = jp.value("routing_kbps", 0.0);
          s.model_bytes = jp.value("model_bytes", int64_t{0});
          s.routing_bytes = jp.value("routing_bytes", int64_t{0});
          s.psnr_y = jp.value("psnr_y", 0.0);
          s.ssim_y = jp.value("ssim_y", 0.0);
          s.macs_per_lr_pixel = jp.value("macs_per_lr_pixel", 0.0);
          s.encode_s = jp.value("encode_s", 0.0);
          if (jp.contains("levels"))
            for (const auto& jl : jp.at("levels"))
              s.levels.push_back({jl.value("level", 0), jl.value("psnr_y", 0.0),
                                  jl.value("ssim_y", 0.0), jl.value("macs_per_lr_pixel", 0.0)});
          c.points.push_back(s);
        }
        if (jc.contains("decode") && jc.at("decode").is_object()) {
          const json& jd = jc.at("decode");
          DecodeCost d;
          d.decoder = jd.value("decoder", "");
          d.rate = jd.value("rate", 0);
          d.level = jd.value("level", 0);
          d.frames = jd.value("frames", int64_t{0});
          d.fps = jd.value("fps", 0.0);
          d.setup_s = jd.value("setup_s", 0.0);
          d.rss_idle_kb = jd.value("rss_idle_kb", int64_t{0});
          d.rss_peak_kb = jd.value("rss_peak_kb", int64_t{0});
          d.runtime_bytes = jd.value("runtime_bytes", int64_t{0});
          d.models = jd.value("models", 0);
          d.models_loaded = jd.value("models_loaded", 0);
          d.switch_ms = jd.value("switch_ms", 0.0);
          d.tile_switches = jd.value("tile_switches", int64_t{0});
          d.frame_switches = jd.value("frame_switches", int64_t{0});
          c.decode = d;
        }
        r.curves.push_back(std::move(c));
      }
      results.push_back(std::move(r));
    }
    std::ofstream m(dir + "/report.md");
    m << rd_report_md(p, results);
    if (!m) return Status::error("cannot write " + dir + "/report.md");
    return write_rd_plots(p, results);
  } catch (const json::exception& e) {
    return Status::error(dir + "/report.json: " + e.what());
  }
}

Status run_rd_bench(const RdBenchParams& p, std::vector<RdResult>* out) {
  std::error_code ec;
  fs::create_directories(p.out_dir + "/work", ec);
  if (ec) return Status::error("cannot create " + p.out_dir + ": " + ec.message());
  const int ref = reference_rate(p);
  std::vector<RdResult> results;
  const auto write_all = [&]() -> Status {
    std::ofstream j(p.out_dir + "/report.json");
    j << rd_report_json(p, results) << "\n";
    std::ofstream m(p.out_dir + "/report.md");
    m << rd_report_md(p, results);
    if (!j || !m) return Status::error("cannot write the reports in " + p.out_dir);
    return Status::ok();
  };
  for (const auto& clip : p.clips) {
    VideoInfo info;
    ReadOptions ro;
    ro.max_frames = p.max_frames;
    ro.threads = p.threads;
    auto hr = read_all_frames(clip, &info, ro);
    if (!hr) return hr.status().with_context(clip);
    if (hr->empty()) return Status::error(clip + ": no frames");
    const Rational fps = info.frame_rate.valid() ? info.frame_rate : Rational{25, 1};
    std::string name = fs::path(clip).stem().string();
    // One HR x264 curve per clip, shared by all scales.
    RdCurve hr_curve{kHr, {}, {}};
    std::vector<std::string> hr_errors;
    for (int rate : p.rates) {
      if (p.stop && *p.stop) return Status::error("interrupted");
      say(p, name + ": x264 HR " + std::to_string(rate) + " kb/s");
      const bool probe = rate == ref && !p.probe_exe.empty();
      const std::string keep =
          probe ? p.out_dir + "/work/" + name + "_hr_" + std::to_string(rate) + ".mkv" : "";
      auto s = run_hr_x264(*hr, fps, rate, p, keep);
      if (s)
        hr_curve.points.push_back(*s);
      else
        hr_errors.push_back("x264-HR " + std::to_string(rate) + ": " + s.error_message());
      if (s && probe) {
        say(p, name + ": decode x264 HR " + std::to_string(rate) + " kb/s");
        auto d = measure_decode(p, keep, 0, 1, true);
        if (d) {
          d->decoder = "H.264 at HR (plain video, x1)";
          d->rate = rate;
          hr_curve.decode = *d;
        } else {
          hr_errors.push_back("decode x264-HR: " + d.error_message());
        }
      }
      if (!keep.empty()) fs::remove(keep, ec);
    }
    for (int scale : p.scales) {
      RdResult r;
      r.clip = clip;
      r.name = name;
      r.scale = scale;
      r.frames = int(hr->size());
      r.fps = fps.to_double();
      r.hr_width = (*hr)[0].width;
      r.hr_height = (*hr)[0].height;
      r.curves.push_back(hr_curve);
      r.errors = hr_errors;
      std::vector<std::string> baselines{"none", "static"};
      if (p.multi_model) {
        baselines.push_back("per-chunk");
        baselines.push_back("per-segment");
      }
      // Fixed row order in tables and plots.
      curve(r, kBicubic);
      curve(r, "dydca L0");
      curve(r, "dydca cheapest");
      for (size_t b = 1; b < baselines.size(); ++b) curve(r, baselines[b]);
      // Decoder cost of the file of method `b` (dydca: L0, cheapest level and
      // its LR stream alone through the plain-video bicubic fallback).
      const auto probe_file = [&](RdResult& res, const std::string& b, const std::string& mkv,
                                  const EncodeReport& rep, int rate) {
        // plain_scale 0: a dydca file; > 0: a plain video upscaled bicubically.
        const auto one = [&](const std::string& method, const std::string& file, int level,
                             int plain_scale, const std::string& decoder) {
          say(p, name + " x" + std::to_string(scale) + ": decode " + method);
          auto d = measure_decode(p, file, level, std::max(1, plain_scale), plain_scale > 0);
          if (!d) {
            res.errors.push_back("decode " + method + ": " + d.error_message());
            log_warning("bench: " + res.errors.back());
            return;
          }
          d->decoder = decoder;
          d->rate = rate;
          curve(res, method).decode = *d;
        };
        const int levels = int(rep.levels.size());
        if (b != "none") {
          const std::string models =
              b == "static" ? "1 model"
                            : "1 model per " + std::string(b == "per-chunk" ? "chunk" : "segment");
          one(b, mkv, 0, 0, "SR, " + models);
          return;
        }
        one("dydca L0", mkv, 0, 0, "SR dynamic, level 0 of " + std::to_string(levels));
        if (levels > 1)
          one("dydca cheapest", mkv, levels - 1, 0,
              "SR dynamic, level " + std::to_string(levels - 1));
        // The LR stream alone: what a player without the model would show.
        const std::string lr =
            p.out_dir + "/work/" + name + "_x" + std::to_string(scale) + "_lr.mkv";
        auto dm = demux_file(mkv);
        Status st = dm ? write_video_file(lr, dm->video) : dm.status();
        if (st)
          one(kBicubic, lr, 0, scale,
              "H.264 LR + bicubic x" + std::to_string(scale) + " (plain video)");
        else
          res.errors.push_back("LR stream of " + mkv + ": " + st.message());
        fs::remove(lr, ec);
      };
      // Method outer, rate inner: a run cut short still has whole curves.
      for (const auto& b : baselines) {
        for (int rate : p.rates) {
          if (p.stop && *p.stop) return Status::error("interrupted");
          const std::string tag = name + " x" + std::to_string(scale) + " " + std::to_string(rate) +
                                  " kb/s " + (b == "none" ? "dydca" : b);
          say(p, tag);
          EncodeParams e;
          e.input = clip;
          e.output = p.out_dir + "/work/" + name + "_x" + std::to_string(scale) + "_" +
                     std::to_string(rate) + "_" + b + ".mkv";
          e.scale = scale;
          e.bitrate_kbps = rate;
          e.preset = p.preset;
          e.quality = p.quality;
          e.train_steps = p.steps;
          e.baseline = b;
          e.threads = p.threads;
          e.max_frames = p.max_frames;
          e.arch = default_arch(scale);
          e.stop = p.stop;
          auto rep = encode_video(e);
          if (!rep || rep->levels.empty()) {
            fs::remove(e.output, ec);
            r.errors.push_back(tag + ": " + (rep ? "no quality levels" : rep.error_message()));
            log_warning("bench: " + r.errors.back());
            continue;
          }
          if (rate == ref && !p.probe_exe.empty()) probe_file(r, b, e.output, *rep, rate);
          fs::remove(e.output, ec);
          r.lr_width = rep->lr_width;
          r.lr_height = rep->lr_height;
          if (b == "none") {
            RdSample bic;
            bic.rate = rate;
            bic.video_kbps = bic.total_kbps = rep->video_kbps;
            bic.psnr_y = rep->bicubic_psnr_y;
            bic.ssim_y = rep->bicubic_ssim_y;
            bic.encode_s = rep->t_x264;
            curve(r, kBicubic).points.push_back(bic);
            curve(r, "dydca L0").points.push_back(sample_from(*rep, rate, 0));
            const size_t last = rep->levels.size() - 1;
            if (last > 0)
              curve(r, "dydca cheapest").points.push_back(sample_from(*rep, rate, last));
          } else {
            curve(r, b).points.push_back(sample_from(*rep, rate, 0));
          }
        }
        // Partial reports after every curve, so a long run can be read early.
        std::vector<RdResult> keep = results;
        results.push_back(r);
        if (auto s = write_all(); !s) return s;
        results = std::move(keep);
      }
      results.push_back(std::move(r));
      if (auto s = write_all(); !s) return s;
      if (auto s = write_rd_plots(p, results); !s) return s;
    }
  }
  if (auto s = write_all(); !s) return s;
  if (auto s = write_rd_plots(p, results); !s) return s;
  fs::remove_all(p.out_dir + "/work", ec);
  if (out) *out = std::move(results);
  return Status::ok();
}

// Quick CI mode helper lives in the CLI; exposed through this symbol.
Status write_quick_clip(const std::string& path) { return make_quick_clip(path); }

}  // namespace dydca::bench
