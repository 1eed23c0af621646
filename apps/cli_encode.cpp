// `dydca encode IN -o OUT.mkv`: the server pipeline (see dydca/encoder.h).
#include <atomic>
#include <cstdlib>
#include <sstream>

#include "cli_common.h"
#include "dydca/atomic_file.h"
#include "dydca/encoder.h"

namespace dydca::cli {
namespace {
}  // namespace

// Flags win over the usual environment (WORLD_SIZE, RANK, MASTER_ADDR,
// MASTER_PORT, GLOO_SOCKET_IFNAME); without either it is a one-process encode.
Status resolve_dist(int world_size, int rank, const std::string& master, DistConfig& d) {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? v : "";
  };
  auto parse_int = [](const std::string& s, const char* what, int lo, int hi, int& out) {
    try {
      size_t used = 0;
      long v = std::stol(s, &used);
      if (used != s.size() || v < lo || v > hi) throw std::out_of_range(s);
      out = int(v);
      return Status::ok();
    } catch (const std::exception&) {
      return Status::error(std::string(what) + " '" + s + "' is not a number in " +
                           std::to_string(lo) + ".." + std::to_string(hi));
    }
  };
  d.world_size = 1;
  if (world_size > 0) d.world_size = world_size;
  else if (!env("WORLD_SIZE").empty()) DYDCA_TRY(parse_int(env("WORLD_SIZE"), "WORLD_SIZE", 1, 1024, d.world_size));
  d.rank = 0;
  if (rank >= 0) d.rank = rank;
  else if (!env("RANK").empty()) DYDCA_TRY(parse_int(env("RANK"), "RANK", 0, 1023, d.rank));
  if (d.world_size == 1 && d.rank == 0) return Status::ok();
  if (d.rank >= d.world_size)
    return Status::error("--rank " + std::to_string(d.rank) + " must be below --world-size " +
                         std::to_string(d.world_size));
  std::string addr = env("MASTER_ADDR"), port = env("MASTER_PORT");
  if (!master.empty()) {
    auto colon = master.rfind(':');
    if (colon == std::string::npos || colon == 0)
      return Status::error("--master '" + master + "' is not ADDR:PORT");
    addr = master.substr(0, colon);
    port = master.substr(colon + 1);
  }
  if (addr.empty()) addr = "127.0.0.1";
  if (port.empty()) port = "29500";
  d.master_addr = addr;
  DYDCA_TRY(parse_int(port, "master port", 1, 65535, d.master_port));
  if (d.interface.empty()) d.interface = env("GLOO_SOCKET_IFNAME");
  return Status::ok();
}

