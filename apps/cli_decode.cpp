// `dydca decode IN.mkv -o OUT`: the client (see dydca/decoder.h). OUT is .y4m,
// .mp4/.mkv (x264, audio copied) or `-` (y4m on stdout); --muxer md5|null for
// checks and benchmarks.
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>

#include "cli_common.h"
#include "dydca/decoder.h"

namespace dydca::cli {
namespace {

// Progress on a terminal: n/total, fps, speed (x real time), ETA. Always
// returns false after Ctrl-C so that the decoder aborts cleanly.
struct ProgressState {
  double stream_fps = 0;  // for speed x; set when the input is open
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now(), last;
};
ProgressFn decode_progress(std::shared_ptr<ProgressState> st) {
  const bool draw = !globals().quiet && isatty(STDERR_FILENO);
  return [=](const Progress& p) {
    if (StopOnSignal::stopped()) return false;
    if (!draw) return true;
    const auto now = std::chrono::steady_clock::now();
    const bool done = p.total > 0 && p.done >= p.total;
    if (!done && now - st->last < std::chrono::milliseconds(200)) return true;
    st->last = now;
    const double secs = std::chrono::duration<double>(now - st->start).count();
    const double fps = secs > 0 ? p.done / secs : 0;
    const double speed = st->stream_fps > 0 ? fps / st->stream_fps : 0;
    if (p.total > 0)
      std::fprintf(stderr, "\rdecode %6lld/%-6lld %5.1f%%  %6.1f fps  %5.2fx  ETA %4.0fs   ",
                   (long long)p.done, (long long)p.total, 100.0 * p.done / p.total, fps, speed,
                   fps > 0 ? (p.total - p.done) / fps : 0.0);
    else
      std::fprintf(stderr, "\rdecode %6lld  %6.1f fps  %5.2fx   ", (long long)p.done, fps, speed);
    if (done) std::fputc('\n', stderr);
    std::fflush(stderr);
    return true;
  };
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Subcommand add_decode(CLI::App& app) {
  struct Opts {
    std::string input, output, muxer = "auto", level = "0", simd = "auto", precision = "auto",
                verify;
    int scale = 2;
    int64_t max_frames = 0;
    int crf = 16;
    std::string preset = "veryfast";
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "decode", "Decode a dydca .mkv: H.264 + SR model -> HR video (y4m, mp4/mkv, md5)");
  sub->add_option("input", o->input, "A .mkv written by dydca encode (plain videos: bicubic)")
      ->required();
  sub->add_option("-o,--output", o->output, "Output .y4m, .mp4, .mkv, or - for y4m on stdout");
  sub->add_option("--muxer", o->muxer, "Output kind: auto (by -o), y4m, mp4, mkv, md5, null")
      ->check(CLI::IsMember({"auto", "y4m", "mp4", "mkv", "md5", "null"}))
      ->capture_default_str();
  sub->add_option("--level", o->level,
                  "QoS level: 0 = as trained (richest), higher = cheaper, "
                  "or auto (QoS controller)")
      ->capture_default_str();
  sub->add_option("--simd", o->simd, "SR kernels: auto, none, avx2, avx512")
      ->check(CLI::IsMember({"auto", "none", "avx2", "avx512"}))
      ->capture_default_str();
  sub->add_option("--precision", o->precision,
                  "SR arithmetic: auto (int8 when the model has int8 scales and the CPU AVX2), "
                  "int8 (error without scales), fp32")
      ->check(CLI::IsMember({"auto", "fp32", "int8"}))
      ->capture_default_str();
  sub->add_option("--verify", o->verify, "Expected md5 of the output frames; exit 1 on mismatch");
  sub->add_option("--scale", o->scale, "Plain videos (no dydca model): bicubic factor")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  sub->add_option("--max-frames", o->max_frames, "Stop after N frames (0 = all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  sub->add_option("--crf", o->crf, "x264 CRF for .mp4/.mkv output")
      ->check(CLI::Range(0, 51))
      ->capture_default_str();
  sub->add_option("--preset", o->preset, "x264 preset for .mp4/.mkv output")->capture_default_str();
  sub->footer(
      "--threads (global) sets the SR workers. Examples:\n"
      "  dydca decode x.mkv -o - | ffplay -\n"
      "  dydca decode x.mkv --muxer null        # benchmark: fps only");
  return {sub, [o]() -> int {
            DecodeOptions opt;
            opt.output = o->output;
            auto muxer = parse_muxer(o->muxer);
            if (!muxer) return fail(muxer.status());
            opt.muxer = *muxer;
            if (!o->verify.empty()) {
              opt.compute_md5 = true;
              if (opt.muxer == Muxer::kAuto && o->output.empty()) opt.muxer = Muxer::kMd5;
            }
            if (o->level == "auto") {
              opt.auto_level = true;
            } else {
              try {
                size_t used = 0;
                opt.level = std::stoi(o->level, &used);
                if (used != o->level.size() || opt.level < 0) throw std::invalid_argument("");
              } catch (const std::exception&) {
                return fail(
                    Status::error("--level must be a number >= 0 or auto, not '" + o->level + "'"));
              }
            }
            auto simd = parse_simd_level(o->simd);
            if (!simd) return fail(simd.status());
            opt.simd = *simd;
            auto precision = parse_precision(o->precision);
            if (!precision) return fail(precision.status());
            opt.precision = *precision;
            opt.threads = globals().threads;
            opt.plain_scale = o->scale;
            opt.max_frames = o->max_frames;
            opt.video_crf = o->crf;
            opt.video_preset = o->preset;
            // The md5 of the md5 muxer goes to -o FILE, else stdout.
            const bool md5_to_file =
                opt.muxer == Muxer::kMd5 && !o->output.empty() && o->output != "-";

            std::optional<StopOnSignal> on_signal(std::in_place);
            auto progress = std::make_shared<ProgressState>();
            opt.on_start = [progress](const DecodeStats& s) {
              progress->stream_fps = s.frame_rate.to_double();
              progress->start = std::chrono::steady_clock::now();
            };
            auto stats = decode_file(o->input, opt, decode_progress(progress));
            const bool interrupted = StopOnSignal::stopped();
            on_signal.reset();
            if (!stats) {
              if (interrupted) {
                fail(Status::error("interrupted; no output written"));
                return 130;  // the shell's code for SIGINT
              }
              return fail(stats.status());
            }
            if (!globals().quiet) std::fprintf(stderr, "%s\n", stats->summary().c_str());
            if (globals().verbosity > 0 && !stats->plain_video)
              std::fprintf(stderr,
                           "format %d, %d segment%s: %lld switches (%lld waited for the next "
                           "runtime), %.1f ms preparing runtimes in the background; SR ms at "
                           "switches p50 %.2f p99 %.2f, elsewhere p50 %.2f p99 %.2f; "
                           "%d runtimes alive at most (%zu bytes now)\n",
                           stats->format_version, stats->segments,
                           stats->segments == 1 ? "" : "s", (long long)stats->segment_switches,
                           (long long)stats->switch_waits, stats->prepare_ms,
                           stats->switch_sr_p50_ms, stats->switch_sr_p99_ms,
                           stats->other_sr_p50_ms, stats->other_sr_p99_ms,
                           stats->max_runtimes_alive, stats->runtime_bytes);
            if (opt.muxer == Muxer::kMd5) {
              if (md5_to_file) {
                std::ofstream f(o->output);
                f << stats->md5 << "\n";
                if (!f) return fail(Status::error("cannot write " + o->output));
              } else {
                std::printf("%s\n", stats->md5.c_str());
              }
            }
            if (!o->verify.empty() && lower(o->verify) != stats->md5)
              return fail(Status::error("md5 mismatch: got " + stats->md5 + ", expected " +
                                        lower(o->verify)));
            return 0;
          }};
}

}  // namespace dydca::cli
