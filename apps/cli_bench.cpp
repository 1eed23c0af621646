// `dydca bench CLIP...`: rate-distortion comparison of dydca (--scale auto and
// fixed scales) against x264 at the full size and the x264 hull over scales
// (see bench/rd_bench.h).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "cli_common.h"
#include "rd_bench.h"
#ifdef DYDCA_HAVE_DECODER
#include "dydca/decoder.h"
#endif

namespace dydca::cli {
namespace {

bool parse_int_list(const std::string& s, std::vector<int>* out) {
  out->clear();
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const int v = std::stoi(item, &used);
      if (used != item.size() || v <= 0) return false;
      out->push_back(v);
    } catch (...) {
      return false;
    }
  }
  return !out->empty();
}

// "auto,2,4" -> {0, 2, 4} (0 = --scale auto).
bool parse_scale_list(const std::string& s, std::vector<int>* out) {
  out->clear();
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::vector<int> one;
    if (item == "auto")
      out->push_back(0);
    else if (parse_int_list(item, &one) && one[0] <= 4)
      out->push_back(one[0]);
    else
      return false;
  }
  return !out->empty();
}

// The child side of the bench's decoder measurement (hidden `--decode-probe`):
// decodes FILE `runs` times into a null sink and prints one JSON line. Runs in
// a fresh process (exec'd by the bench), so VmHWM is this decoder's peak.
int run_decode_probe(const std::string& file, int level, int plain_scale, int runs, int threads,
                     int decode_threads) {
#ifdef DYDCA_HAVE_DECODER
  bench::DecodeProbeResult r;
  r.rss_idle_kb = bench::proc_status_kb("VmRSS");
  bench::reset_peak_rss();  // drop the start-up transient from VmHWM
  DecodeOptions opt;
  opt.muxer = Muxer::kNull;
  opt.threads = threads;
  opt.decode_threads = decode_threads;
  opt.level = level;
  opt.plain_scale = plain_scale;
  for (int i = 0; i < runs; ++i) {
    auto st = decode_file(file, opt);
    if (!st) return fail(st.status().with_context("decode probe"));
    if (r.best_wall_s == 0 || st->wall_s < r.best_wall_s) {
      r.best_wall_s = st->wall_s;
      r.setup_s = st->setup_s;
    }
    r.frames = st->frames;
    r.runtime_bytes = int64_t(st->runtime_bytes);
    r.models = st->models;
    r.models_loaded = st->models_loaded;
    r.model_load_ms = st->model_load_ms;  // every run creates its runtimes afresh
    r.tile_switches = st->tile_switches;
    r.frame_switches = st->frame_switches;
  }
  r.rss_peak_kb = bench::proc_status_kb("VmHWM");
  std::printf("%s\n", bench::decode_probe_json(r).c_str());
  return 0;
#else
  (void)file, (void)level, (void)plain_scale, (void)runs, (void)threads, (void)decode_threads;
  return fail(Status::error("this dydca has no decoder"));
#endif
}
}  // namespace