Subcommand add_encode(CLI::App& app) {
  struct Opts {
    EncodeParams p;
    std::string report;
    std::string paths;
    std::string scale = "auto";
    int channels = 16, inner = 16, blocks = 2;
    int world_size = 0, rank = -1;
    std::string master;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("encode", "Encode a video: LR H.264 + one dynamic SR model (.mkv)");
  sub->add_option("input", o->p.input, "Any file FFmpeg reads")->required();
  sub->add_option("-o,--output", o->p.output, "Output .mkv")->required();
  sub->add_option("-s,--scale", o->scale,
                  "Downscale factor: auto (chosen from trial encodes at the target rate), 1 "
                  "(full-size x264 + the network as a post-filter), 2, 3 or 4")
      ->check(CLI::IsMember({"auto", "1", "2", "3", "4"}))
      ->capture_default_str();
  auto* crf = sub->add_option("--crf", o->p.crf, "x264 CRF of the LR video")
                  ->check(CLI::Range(0, 51))->capture_default_str();
  sub->add_option("--bitrate", o->p.bitrate_kbps,
                  "Total kb/s (video + model + routing; audio apart) instead of CRF")
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
  sub->add_option("--int8-activations", o->p.int8_activations,
                  "With int8 weights: quantisation-aware training and int8 activation scales, "
                  "so the client runs the int8 runtime")
      ->capture_default_str();
  sub->add_option("--baseline", o->p.baseline, "Write a multi-model baseline instead")
      ->check(CLI::IsMember({"none", "per-chunk", "per-segment", "static"}))->capture_default_str();
  auto* arch_c = sub->add_option("--channels", o->channels, "Network channels C")->check(CLI::Range(4, 64))
      ->capture_default_str();
  auto* arch_e = sub->add_option("--inner", o->inner, "Block inner width E")->check(CLI::Range(4, 64))
      ->capture_default_str();
  auto* arch_n = sub->add_option("--blocks", o->blocks, "Residual blocks N")->check(CLI::Range(0, 16))
      ->capture_default_str();
  auto* arch_p = sub->add_option("--paths", o->paths,
                  "Paths cheap->rich as depth:width,... (default 0:0,1:C/2,2:3C/4,N:C)");
  sub->add_option("--max-frames", o->p.max_frames, "Encode only the first N frames (0 = all)")
      ->capture_default_str();
  sub->add_option("--seed", o->p.seed, "Training and clustering seed")->capture_default_str();
  sub->add_flag("--bf16", o->p.bf16, "Train with bf16 autocast (AMX); slightly different weights");
  sub->add_flag("--channels-last", o->p.channels_last, "Train with NHWC tensors");
  sub->add_option("--report", o->report, "Also write the report as JSON to this file");
  sub->add_flag("--train-skip", o->p.train_skip,
               "Also train the global 5x5 path (default: it stays bicubic, the fallback path)");
  sub->add_option("--global-path", o->p.global_path,
                  "The frozen global path every path adds to: bicubic, or fit (the clip's "
                  "least-squares 5x5 linear upscaler)")
      ->capture_default_str();
  sub->add_option("--downscale", o->p.downscale,
                  "The filter that makes the LR picture: auto (lanczos; --scale auto also tries "
                  "area and keeps the better), lanczos, area, bicubic")
      ->capture_default_str();
  sub->add_flag("--model-must-pay,!--no-model-must-pay", o->p.model_must_pay,
               "With --bitrate: ship the linear upscaler and give x264 the bits when the "
               "trained network gains less than those bits would buy the video (default on)");
  sub->add_flag("--train-all-levels", o->p.train_all_levels,
               "Experimental (AdaSR): every cheaper QoS level's path each step");
  sub->add_option("--train-progressive", o->p.train_progressive,
                  "Experimental (AdaSR): fraction of steps that grow the path cheap -> rich")
      ->check(CLI::Range(0.0, 0.9));
  sub->add_option("--train-lr", o->p.train_lr, "Experimental: Adam's peak learning rate (0 = 1e-3)");
  sub->add_option("--train-batch", o->p.train_batch, "Experimental: LR patches per step (0 = 8)");
  sub->add_option("--train-patch", o->p.train_patch, "Experimental: LR patch side (0 = 48)");
  sub->add_option("--train-qos-weight", o->p.train_qos_weight,
                  "Experimental: weight of the cheaper level's loss and of its distillation "
                  "(sandwich rule; default 0.5 each)");
  sub->add_option("--train-max-norm", o->p.train_max_norm,
                  "Experimental (AdaSR): clip every conv filter's L2 norm to this (0 = off)")
      ->check(CLI::Range(0.0, 100.0));
  sub->add_option("--checkpoint", o->p.checkpoint,
                  "Work folder of finished segments (default OUTPUT.parts); removed when the "
                  "output is complete");
  sub->add_flag("--resume", o->p.resume,
                "Continue an interrupted encode from its work folder (same input and flags)");
  sub->add_option("--segment-seconds", o->p.segment_seconds,
                  "Longest segment; each segment starts on an IDR and carries a model update")
      ->capture_default_str();
  sub->add_option("--segment-memory", o->p.segment_memory_mb,
                  "Frame memory of one segment, MB (bounds the encoder's memory)")
      ->capture_default_str();
  sub->add_option("--dist-mode", o->p.dist_mode,
                  "With several ranks: data-parallel training of every segment, or segments "
                  "spread over the ranks (shared work folder)")
      ->check(CLI::IsMember({"data", "segments"}))
      ->capture_default_str();
  sub->add_option("--warm-lr", o->p.warm_lr,
                  "Learning rate of a warm-started segment, times the preset's")
      ->capture_default_str();
  sub->add_option("--warm-start", o->p.warm_start,
                  "A segment's network starts from the previous segment's weights, or fresh")
      ->check(CLI::IsMember({"previous", "none"}))
      ->capture_default_str();
  sub->add_option("--world-size", o->world_size,
                  "Distributed training: number of ranks (or $WORLD_SIZE)")
      ->check(CLI::Range(1, 1024));
  sub->add_option("--rank", o->rank, "Distributed training: this process's rank (or $RANK)")
      ->check(CLI::Range(0, 1023));
  sub->add_option("--master", o->master,
                  "Distributed training: rank 0's ADDR:PORT (or $MASTER_ADDR, $MASTER_PORT)");
  sub->add_option("--dist-timeout", o->p.dist.timeout_s,
                  "Distributed training: seconds to wait for a rank before failing")
      ->check(CLI::Range(1.0, 86400.0))->capture_default_str();
  sub->add_option("--dist-interface", o->p.dist.interface,
                  "Distributed training: network interface for Gloo (or $GLOO_SOCKET_IFNAME)");
  return {sub, [o, arch_c, arch_e, arch_n, arch_p]() -> int {
            EncodeParams p = o->p;
            p.threads = globals().threads;
            p.scale = o->scale == "auto" ? 0 : std::stoi(o->scale);
            // Without network flags the encoder takes the default network of
            // whichever scale it uses (x1 has a smaller one).
            const bool custom_arch = arch_c->count() || arch_e->count() || arch_n->count() ||
                                     arch_p->count();
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
            if (custom_arch) p.arch = a;
            if (auto st = resolve_dist(o->world_size, o->rank, o->master, p.dist); !st.is_ok())
              return fail(st);
            StopOnSignal on_signal;
            p.stop = &StopOnSignal::flag();
            auto report = encode_video(p, make_progress());
            if (!report) return fail(report.status());
            if (report->worker_only) {
              if (!globals().quiet)
                std::printf("rank %d of %d: %d training steps done in %.1f s; rank 0 writes the output\n",
                            p.dist.rank, p.dist.world_size, report->train_steps, report->t_total);
              return 0;
            }
            if (!globals().quiet) std::printf("%s", report_text(*report).c_str());
            if (!o->report.empty()) {
              Status written = write_file_atomic(o->report, report_json(*report) + "\n");
              if (!written) return fail(written);
            }
            return 0;
          }};
}

}  // namespace dydca::cli
