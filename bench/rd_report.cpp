// `dydca bench`: report.json, report.md, gnuplot plots and --replot (see
// rd_bench.h). Everything here is computed from the measured points, so a
// replot from report.json gives the same tables.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "dydca/atomic_file.h"
#include "dydca/log.h"
#include "rd_bench.h"

namespace dydca::bench {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LevelPoint, level, psnr_y, ssim_y,
                                                macs_per_lr_pixel)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrialPoint, scale, total_kbps, psnr_y,
                                                lanczos_psnr_y, seconds, linear, downscale)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RdSample, rate, total_kbps, video_kbps, model_kbps,
                                                routing_kbps, model_bytes, routing_bytes, psnr_y,
                                                ssim_y, macs_per_lr_pixel, encode_s, scale,
                                                plain_x264, linear, downscale, decision, trials,
                                                lanczos_psnr_y,
                                                levels)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DecodeCost, method, decoder, rate, level, frames,
                                                fps, setup_s, rss_idle_kb, rss_peak_kb,
                                                runtime_bytes, models, models_loaded, switch_ms,
                                                tile_switches, frame_switches)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RdCurve, method, kind, scale, points)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ProbePoint, crf, kbps, psnr_y, abr_kbps)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CropInfo, png, frame, x, y, side, magnify, rate,
                                                panels)
// The run's settings that report.json records (and --replot reads back);
// target_db, a pair, is written and read beside them.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RdBenchParams, preset, quality, steps, scales,
                                                ladder_scales, rates, rate_count, baselines,
                                                baseline_scale, max_frames, ref_rate, decode_runs,
                                                threads)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RdResult, clip, name, frames, fps, duration_s,
                                                hr_width, hr_height, rates, rates_from, probe,
                                                probe_frames, ref_rate, curves, decodes, crop,
                                                errors)

namespace {
using json = nlohmann::json;

const char* kFull = "x264-full";
const char* kHull = "x264 hull";

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
std::string na(double v, const char* f) { return std::isfinite(v) ? fmt(f, v) : "n/a"; }
json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

const RdSample* point_at(const RdCurve& c, int rate) {
  for (const auto& s : c.points)
    if (s.rate == rate) return &s;
  return nullptr;
}

std::vector<RdSample> points_of(const RdCurve* c) { return c ? c->points : std::vector<RdSample>{}; }

// The LR stream of a dydca curve upscaled by lanczos, as a curve over its
// video rate (what the same stream gives without the model).
RdCurve lanczos_curve(const RdCurve& c) {
  RdCurve l{"LR+lanczos (" + c.method + ")", "lanczos", c.scale, {}};
  for (const auto& s : c.points) {
    if (!(s.lanczos_psnr_y > 0)) continue;
    RdSample x = s;
    x.total_kbps = s.video_kbps;
    x.model_kbps = x.routing_kbps = 0;
    x.psnr_y = s.lanczos_psnr_y;
    l.points.push_back(x);
  }
  return l;
}

// Never-worse margin of a point: its PSNR-Y minus x264-full's at its total rate.
double margin(const RdResult& r, const RdSample& s) {
  return s.psnr_y - psnr_at_rate(points_of(find_curve(r, kFull)), s.total_kbps);
}
double sr_gain(const RdSample& s) { return s.lanczos_psnr_y > 0 ? s.psnr_y - s.lanczos_psnr_y : NAN; }

std::string scale_name(const RdSample& s) {
  if (s.plain_x264) return "plain x264";
  std::string n = "x";  // appended, not "x" + ...: GCC 12 warns falsely on that (-Wrestrict)
  n += std::to_string(s.scale);
  if (s.linear) n += " lin";
  if (s.downscale == "area") n += " area";  // lanczos, the default, goes unsaid
  return n;
}

struct Summary {
  std::string method;
  BdNumbers vs_full{NAN, NAN}, vs_hull{NAN, NAN};
  double worst_margin = NAN;
  int worst_margin_rate = 0;
  double mean_gain = NAN;
  double max_encode_ratio = NAN;  // encode seconds / clip seconds
  std::string scales;             // chosen per rate
};

Summary summarize(const RdResult& r) {
  Summary s;
  const RdCurve* m = main_dydca_curve(r);
  if (!m) return s;
  s.method = m->method;
  s.vs_full = bd_numbers(points_of(find_curve(r, kFull)), m->points);
  s.vs_hull = bd_numbers(points_of(find_curve(r, kHull)), m->points);
  double gains = 0;
  int ng = 0;
  for (const auto& p : m->points) {
    const double mg = margin(r, p);
    if (std::isfinite(mg) && !(mg >= s.worst_margin)) s.worst_margin = mg, s.worst_margin_rate = p.rate;
    if (const double g = sr_gain(p); std::isfinite(g)) gains += g, ++ng;
    if (r.duration_s > 0) {
      const double q = p.encode_s / r.duration_s;
      if (!(q <= s.max_encode_ratio)) s.max_encode_ratio = q;
    }
    if (!s.scales.empty()) s.scales += ' ';
    s.scales += scale_name(p);
  }
  if (ng) s.mean_gain = gains / ng;
  return s;
}

// Curves in BD tables: everything but the anchor and the hull, plus the
// LR + lanczos of each dydca curve.
std::vector<RdCurve> bd_rows(const RdResult& r) {
  std::vector<RdCurve> rows;
  for (const auto& c : r.curves)
    if (c.kind == kKindDydca || c.kind == kKindBaseline) rows.push_back(c);
  for (const auto& c : r.curves)
    if (c.kind == kKindDydca) rows.push_back(lanczos_curve(c));
  for (const auto& c : r.curves)
    if (c.kind == kKindX264 && c.method != kFull) rows.push_back(c);
  return rows;
}

}  // namespace