Subcommand add_bench(CLI::App& app) {
  struct Opts {
    bench::RdBenchParams p;
    std::string scales = "auto", ladder = "1,2,3,4", rates, baselines;
    bool quick = false;
    bool no_crops = false;
    std::string probe_file, replot;
    int probe_level = 0, probe_scale = 2, probe_runs = 2, probe_decode_threads = 1;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "bench",
      "Rate-distortion bench: dydca (--scale auto) vs x264 at the full size and the x264 hull");
  sub->add_option("clips", o->p.clips, "Input clips (any file FFmpeg reads)");
  sub->add_option("--scales", o->scales,
                  "dydca curves: auto and/or fixed scales 1-4, comma separated (the first with "
                  "points is the main curve), e.g. auto,2,4")
      ->capture_default_str();
  sub->add_option("--ladder-scales", o->ladder,
                  "x264 ladder: scales encoded and upscaled by lanczos for the hull (1 is always "
                  "in: the anchor)")
      ->capture_default_str();
  sub->add_option("--rates", o->rates,
                  "Total kb/s for every clip, comma separated (>= 4 for BD numbers); default: "
                  "chosen per clip from an x264 CRF probe");
  sub->add_option("--rate-count", o->p.rate_count, "Rates chosen per clip")
      ->check(CLI::Range(1, 12))
      ->capture_default_str();
  sub->add_option("--min-db", o->p.target_lo_db, "x264-full PSNR-Y at the lowest chosen rate")
      ->capture_default_str();
  sub->add_option("--max-db", o->p.target_hi_db, "x264-full PSNR-Y at the highest chosen rate")
      ->capture_default_str();
  sub->add_option("--preset", o->p.preset, "x264 preset (all methods)")->capture_default_str();
  sub->add_option("--out", o->p.out_dir, "Output directory")->capture_default_str();
  sub->add_option("--quality", o->p.quality, "Training preset")
      ->check(CLI::IsMember({"fast", "balanced", "best"}))
      ->capture_default_str();
  sub->add_option("--max-frames", o->p.max_frames, "Only the first N frames (0 = all)")
      ->capture_default_str();
  sub->add_option("--steps", o->p.steps, "Training steps (overrides the preset)")
      ->check(CLI::Range(1, 10000000));
  sub->add_option("--baselines", o->baselines,
                  "Model baselines, comma separated: static, per-chunk, per-segment");
  sub->add_option("--baseline-scale", o->p.baseline_scale, "Scale of the model baselines")
      ->check(CLI::Range(2, 4))
      ->capture_default_str();
  sub->add_option("--ref-rate", o->p.ref_rate,
                  "Rate whose files are decoded (fps, RSS) and make the crop, MACs and bytes "
                  "charts (0 or not one of a clip's rates = the middle of them)")
      ->capture_default_str();
  sub->add_option("--decode-runs", o->p.decode_runs, "Decode fps = best of N runs (0 = no decode)")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  sub->add_flag("--no-crops", o->no_crops, "No crop PNG per clip");
  sub->add_option("--replot", o->replot,
                  "Only rewrite DIR/report.md and the plots from DIR/report.json of a run");
  // Internal: the child process of the decoder measurement (see rd_bench.h).
  sub->add_option("--decode-probe", o->probe_file)->group("");
  sub->add_option("--probe-level", o->probe_level)->group("");
  sub->add_option("--probe-scale", o->probe_scale)->group("");
  sub->add_option("--probe-runs", o->probe_runs)->group("");
  sub->add_option("--probe-decode-threads", o->probe_decode_threads)->group("");
  sub->add_flag("--quick",
                o->quick,
                "CI run: a tiny generated clip, 4 probed rates, auto and x2, 20 steps, veryfast, "
                "static baseline");
  return {sub, [o]() -> int {
            if (!o->probe_file.empty())
              return run_decode_probe(o->probe_file, o->probe_level, o->probe_scale,
                                      std::max(1, o->probe_runs), globals().threads,
                                      std::max(1, o->probe_decode_threads));
            if (!o->replot.empty()) {
              if (auto s = bench::replot_rd_report(o->replot); !s) return fail(s);
              return 0;
            }
            bench::RdBenchParams p = o->p;
            p.threads = globals().threads;
            p.quiet = globals().quiet;
            p.crops = !o->no_crops;
#ifdef DYDCA_HAVE_DECODER
            if (p.decode_runs > 0) {
              std::error_code ec;
              p.probe_exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
            }
#endif
            if (!parse_scale_list(o->scales, &p.scales))
              return fail(Status::error("--scales: '" + o->scales +
                                        "' is not a list of auto and 1-4"));
            if (!parse_int_list(o->ladder, &p.ladder_scales) ||
                std::any_of(p.ladder_scales.begin(), p.ladder_scales.end(),
                            [](int s) { return s > 4; }))
              return fail(Status::error("--ladder-scales: '" + o->ladder + "' is not a list of 1-4"));
            if (!o->rates.empty() && !parse_int_list(o->rates, &p.rates))
              return fail(Status::error("--rates: '" + o->rates + "' is not a list of kb/s"));
            p.baselines.clear();
            if (!o->baselines.empty()) {
              std::stringstream ss(o->baselines);
              std::string b;
              while (std::getline(ss, b, ',')) {
                if (b != "static" && b != "per-chunk" && b != "per-segment")
                  return fail(Status::error("--baselines: '" + b +
                                            "' is not static, per-chunk or per-segment"));
                p.baselines.push_back(b);
              }
            }
            if (!(p.target_lo_db < p.target_hi_db))
              return fail(Status::error("--min-db must be below --max-db"));
            if (o->quick) {
              std::error_code ec;
              std::filesystem::create_directories(p.out_dir, ec);
              const std::string clip = p.out_dir + "/quick.y4m";
              if (auto s = bench::write_quick_clip(clip); !s) return fail(s);
              p.clips = {clip};
              p.scales = {0, 2};
              p.rates.clear();
              p.rate_count = 4;
              p.ref_rate = 0;
              p.preset = "veryfast";
              p.quality = "fast";
              if (p.steps <= 0) p.steps = 20;
              p.baselines = {"static"};
              p.baseline_scale = 2;
            }
            if (p.clips.empty())
              return fail(Status::error("bench: give at least one clip or --quick"));
            StopOnSignal on_signal;
            p.stop = &StopOnSignal::flag();
            if (auto s = bench::run_rd_bench(p); !s) return fail(s);
            if (!p.quiet) std::printf("wrote %s/report.md and report.json\n", p.out_dir.c_str());
            return 0;
          }};
}

}  // namespace dydca::cli
