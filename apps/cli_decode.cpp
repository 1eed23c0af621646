// `dydca decode IN.mkv -o OUT`: a thin tool over libdydca (dydca/dydca.h).
// The pictures come from the C API; they go to the decoder's output sinks
// (make_sink: y4m to a file or `-`, x264 .mp4/.mkv with the input's audio
// copied, null; built on media's writers) and, for --muxer md5 / --verify, to
// media's FrameMd5. The statistics of the summary line come from
// dydca_get_stats; the output time and the wall clock are measured here, where
// the writing happens.
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <optional>

#include "cli_common.h"
#include "dydca/decoder.h"  // make_sink, parse_muxer: the output side only

namespace dydca::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Progress on a terminal: n/total, fps, speed (x real time), ETA.
class ProgressLine {
 public:
  ProgressLine(int64_t total, double stream_fps)
      : draw_(!globals().quiet && isatty(STDERR_FILENO)), total_(total), stream_fps_(stream_fps) {}
  void update(int64_t done) {
    if (!draw_) return;
    const auto now = Clock::now();
    const bool end = total_ > 0 && done >= total_;
    if (!end && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double fps = secs > 0 ? double(done) / secs : 0;
    const double speed = stream_fps_ > 0 ? fps / stream_fps_ : 0;
    if (total_ > 0)
      std::fprintf(stderr, "\rdecode %6lld/%-6lld %5.1f%%  %6.1f fps  %5.2fx  ETA %4.0fs   ",
                   (long long)done, (long long)total_, 100.0 * double(done) / double(total_), fps,
                   speed, fps > 0 ? double(total_ - done) / fps : 0.0);
    else
      std::fprintf(stderr, "\rdecode %6lld  %6.1f fps  %5.2fx   ", (long long)done, fps, speed);
    if (end) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  bool draw_;
  int64_t total_;
  double stream_fps_;
  Clock::time_point start_ = Clock::now(), last_;
};

const char* simd_label(int simd) {
  switch (simd) {
    case DYDCA_SIMD_AVX2: return "avx2";
    case DYDCA_SIMD_AVX512: return "avx512";
    default: return "none";
  }
}

// What one run measured: the library's statistics and the tool's own clock.
struct RunTimes {
  int64_t frames = 0;
  double setup_s = 0;    // dydca_open: header, models, runtime, QoS calibration
  double wall_s = 0;     // from there to the output's end
  double output_ms = 0;  // copy, md5 and sink, per picture
};

// "frames, fps, speed, ms/frame split, levels, kernels" on one line; with
// several segments their switches, with several models their loads.
std::string summary(const DydcaInfo& info, const DydcaStats& st, const RunTimes& t) {
  const double fps = t.wall_s > 0 ? double(t.frames) / t.wall_s : 0;
  const double rate = info.fps_den > 0 ? double(info.fps_num) / info.fps_den : 0;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%" PRId64
                " frames %dx%d in %.2f s (+%.2f s setup): %.1f fps (%.2fx real time); ms/frame "
                "decode %.2f, chroma %.2f, SR %.2f, output %.2f",
                t.frames, info.width, info.height, t.wall_s, t.setup_s, fps,
                rate > 0 ? fps / rate : 0.0, st.decode_ms, st.chroma_ms, st.sr_ms, t.output_ms);
  std::string s = buf;
  if (info.format_version == 0) {
    s += "; plain video, bicubic x" + std::to_string(info.scale);
  } else {
    s += "; levels";
    for (int l = 0; l < DYDCA_MAX_LEVELS; ++l)
      if (st.level_frames[l])
        s.append(" ").append(std::to_string(l)).append(":").append(
            std::to_string(st.level_frames[l]));
    if (st.auto_level) s += " (auto)";
    s += std::string("; ") + simd_label(st.simd) +
         (st.precision == DYDCA_PRECISION_INT8 ? " int8" : " fp32") + " x" +
         std::to_string(st.threads);
  }
  if (info.segments > 1) {
    std::snprintf(buf, sizeof buf,
                  "; %d segments, %" PRId64 " switches (%" PRId64
                  " waited), SR ms p50/p99 at switches %.2f/%.2f, elsewhere %.2f/%.2f; "
                  "%d runtimes alive at most",
                  info.segments, st.segment_switches, st.switch_waits, st.switch_sr_p50_ms,
                  st.switch_sr_p99_ms, st.other_sr_p50_ms, st.other_sr_p99_ms,
                  st.max_runtimes_alive);
    s += buf;
  }
  if (st.models > 1) {
    std::snprintf(buf, sizeof buf,
                  "; %d models, %d loaded in %.1f ms, %" PRId64 " tile / %" PRId64
                  " frame switches",
                  st.models, st.models_loaded, st.model_load_ms, st.tile_switches,
                  st.frame_switches);
    s += buf;
  }
  return s;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Subcommand add_decode(CLI::App& app) {
  struct Opts {
    std::string input, output, muxer = "auto", verify;
    LibraryFlags flags{"0", "auto", "auto"};
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
  sub->add_option("--level", o->flags.level,
                  "QoS level: 0 = as trained (richest), higher = cheaper, "
                  "or auto (QoS controller)")
      ->capture_default_str();
  sub->add_option("--simd", o->flags.simd, "SR kernels: auto, none, avx2, avx512")
      ->check(CLI::IsMember({"auto", "none", "avx2", "avx512"}))
      ->capture_default_str();
  sub->add_option("--precision", o->flags.precision,
                  "SR arithmetic: auto (int8 when the model has int8 scales and the CPU AVX2), "
                  "int8 (error without scales), fp32")
      ->check(CLI::IsMember({"auto", "fp32", "int8"}))
      ->capture_default_str();
  sub->add_option("--verify", o->verify, "Expected md5 of the output frames; exit 1 on mismatch");
  sub->add_option("--scale", o->flags.scale, "Plain videos (no dydca model): bicubic factor")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  sub->add_option("--max-frames", o->flags.max_frames, "Stop after N frames (0 = all)")
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
            auto settings = library_settings(o->flags);
            if (!settings) return fail(settings.status());
            auto muxer = parse_muxer(o->muxer);
            if (!muxer) return fail(muxer.status());
            if (!o->verify.empty() && *muxer == Muxer::kAuto && o->output.empty())
              *muxer = Muxer::kMd5;
            const bool want_md5 = *muxer == Muxer::kMd5 || !o->verify.empty();
            // The md5 of the md5 muxer goes to -o FILE, else stdout.
            const bool md5_to_file =
                *muxer == Muxer::kMd5 && !o->output.empty() && o->output != "-";
            DecodeOptions video;  // make_sink reads the x264 settings only
            video.video_crf = o->crf;
            video.video_preset = o->preset;
            auto sink = make_sink(*muxer, o->output, video);  // before the input: -o errors first
            if (!sink) return fail(sink.status());

            std::optional<StopOnSignal> on_signal(std::in_place);
            const Clock::time_point t_open = Clock::now();
            auto opened = open_library(o->input, *settings);
            if (!opened) return fail(opened.status());
            Context& ctx = opened->ctx;
            const DydcaInfo& info = opened->info;
            DydcaStats& stats = opened->stats;
            RunTimes times;
            times.setup_s = seconds_since(t_open);
            const Clock::time_point t_start = Clock::now();

            SinkFormat format;
            format.width = info.width;
            format.height = info.height;
            format.frame_rate = Rational{info.fps_num, info.fps_den};
            // Only a file with audio is handed on (opening it again for
            // nothing costs a probe and FFmpeg's warnings).
            if (stats.has_audio) format.audio_from = o->input;
            FrameSink& out = **sink;
            if (Status s = out.open(format); !s) {
              out.abort();
              return fail(s);
            }
            std::optional<FrameMd5> md5;
            if (want_md5) md5.emplace();
            ProgressLine progress(info.frames, format.frame_rate.to_double());
            Frame frame;
            DydcaPicture pic;
            int err = DYDCA_OK;
            while (!StopOnSignal::stopped() &&
                   (err = dydca_get_picture(ctx.get(), &pic)) == DYDCA_OK) {
              const Clock::time_point t0 = Clock::now();
              copy_picture(pic, frame);
              dydca_picture_unref(&pic);
              if (md5) md5->add(frame);
              if (Status s = out.write(frame); !s) {
                out.abort();
                return fail(s);
              }
              times.output_ms += 1e3 * seconds_since(t0);
              progress.update(++times.frames);
            }
            if (StopOnSignal::stopped()) {
              ctx.reset();  // stops the decode
              out.abort();
              fail(Status::error("interrupted; no output written"));
              return 130;  // the shell's code for SIGINT
            }
            if (err != DYDCA_ERR_EOS) {
              out.abort();
              return fail(library_error(ctx.get(), err));
            }
            if (Status s = out.finish(); !s) return fail(s);
            times.wall_s = seconds_since(t_start);
            if (times.frames > 0) times.output_ms /= double(times.frames);
            (void)dydca_get_stats(ctx.get(), &stats);  // complete after EOS
            ctx.reset();
            on_signal.reset();

            if (!globals().quiet) std::fprintf(stderr, "%s\n", summary(info, stats, times).c_str());
            if (globals().verbosity > 0 && info.format_version != 0)
              std::fprintf(stderr,
                           "format %d, %d segment%s: %lld switches (%lld waited for the next "
                           "runtime), %.1f ms preparing runtimes in the background; SR ms at "
                           "switches p50 %.2f p99 %.2f, elsewhere p50 %.2f p99 %.2f; "
                           "%d runtimes alive at most (%lld bytes now)\n",
                           info.format_version, info.segments, info.segments == 1 ? "" : "s",
                           (long long)stats.segment_switches, (long long)stats.switch_waits,
                           stats.prepare_ms, stats.switch_sr_p50_ms, stats.switch_sr_p99_ms,
                           stats.other_sr_p50_ms, stats.other_sr_p99_ms,
                           stats.max_runtimes_alive, (long long)stats.runtime_bytes);
            const std::string hex = md5 ? md5->hex() : "";
            if (*muxer == Muxer::kMd5) {
              if (md5_to_file) {
                std::ofstream f(o->output);
                f << hex << "\n";
                if (!f) return fail(Status::error("cannot write " + o->output));
              } else {
                std::printf("%s\n", hex.c_str());
              }
            }
            if (!o->verify.empty() && lower(o->verify) != hex)
              return fail(
                  Status::error("md5 mismatch: got " + hex + ", expected " + lower(o->verify)));
            return 0;
          }};
}

}  // namespace dydca::cli