std::string rd_report_json(const RdBenchParams& p, const std::vector<RdResult>& results) {
  json j = p;
  j["target_db"] = {p.target_lo_db, p.target_hi_db};
  json rs = json::array();
  double sum_full = 0, sum_hull = 0;
  int n_full = 0, n_hull = 0;
  for (const auto& r : results) {
    json jr = r;
    const RdCurve* full = find_curve(r, kFull);
    const RdCurve* hull = find_curve(r, kHull);
    // Derived numbers (ignored by --replot, which recomputes them).
    for (size_t i = 0; i < r.curves.size(); ++i) {
      const RdCurve& c = r.curves[i];
      json& jc = jr["curves"][i];
      const BdNumbers f = bd_numbers(points_of(full), c.points);
      const BdNumbers h = bd_numbers(points_of(hull), c.points);
      jc["bd_rate_vs_x264_full"] = num(f.rate_pct);
      jc["bd_psnr_vs_x264_full"] = num(f.psnr_db);
      jc["bd_rate_vs_hull"] = num(h.rate_pct);
      jc["bd_psnr_vs_hull"] = num(h.psnr_db);
      if (c.kind == kKindDydca || c.kind == kKindBaseline)
        for (size_t k = 0; k < c.points.size(); ++k) {
          const RdSample& s = c.points[k];
          jc["points"][k]["x264_full_psnr_y_at_rate"] =
              num(psnr_at_rate(points_of(full), s.total_kbps));
          jc["points"][k]["margin_db"] = num(margin(r, s));
          jc["points"][k]["sr_gain_db"] = num(sr_gain(s));
        }
      if (c.kind == kKindDydca) {
        const RdCurve l = lanczos_curve(c);
        const BdNumbers lf = bd_numbers(points_of(full), l.points);
        const BdNumbers lh = bd_numbers(points_of(hull), l.points);
        jc["lanczos_bd_rate_vs_x264_full"] = num(lf.rate_pct);
        jc["lanczos_bd_rate_vs_hull"] = num(lh.rate_pct);
      }
    }
    const Summary s = summarize(r);
    jr["main_curve"] = s.method.empty() ? json(nullptr) : json(s.method);
    jr["summary"] = {{"bd_rate_vs_x264_full", num(s.vs_full.rate_pct)},
                     {"bd_psnr_vs_x264_full", num(s.vs_full.psnr_db)},
                     {"bd_rate_vs_hull", num(s.vs_hull.rate_pct)},
                     {"bd_psnr_vs_hull", num(s.vs_hull.psnr_db)},
                     {"worst_margin_db", num(s.worst_margin)},
                     {"worst_margin_rate", s.worst_margin_rate},
                     {"mean_sr_gain_db", num(s.mean_gain)},
                     {"max_encode_over_duration", num(s.max_encode_ratio)}};
    if (std::isfinite(s.vs_full.rate_pct)) sum_full += s.vs_full.rate_pct, ++n_full;
    if (std::isfinite(s.vs_hull.rate_pct)) sum_hull += s.vs_hull.rate_pct, ++n_hull;
    rs.push_back(jr);
  }
  j["results"] = rs;
  j["mean"] = {{"bd_rate_vs_x264_full", n_full ? json(sum_full / n_full) : json(nullptr)},
               {"bd_rate_vs_hull", n_hull ? json(sum_hull / n_hull) : json(nullptr)},
               {"clips_with_bd_vs_x264_full", n_full},
               {"clips_with_bd_vs_hull", n_hull}};
  return j.dump(2);
}

