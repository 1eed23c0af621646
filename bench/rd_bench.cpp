// `dydca bench`: see rd_bench.h.
#include "rd_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
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
  r.curves.push_back({method, {}});
  return r.curves.back();
}

// x264 at HR resolution, 2-pass at `rate` kb/s, same preset.
Expected<RdSample> run_hr_x264(const std::vector<Frame>& hr, Rational fps, int rate,
                               const RdBenchParams& p) {
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
  return s;
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

std::string rd_report_json(const RdBenchParams& p, const std::vector<RdResult>& results) {
  using nlohmann::json;
  json j;
  j["preset"] = p.preset;
  j["rates"] = p.rates;
  j["scales"] = p.scales;
  j["steps"] = p.steps;
  j["quality"] = p.quality;
  j["max_frames"] = p.max_frames;
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
      for (const auto& s : c.points)
        pts.push_back({{"rate", s.rate}, {"total_kbps", s.total_kbps}, {"video_kbps", s.video_kbps},
                       {"model_kbps", s.model_kbps}, {"routing_kbps", s.routing_kbps},
                       {"model_bytes", s.model_bytes}, {"psnr_y", s.psnr_y}, {"ssim_y", s.ssim_y},
                       {"macs_per_lr_pixel", s.macs_per_lr_pixel}, {"encode_s", s.encode_s}});
      jc["points"] = pts;
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
  o << "Total kb/s = LR video + models + routing (audio excluded). PSNR-Y is full-frame against the "
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
    o << "| method | model bytes (mean) | model+routing kb/s (mean) | MACs / LR pixel | encode s "
         "(mean) |\n|---|---|---|---|---|\n";
    for (const auto& c : r.curves) {
      if (c.points.empty()) continue;
      double mb = 0, mk = 0, macs = 0, t = 0;
      for (const auto& s : c.points) {
        mb += double(s.model_bytes);
        mk += s.model_kbps + s.routing_kbps;
        macs += s.macs_per_lr_pixel;
        t += s.encode_s;
      }
      const double n = double(c.points.size());
      o << "| " << c.method << " | " << fmt("%.0f", mb / n) << " | " << fmt("%.1f", mk / n) << " | "
        << fmt("%.0f", macs / n) << " | " << fmt("%.1f", t / n) << " |\n";
    }
    o << "\n";
    if (!r.errors.empty()) {
      o << "Failed runs:\n\n";
      for (const auto& e : r.errors) o << "- " << e << "\n";
      o << "\n";
    }
    o << "![RD " << r.name << " x" << r.scale << "](rd_" << r.name << "_x" << r.scale << ".png)\n\n";
  }
  o << "Encode time of dydca rows is the whole server pipeline (x264 + training + eval) per rate; "
       "the LR+bicubic row comes from the dynamic run (no separate encode). Decode fps and peak RSS "
       "are not measured here (see dydca_qos_bench / dydca_runtime_bench).\n";
  return o.str();
}

Status write_rd_plots(const std::string& out_dir, const std::vector<RdResult>& results) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    log_warning("bench: gnuplot not found, no RD plots written");
    return Status::ok();
  }
  for (const auto& r : results) {
    const std::string base = out_dir + "/rd_" + r.name + "_x" + std::to_string(r.scale);
    {
      std::ofstream d(base + ".dat");
      for (const auto& c : r.curves) {
        d << "# " << c.method << "\n";
        for (const auto& s : c.points) d << s.total_kbps << " " << s.psnr_y << "\n";
        d << "\n\n";
      }
      if (!d) return Status::error("cannot write " + base + ".dat");
    }
    FILE* g = popen("gnuplot", "w");
    if (!g) return Status::error("cannot start gnuplot");
    std::fprintf(g, "set terminal pngcairo size 900,600 enhanced font 'sans,10'\n");
    std::fprintf(g, "set output '%s.png'\n", base.c_str());
    std::fprintf(g, "set title '%s x%d: PSNR-Y vs total kb/s (video+model+routing)'\n",
                 r.name.c_str(), r.scale);
    std::fprintf(g, "set xlabel 'total kb/s'\nset ylabel 'PSNR-Y (dB)'\nset logscale x 2\n");
    std::fprintf(g, "set grid\nset key outside right top\n");
    std::string cmd = "plot ";
    int idx = 0;
    for (const auto& c : r.curves) {
      if (idx) cmd += ", ";
      cmd += "'" + base + ".dat' index " + std::to_string(idx) + " with linespoints lw 2 title '" +
             c.method + "'";
      ++idx;
    }
    std::fprintf(g, "%s\n", cmd.c_str());
    if (pclose(g) != 0) log_warning("bench: gnuplot failed for " + base + ".png");
  }
  return Status::ok();
}

Status run_rd_bench(const RdBenchParams& p, std::vector<RdResult>* out) {
  std::error_code ec;
  fs::create_directories(p.out_dir + "/work", ec);
  if (ec) return Status::error("cannot create " + p.out_dir + ": " + ec.message());
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
    RdCurve hr_curve{kHr, {}};
    std::vector<std::string> hr_errors;
    for (int rate : p.rates) {
      if (p.stop && *p.stop) return Status::error("interrupted");
      say(p, name + ": x264 HR " + std::to_string(rate) + " kb/s");
      auto s = run_hr_x264(*hr, fps, rate, p);
      if (s)
        hr_curve.points.push_back(*s);
      else
        hr_errors.push_back("x264-HR " + std::to_string(rate) + ": " + s.error_message());
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
      // Method outer, rate inner: a run cut short still has whole curves.
      for (const auto& b : baselines) {
        for (int rate : p.rates) {
          if (p.stop && *p.stop) return Status::error("interrupted");
          const std::string tag = name + " x" + std::to_string(scale) + " " +
                                  std::to_string(rate) + " kb/s " + (b == "none" ? "dydca" : b);
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
          fs::remove(e.output, ec);
          if (!rep || rep->levels.empty()) {
            r.errors.push_back(tag + ": " + (rep ? "no quality levels" : rep.error_message()));
            log_warning("bench: " + r.errors.back());
            continue;
          }
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
            if (last > 0) curve(r, "dydca cheapest").points.push_back(sample_from(*rep, rate, last));
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
    }
  }
  if (auto s = write_all(); !s) return s;
  if (auto s = write_rd_plots(p.out_dir, results); !s) return s;
  fs::remove_all(p.out_dir + "/work", ec);
  if (out) *out = std::move(results);
  return Status::ok();
}

// Quick CI mode helper lives in the CLI; exposed through this symbol.
Status write_quick_clip(const std::string& path) { return make_quick_clip(path); }

}  // namespace dydca::bench
