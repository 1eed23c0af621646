// `dydca encode IN -o OUT.mkv`: the server pipeline (see dydca/encoder.h).
#include <atomic>
#include <csignal>
#include <fstream>
#include <sstream>

#include "cli_common.h"
#include "dydca/encoder.h"

namespace dydca::cli {
namespace {
std::atomic<bool> g_stop{false};
extern "C" void on_sigint(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // second Ctrl-C: leave now
}
}  // namespace

Subcommand add_encode(CLI::App& app) {
  struct Opts {
    EncodeParams p;
    std::string report;
    std::string paths;
    int channels = 16, inner = 16, blocks = 2;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("encode", "Encode a video: LR H.264 + one dynamic SR model (.mkv)");
  sub->add_option("input", o->p.input, "Any file FFmpeg reads")->required();
  sub->add_option("-o,--output", o->p.output, "Output .mkv")->required();
  sub->add_option("-s,--scale", o->p.scale, "Downscale factor")->check(CLI::IsMember({2, 3, 4}))
      ->capture_default_str();
  auto* crf = sub->add_option("--crf", o->p.crf, "x264 CRF of the LR video")
                  ->check(CLI::Range(0, 51))->capture_default_str();
  sub->add_option("--bitrate", o->p.bitrate_kbps, "LR video kb/s instead of CRF (2-pass)")
      ->check(CLI::Range(1, 1000000))->excludes(crf);
  sub->add_option("--preset", o->p.preset, "x264 preset")->capture_default_str();
  sub->add_option("--gop", o->p.gop, "Max keyframe interval")->check(CLI::Range(1, 10000))
      ->capture_default_str();
  sub->add_option("--chunks", o->p.chunks, "Content chunks K")->check(CLI::Range(1, 16))
      ->capture_default_str();
  sub->add_option("--tile", o->p.tile_size, "LR tile side")->check(CLI::Range(8, 256))
      ->capture_default_str();
  sub->add_option("--quality", o->p.quality, "Training preset")
      ->check(CLI::IsMember({"fast", "balanced", "best"}))->capture_default_str();
  sub->add_option("--steps", o->p.train_steps, "Training steps (overrides the preset's time budget)")
      ->check(CLI::Range(1, 10000000));
  sub->add_option("--model-precision", o->p.precision, "Model weights in the file")
      ->check(CLI::IsMember({"fp32", "fp16", "int8"}))->capture_default_str();
  sub->add_option("--baseline", o->p.baseline, "Write a multi-model baseline instead")
      ->check(CLI::IsMember({"none", "per-chunk", "per-segment", "static"}))->capture_default_str();
  sub->add_option("--channels", o->channels, "Network channels C")->check(CLI::Range(4, 64))
      ->capture_default_str();
  sub->add_option("--inner", o->inner, "Block inner width E")->check(CLI::Range(4, 64))
      ->capture_default_str();
  sub->add_option("--blocks", o->blocks, "Residual blocks N")->check(CLI::Range(0, 16))
      ->capture_default_str();
  sub->add_option("--paths", o->paths,
                  "Paths cheap->rich as depth:width,... (default 0:0,1:C/2,2:3C/4,N:C)");
  sub->add_option("--max-frames", o->p.max_frames, "Encode only the first N frames (0 = all)")
      ->capture_default_str();
  sub->add_option("--seed", o->p.seed, "Training and clustering seed")->capture_default_str();
  sub->add_flag("--bf16", o->p.bf16, "Train with bf16 autocast (AMX); slightly different weights");
  sub->add_flag("--channels-last", o->p.channels_last, "Train with NHWC tensors");
  sub->add_option("--report", o->report, "Also write the report as JSON to this file");
  return {sub, [o]() -> int {
            EncodeParams p = o->p;
            p.threads = globals().threads;
            ModelArch a;
            a.scale = p.scale;
            a.channels = o->channels;
            a.inner = o->inner;
            a.blocks = o->blocks;
            if (o->paths.empty()) {
              const int C = a.channels;
              a.paths = {{0, 0}};
              if (a.blocks >= 1) a.paths.push_back({1, C / 2});
              if (a.blocks >= 3) a.paths.push_back({std::max(2, a.blocks / 2), 3 * C / 4});
              a.paths.push_back({a.blocks, C});
            } else {
              std::stringstream ss(o->paths);
              std::string item;
              while (std::getline(ss, item, ',')) {
                int d = 0, w = 0;
                if (std::sscanf(item.c_str(), "%d:%d", &d, &w) != 2)
                  return fail(Status::error("--paths: '" + item + "' is not depth:width"));
                a.paths.push_back({d, w});
              }
            }
            p.arch = a;
            std::signal(SIGINT, on_sigint);
            std::signal(SIGTERM, on_sigint);
            p.stop = &g_stop;
            auto report = encode_video(p, make_progress());
            if (!report) return fail(report.status());
            if (!globals().quiet) std::printf("%s", report_text(*report).c_str());
            if (!o->report.empty()) {
              std::ofstream f(o->report);
              f << report_json(*report) << "\n";
              if (!f) return fail(Status::error("cannot write " + o->report));
            }
            return 0;
          }};
}

}  // namespace dydca::cli
