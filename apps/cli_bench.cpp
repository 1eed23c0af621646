// `dydca bench CLIP...`: rate-distortion comparison of dydca against x264 at
// HR, LR x264 + bicubic and the model baselines (see bench/rd_bench.h).
#include <atomic>
#include <csignal>
#include <filesystem>
#include <sstream>

#include "cli_common.h"
#include "rd_bench.h"

namespace dydca::cli {
namespace {
std::atomic<bool> g_bench_stop{false};
extern "C" void on_bench_sigint(int) {
  if (g_bench_stop.exchange(true)) std::_Exit(130);
}

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
}  // namespace

Subcommand add_bench(CLI::App& app) {
  struct Opts {
    bench::RdBenchParams p;
    std::string scales = "2,4", rates = "100,200,400,800";
    bool quick = false;
    bool no_multi = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "bench", "Rate-distortion bench: dydca vs x264 at HR, LR+bicubic and model baselines");
  sub->add_option("clips", o->p.clips, "Input clips (any file FFmpeg reads)");
  sub->add_option("--scales", o->scales, "Scales, comma separated (2,3,4)")->capture_default_str();
  sub->add_option("--rates", o->rates, "LR video kb/s, comma separated (>= 4 for BD numbers)")
      ->capture_default_str();
  sub->add_option("--preset", o->p.preset, "x264 preset (all methods)")->capture_default_str();
  sub->add_option("--out", o->p.out_dir, "Output directory")->capture_default_str();
  sub->add_option("--quality", o->p.quality, "Training preset")
      ->check(CLI::IsMember({"fast", "balanced", "best"}))->capture_default_str();
  sub->add_option("--max-frames", o->p.max_frames, "Only the first N frames (0 = all)")
      ->capture_default_str();
  sub->add_option("--steps", o->p.steps, "Training steps (overrides the preset)")
      ->check(CLI::Range(1, 10000000));
  sub->add_flag("--no-multi-model", o->no_multi, "Skip the per-chunk and per-segment baselines");
  sub->add_flag("--quick", o->quick,
                "CI run: a tiny generated clip, 2 rates, x2, 20 steps, static baseline only");
  return {sub, [o]() -> int {
            bench::RdBenchParams p = o->p;
            p.threads = globals().threads;
            p.quiet = globals().quiet;
            if (o->no_multi) p.multi_model = false;
            if (!parse_int_list(o->scales, &p.scales))
              return fail(Status::error("--scales: '" + o->scales + "' is not a list of integers"));
            for (int s : p.scales)
              if (s < 2 || s > 4) return fail(Status::error("--scales: each must be 2, 3 or 4"));
            if (!parse_int_list(o->rates, &p.rates))
              return fail(Status::error("--rates: '" + o->rates + "' is not a list of kb/s"));
            if (o->quick) {
              std::error_code ec;
              std::filesystem::create_directories(p.out_dir, ec);
              const std::string clip = p.out_dir + "/quick.y4m";
              if (auto s = bench::write_quick_clip(clip); !s) return fail(s);
              p.clips = {clip};
              p.scales = {2};
              p.rates = {60, 150};
              if (p.steps <= 0) p.steps = 20;
              p.multi_model = false;
            }
            if (p.clips.empty()) return fail(Status::error("bench: give at least one clip or --quick"));
            std::signal(SIGINT, on_bench_sigint);
            std::signal(SIGTERM, on_bench_sigint);
            p.stop = &g_bench_stop;
            if (auto s = bench::run_rd_bench(p); !s) return fail(s);
            if (!p.quiet) std::printf("wrote %s/report.md and report.json\n", p.out_dir.c_str());
            return 0;
          }};
}

}  // namespace dydca::cli