std::string rd_report_md(const RdBenchParams& p, const std::vector<RdResult>& results) {
  std::ostringstream o;
  o << "# dydca bench: rate-distortion\n\n";
  o << "Rates are **total** kb/s (video + model + routing; audio excluded), the target of every "
       "method: x264 2-pass (preset "
    << p.preset << ") and dydca's `--bitrate`. PSNR-Y is full-frame against the input at its "
       "own size. `x264-full` (x264 at the full size, same preset) is the anchor; `x264 xS+lanczos` "
       "is x264 on the lanczos-downscaled clip, upscaled back by lanczos (swscale); `x264 hull` is "
       "the upper envelope of all those points over log rate (the ladder a platform already "
       "has). `LR+lanczos (dydca ...)` is the dydca file's own LR stream upscaled by lanczos "
       "(over its video rate): dydca minus it is the SR gain. Training: "
    << (p.steps > 0 ? std::to_string(p.steps) + " steps" : "preset '" + p.quality + "'")
    << (p.max_frames > 0 ? "; first " + std::to_string(p.max_frames) + " frames" : "") << ".\n\n";
  // Summary over clips (the main dydca curve of each).
  o << "## Summary (main dydca curve per clip)\n\n";
  o << "| clip | curve | scale per rate | BD-rate vs x264-full | BD-PSNR vs x264-full | BD-rate vs "
       "hull | BD-PSNR vs hull | worst margin dB (at kb/s) | mean SR gain over lanczos dB | "
       "encode / duration (max) |\n|---|---|---|---|---|---|---|---|---|---|\n";
  double sum_full = 0, sum_hull = 0;
  int n_full = 0, n_hull = 0;
  for (const auto& r : results) {
    const Summary s = summarize(r);
    if (s.method.empty()) {
      o << "| " << r.name << " | (no dydca points) | | | | | | | | |\n";
      continue;
    }
    o << "| " << r.name << " | " << s.method << " | " << s.scales << " | "
      << na(s.vs_full.rate_pct, "%+.1f %%") << " | " << na(s.vs_full.psnr_db, "%+.2f") << " | "
      << na(s.vs_hull.rate_pct, "%+.1f %%") << " | " << na(s.vs_hull.psnr_db, "%+.2f") << " | "
      << na(s.worst_margin, "%+.2f") << " (" << s.worst_margin_rate << ") | "
      << na(s.mean_gain, "%+.2f") << " | " << na(s.max_encode_ratio, "%.1fx") << " |\n";
    if (std::isfinite(s.vs_full.rate_pct)) sum_full += s.vs_full.rate_pct, ++n_full;
    if (std::isfinite(s.vs_hull.rate_pct)) sum_hull += s.vs_hull.rate_pct, ++n_hull;
  }
  o << "| **mean** | | | " << (n_full ? fmt("%+.1f %%", sum_full / n_full) : "n/a") << " (" << n_full
    << " clips) | | " << (n_hull ? fmt("%+.1f %%", sum_hull / n_hull) : "n/a") << " (" << n_hull
    << " clips) | | | | |\n\n";
  o << "Targets (issue 15): margin >= -0.05 dB at every rate (never worse than x264-full); mean "
       "BD-rate <= -25 % vs x264-full and <= -10 % vs the hull; SR gain >= +1.0 dB at x2 on "
       "BBB, cockatoo and cityCC0; encode <= 20x the clip's duration. Negative BD-rate / "
       "positive BD-PSNR = better than the anchor. BD-rate is n/a where the two curves' PSNR "
       "ranges overlap by < 0.25 dB (it would extrapolate), BD-PSNR integrates over the common "
       "rate range; both need 4 points per curve. The margin compares with x264-full "
       "interpolated at the point's measured total rate (linear in log rate).\n\n";

  for (const auto& r : results) {
    o << "## " << r.name << " (" << r.hr_width << "x" << r.hr_height << ", " << r.frames
      << " frames @ " << fmt("%.3g", r.fps) << " fps, " << fmt("%.1f", r.duration_s) << " s)\n\n";
    o << "Rates (total kb/s):";
    for (int x : r.rates) o << " " << x;
    if (r.rates_from == "probe") {
      o << ", log-spaced where x264-full spans " << fmt("%.0f", p.target_lo_db) << "-"
        << fmt("%.0f", p.target_hi_db) << " dB in a probe on " << r.probe_frames
        << " frames (CRF search, then the ends by 2-pass; measured kb/s, PSNR-Y): ";
      for (size_t i = 0; i < r.probe.size(); ++i) {
        const ProbePoint& x = r.probe[i];
        o << (i ? "; " : "");
        if (x.abr_kbps > 0)
          o << "2-pass " << x.abr_kbps;
        else
          o << "CRF " << x.crf;
        o << ": " << fmt("%.0f", x.kbps) << ", " << fmt("%.2f", x.psnr_y);
      }
    } else {
      o << " (--rates)";
    }
    o << ". Reference rate (decoders, MACs, crop): " << r.ref_rate << " kb/s.\n\n";
    // RD table: rows = methods, columns = rates.
    std::vector<RdCurve> rows;
    for (const auto& c : r.curves)
      if (c.kind == kKindX264) rows.push_back(c);
    for (const auto& c : r.curves)
      if (c.kind == kKindDydca || c.kind == kKindBaseline) rows.push_back(c);
    for (const auto& c : r.curves)
      if (c.kind == kKindDydca) rows.push_back(lanczos_curve(c));
    o << "| method |";
    for (int rate : r.rates) o << " " << rate << " |";
    o << "\n|---|";
    for (size_t i = 0; i < r.rates.size(); ++i) o << "---|";
    o << "\n";
    for (const auto& c : rows) {
      o << "| " << c.method << " |";
      for (int rate : r.rates) {
        const RdSample* s = point_at(c, rate);
        if (s)
          o << " " << fmt("%.0f", s->total_kbps) << " kb/s, " << fmt("%.2f", s->psnr_y) << " dB";
        else
          o << " -";
        if (s && c.kind == kKindDydca) o << " (" << scale_name(*s) << ")";
        o << " |";
      }
      o << "\n";
    }
    if (const RdCurve* h = find_curve(r, kHull)) {
      o << "\n`x264 hull` points:";
      for (const auto& s : h->points)
        o << " " << fmt("%.0f", s.total_kbps) << " kb/s " << fmt("%.2f", s.psnr_y) << " dB (x"
          << s.scale << ");";
      o << "\n";
    }
    o << "\n";
    // BD table.
    const auto full = points_of(find_curve(r, kFull));
    const auto hull = points_of(find_curve(r, kHull));
    o << "| method | BD-rate vs x264-full | BD-PSNR vs x264-full | BD-rate vs hull | BD-PSNR vs "
         "hull |\n|---|---|---|---|---|\n";
    for (const auto& c : bd_rows(r)) {
      const BdNumbers f = bd_numbers(full, c.points), h = bd_numbers(hull, c.points);
      o << "| " << c.method << " | " << na(f.rate_pct, "%+.1f %%") << " | "
        << na(f.psnr_db, "%+.2f dB") << " | " << na(h.rate_pct, "%+.1f %%") << " | "
        << na(h.psnr_db, "%+.2f dB") << " |\n";
    }
    o << "\n";
    // Per rate: scale, split, margin, SR gain, encode time; auto's trials.
    for (const auto& c : r.curves) {
      if (c.kind != kKindDydca || c.points.empty()) continue;
      o << "`" << c.method << "` per rate:\n\n";
      o << "| rate | scale | total kb/s | video / model / routing kb/s | PSNR-Y | x264-full at "
           "that rate | margin dB | LR+lanczos dB | SR gain dB | encode s (x duration) "
           "|\n|---|---|---|---|---|---|---|---|---|---|\n";
      for (const auto& s : c.points) {
        o << "| " << s.rate << " | " << scale_name(s) << " | " << fmt("%.1f", s.total_kbps) << " | "
          << fmt("%.1f", s.video_kbps) << " / " << fmt("%.1f", s.model_kbps) << " / "
          << fmt("%.1f", s.routing_kbps) << " | " << fmt("%.2f", s.psnr_y) << " | "
          << na(psnr_at_rate(full, s.total_kbps), "%.2f") << " | " << na(margin(r, s), "%+.2f")
          << " | " << (s.lanczos_psnr_y > 0 ? fmt("%.2f", s.lanczos_psnr_y) : "-") << " | "
          << na(sr_gain(s), "%+.2f") << " | " << fmt("%.0f", s.encode_s) << " ("
          << (r.duration_s > 0 ? fmt("%.1fx", s.encode_s / r.duration_s) : "-") << ") |\n";
      }
      o << "\n";
      bool any_trials = false;
      for (const auto& s : c.points) any_trials = any_trials || !s.trials.empty() || !s.decision.empty();
      if (any_trials) {
        o << "| rate | trials (scale: total kb/s, PSNR-Y, lanczos of its LR, s) | decision "
             "|\n|---|---|---|\n";
        for (const auto& s : c.points) {
          o << "| " << s.rate << " | ";
          for (size_t i = 0; i < s.trials.size(); ++i) {
            const TrialPoint& t = s.trials[i];
            o << (i ? "; " : "");
            if (t.scale == 0)
              o << "plain";
            else
              o << "x" << t.scale << (t.linear ? " lin" : "")
                << (t.downscale == "area" ? " area" : "");
            o << ": " << fmt("%.0f", t.total_kbps) << ", " << fmt("%.2f", t.psnr_y) << " dB";
            if (t.lanczos_psnr_y > 0) o << " (" << fmt("%.2f", t.lanczos_psnr_y) << ")";
            o << ", " << fmt("%.0f", t.seconds) << " s";
          }
          o << " | " << s.decision << " |\n";
        }
        o << "\n";
      }
    }
    // Model costs and quality vs compute at the reference rate.
    o << "At " << r.ref_rate
      << " kb/s: model + routing and every QoS level (levels > 0 measured by the encoder on an "
         "even frame sample):\n\n";
    o << "| method | model bytes | routing bytes | level | MACs / LR pixel | PSNR-Y | SSIM-Y "
         "|\n|---|---|---|---|---|---|---|\n";
    for (const auto& c : r.curves) {
      if (c.kind != kKindDydca && c.kind != kKindBaseline) continue;
      const RdSample* s = point_at(c, r.ref_rate);
      if (!s) continue;
      for (const auto& l : s->levels)
        o << "| " << c.method << " (" << scale_name(*s) << ") | " << s->model_bytes << " | "
          << s->routing_bytes << " | " << l.level << " | " << fmt("%.0f", l.macs_per_lr_pixel)
          << " | " << fmt("%.2f", l.psnr_y) << " | " << fmt("%.4f", l.ssim_y) << " |\n";
      if (c.kind == kKindDydca && s->lanczos_psnr_y > 0)
        o << "| LR+lanczos (" << c.method << ") | 0 | 0 | - | 0 | " << fmt("%.2f", s->lanczos_psnr_y)
          << " | - |\n";
    }
    o << "\n";
    // Decoders.
    if (!r.decodes.empty()) {
      o << "Decoders (files at " << r.ref_rate << " kb/s, dydca::decode_file into a null sink, "
        << p.threads << " threads, best of " << p.decode_runs << " runs, in a child process):\n\n";
      o << "| method | decoder | fps | setup s | peak RSS MB | idle RSS MB | decode RSS MB | SR "
           "runtime MB | models loaded | switch ms | tile switches | frame switches "
           "|\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
      for (const auto& d : r.decodes) {
        const bool multi = d.models > 1;
        o << "| " << d.method << " | " << d.decoder << " | " << fmt("%.1f", d.fps) << " | "
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
           "binary links LibTorch for the encoder), decode RSS = peak - idle. Switch ms = "
           "creating the runtimes of multi-model files on first use.\n\n";
    }
    if (!r.errors.empty()) {
      o << "Failed runs:\n\n";
      for (const auto& e : r.errors) o << "- " << e << "\n";
      o << "\n";
    }
    if (!r.crop.png.empty()) {
      o << "Crop of frame " << r.crop.frame << " at (" << r.crop.x << ", " << r.crop.y << "), "
        << r.crop.side << "x" << r.crop.side << " pixels shown " << r.crop.magnify
        << "x (nearest neighbour), the block of largest gradient energy, at " << r.crop.rate
        << " kb/s:\n\n![crop " << r.name << "](" << r.crop.png << ")\n\n";
    }
    o << "![RD " << r.name << "](rd_" << r.name << ".png)\n";
    o << "![x264 ladder " << r.name << "](ladder_" << r.name << ".png)\n";
    o << "![PSNR-Y vs MACs " << r.name << "](macs_" << r.name << ".png)\n";
    if (!r.decodes.empty())
      o << "![decode fps and RSS " << r.name << "](decode_" << r.name << ".png)\n";
    o << "![model bytes " << r.name << "](bytes_" << r.name << ".png)\n\n";
  }
  o << "Encode time of dydca rows is the whole server pipeline (for auto: trials included). The "
       "LR + bicubic decoder row is the main dydca file's LR stream remuxed alone and decoded by "
       "the plain-video fallback (swscale bicubic, all planes); x264-full is its stream through "
       "the same path at x1.\n";
  return o.str();
}

namespace {

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

const char* kTerm = "set terminal pngcairo size 1000,650 enhanced font 'sans,10'\n";

std::string color_of(const RdCurve& c, int i) {
  static const char* dydca[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7"};
  static const char* ladder[] = {"#000000", "#e69f00", "#56b4e9", "#999999", "#666666"};
  if (c.kind == kKindHull) return "#000000";
  if (c.kind == kKindX264) return ladder[std::clamp(c.scale - 1, 0, 4)];
  if (c.kind == kKindBaseline) return "#f0e442";
  return dydca[i % 4];
}

struct Series {
  RdCurve curve;
  std::string style;  // gnuplot "with ..." part incl. colour
  bool labels = false;  // label each point with its scale
};

Status plot_series(const std::string& base, const std::string& title,
                   const std::vector<Series>& series) {
  int n = 0;
  {
    std::ofstream d(base + ".dat");
    for (const auto& s : series) {
      if (s.curve.points.empty()) continue;
      d << "# " << s.curve.method << "\n";
      std::vector<RdSample> pts = s.curve.points;
      std::sort(pts.begin(), pts.end(),
                [](const RdSample& a, const RdSample& b) { return a.total_kbps < b.total_kbps; });
      for (const auto& x : pts)
        d << x.total_kbps << " " << x.psnr_y << " " << dq(scale_name(x)) << "\n";
      d << "\n\n";
      ++n;
    }
    if (!d) return Status::error("cannot write " + base + ".dat");
  }
  if (n == 0) return Status::ok();
  std::ostringstream g;
  g << kTerm << "set output " << gq(base + ".png") << "\n";
  g << "set title " << gq(title) << "\n";
  g << "set xlabel 'total kb/s (video + model + routing)'\nset ylabel 'PSNR-Y (dB)'\n";
  g << "set logscale x 2\nset grid\nset key outside right top\n";
  g << "plot ";
  int idx = 0;
  for (const auto& s : series) {
    if (s.curve.points.empty()) continue;
    if (idx) g << ", ";
    g << gq(base + ".dat") << " index " << idx << " using 1:2 " << s.style << " title "
      << gq(s.curve.method);
    if (s.labels)
      g << ", " << gq(base + ".dat") << " index " << idx
        << " using 1:2:3 with labels offset char 0,-1 font ',8' notitle";
    ++idx;
  }
  g << "\n";
  run_gnuplot(g.str(), base + ".png");
  return Status::ok();
}

// Main RD plot: x264-full, the hull, every dydca curve (auto labelled with
// its chosen scales), the main curve's LR + lanczos, the baselines.
Status plot_rd(const std::string& base, const RdResult& r) {
  std::vector<Series> s;
  const auto lines = [](const std::string& col, const char* extra) {
    return "with linespoints " + std::string(extra) + " lc rgb " + gq(col);
  };
  if (const RdCurve* c = find_curve(r, kFull)) s.push_back({*c, lines("#000000", "lw 2 pt 7"), false});
  if (const RdCurve* c = find_curve(r, kHull)) s.push_back({*c, lines("#000000", "lw 2 dt 2 pt 6"), false});
  int i = 0;
  const RdCurve* main = main_dydca_curve(r);
  for (const auto& c : r.curves) {
    if (c.kind == kKindDydca) {
      s.push_back({c, lines(color_of(c, i), "lw 2 pt 5"), c.scale == 0});
      if (&c == main) s.push_back({lanczos_curve(c), lines(color_of(c, i), "lw 1 dt 3 pt 4"), false});
      ++i;
    } else if (c.kind == kKindBaseline) {
      s.push_back({c, lines(color_of(c, 0), "lw 1 pt 3"), false});
    }
  }
  return plot_series(base, r.name + ": PSNR-Y vs total rate", s);
}

// The x264 ladder: each scale + lanczos, the hull, and the main dydca curve.
Status plot_ladder(const std::string& base, const RdResult& r) {
  std::vector<Series> s;
  for (const auto& c : r.curves)
    if (c.kind == kKindX264)
      s.push_back({c, "with linespoints lw 1.5 pt 7 lc rgb " + gq(color_of(c, 0)), false});
  if (const RdCurve* c = find_curve(r, kHull))
    s.push_back({*c, "with linespoints lw 2 dt 2 pt 6 lc rgb '#000000'", true});
  if (const RdCurve* m = main_dydca_curve(r))
    s.push_back({*m, "with linespoints lw 2 pt 5 lc rgb '#0072b2'", false});
  return plot_series(base, r.name + ": x264 at each scale + lanczos, and its hull", s);
}

// PSNR-Y vs MACs per LR pixel at the reference rate: QoS levels of every
// model method, LR + lanczos of the main curve at 0.
Status plot_macs(const std::string& base, const RdResult& r) {
  std::vector<std::string> titles, colors;
  {
    std::ofstream d(base + ".dat");
    int i = 0;
    for (const auto& c : r.curves) {
      if (c.kind != kKindDydca && c.kind != kKindBaseline) continue;
      const RdSample* s = point_at(c, r.ref_rate);
      const std::string col = color_of(c, c.kind == kKindDydca ? i++ : 0);
      if (!s || s->levels.empty()) continue;
      std::vector<LevelPoint> lv = s->levels;
      std::sort(lv.begin(), lv.end(), [](const LevelPoint& x, const LevelPoint& y) {
        return x.macs_per_lr_pixel < y.macs_per_lr_pixel;
      });
      d << "# " << c.method << "\n";
      for (const auto& l : lv)
        d << l.macs_per_lr_pixel << " " << l.psnr_y << " "
          << dq(lv.size() > 1 ? std::string("L").append(std::to_string(l.level)) : "") << "\n";
      d << "\n\n";
      titles.push_back(c.method + " (" + scale_name(*s) + ")");
      colors.push_back(col);
      if (&c == main_dydca_curve(r) && s->lanczos_psnr_y > 0) {
        d << "# LR+lanczos\n0 " << s->lanczos_psnr_y << " \"\"\n\n\n";
        titles.push_back("LR+lanczos (" + c.method + ")");
        colors.push_back("#999999");
      }
    }
    if (!d) return Status::error("cannot write " + base + ".dat");
  }
  if (titles.empty()) return Status::ok();
  std::ostringstream g;
  g << kTerm << "set output " << gq(base + ".png") << "\n";
  g << "set title "
    << gq(r.name + ": PSNR-Y vs MACs per LR pixel (" + std::to_string(r.ref_rate) + " kb/s)")
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
  if (r.decodes.empty()) return Status::ok();
  {
    std::ofstream d(base + ".dat");
    d << "# decoder fps idle_MB decode_MB\n";
    for (const auto& x : r.decodes) {
      std::string name = x.method;
      if (x.decoder.rfind("SR level", 0) == 0) name += " L" + std::to_string(x.level);
      if (x.decoder.find("plain video, no model") != std::string::npos) name += " LR only";
      d << dq(name) << " " << x.fps << " " << x.rss_idle_kb / 1024.0 << " "
        << std::max<int64_t>(0, x.rss_peak_kb - x.rss_idle_kb) / 1024.0 << "\n";
    }
    if (!d) return Status::error("cannot write " + base + ".dat");
  }
  std::ostringstream g;
  g << "set terminal pngcairo size 1100,550 enhanced font 'sans,10'\n";
  g << "set output " << gq(base + ".png") << "\n";
  g << "set multiplot layout 1,2 title "
    << gq(r.name + ": decoders (" + std::to_string(r.ref_rate) + " kb/s files, " +
          std::to_string(r.frames) + " frames, " + std::to_string(p.threads) +
          " threads, null sink)")
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
Status plot_bytes(const std::string& base, const RdResult& r) {
  int n = 0;
  {
    std::ofstream d(base + ".dat");
    d << "# method model_kB routing_kB\n";
    for (const auto& c : r.curves) {
      const RdSample* s = point_at(c, r.ref_rate);
      if (!s || s->model_bytes <= 0) continue;
      d << dq(c.method + " (" + scale_name(*s) + ")") << " " << s->model_bytes / 1000.0 << " "
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
    << gq(r.name + ": model + routing bytes (" + std::to_string(r.ref_rate) + " kb/s run)")
    << "\n";
  g << "set style data histograms\nset style histogram rowstacked\n";
  g << "set style fill solid 0.8 border -1\nset boxwidth 0.6\nset grid ytics\nset yrange [0:*]\n";
  g << "set ylabel 'kB'\nset key outside top center horizontal\nset offsets 0, 0, graph 0.1, 0\n";
  g << "plot " << gq(base + ".dat")
    << " using 2:xtic(1) lc rgb '#4477aa' title 'model', '' using 3 "
    << "lc rgb '#ddcc77' title 'routing', '' using 0:($2+$3):(sprintf('%.1f kB',$2+$3)) with "
       "labels offset char 0,0.7 notitle\n";
  run_gnuplot(g.str(), base + ".png");
  return Status::ok();
}

}  // namespace

Status write_rd_plots(const RdBenchParams& p, const std::vector<RdResult>& results) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    log_warning("bench: gnuplot not found, no plots written");
    return Status::ok();
  }
  for (const auto& r : results) {
    const std::string d = p.out_dir + "/";
    DYDCA_TRY(plot_rd(d + "rd_" + r.name, r));
    DYDCA_TRY(plot_ladder(d + "ladder_" + r.name, r));
    DYDCA_TRY(plot_macs(d + "macs_" + r.name, r));
    DYDCA_TRY(plot_decode(d + "decode_" + r.name, r, p));
    DYDCA_TRY(plot_bytes(d + "bytes_" + r.name, r));
  }
  return Status::ok();
}

Status replot_rd_report(const std::string& dir) {
  std::ifstream f(dir + "/report.json");
  if (!f) return Status::error("cannot read " + dir + "/report.json");
  json j = json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::error(dir + "/report.json: not JSON");
  RdBenchParams p;
  try {
    j.get_to(p);
    if (j.contains("target_db") && j["target_db"].size() == 2)
      p.target_lo_db = j["target_db"][0], p.target_hi_db = j["target_db"][1];
    p.out_dir = dir;
    const auto results = j.at("results").get<std::vector<RdResult>>();
    DYDCA_TRY(write_file_atomic(dir + "/report.md", rd_report_md(p, results)));
    return write_rd_plots(p, results);
  } catch (const json::exception& e) {
    return Status::error(dir + "/report.json: " + e.what());
  }
}

}  // namespace dydca::bench
