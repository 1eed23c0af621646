// dydca client decoder: a .mkv written by `dydca encode` (LR H.264 + model +
// routing) in, HR frames out. Pure C++ interface: no libav or torch types.
//
// Usage:
//   dydca::DecodeOptions opt;
//   opt.output = "out.y4m";              // or "-" (y4m on stdout), "out.mp4", "out.mkv"
//   opt.threads = 2;
//   auto stats = dydca::decode_file("in.mkv", opt);
//   if (!stats) { fprintf(stderr, "%s\n", stats.error_message().c_str()); return 1; }
//   printf("%lld frames, %.1f fps\n", (long long)stats->frames, stats->fps());
//
// Pipeline (three threads, bounded queues of recycled frame slots; nothing is
// allocated per frame once the slots exist):
//   decode thread : H.264 packets -> LR frame -> HR chroma (swscale bicubic)
//   caller thread : HR luma by the SR runtime (its own worker pool), level from LevelPolicy
//   output thread : crop to the HR size -> md5 and/or sink (y4m, x264 mp4/mkv, null)
// Frames in = frames out: the H.264 decoder is drained; a corrupt packet is
// concealed by the decoder (logged), not fatal. Damaged dydca blobs are fatal.
//
// A plain video (no dydca blobs, any codec FFmpeg reads) is upscaled by
// DecodeOptions::plain_scale with bicubic and a warning.
//
// Streaming: the input is a DydcaReader (container/): the decode thread pulls
// LR packets one at a time, so memory is bounded by the queues and the two SR
// runtimes below, never by the video's length. A file with fewer packets than
// it declares fails at the end, and the sink is aborted (no partial output).
//
// Segments (format 2): every segment has its own model (same architecture for
// the whole file) and its own routing. While segment k plays, segment k+1's
// model is reconstructed and its SrRuntime created (weights packed, plan
// made) on a background thread, so the switch at k+1's first frame swaps a
// pointer. At most two runtimes are alive (current + next). A format-1 file is
// one segment.
//
// Multi-model files (format 1, the encoder's baselines: models[i] beside each
// other) are decoded when the routing maps chunks to model indices: at QoS
// level l a tile of chunk c runs model chunk_path[l][c] on that model's
// richest path. One SrRuntime per model, created lazily the first time a
// model is needed: that creation is the "model switch" whose cost DecodeStats
// reports.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dydca/container.h"
#include "dydca/log.h"
#include "dydca/media.h"
#include "dydca/runtime.h"
#include "dydca/status.h"

namespace dydca {

// Wall-clock milliseconds spent on one frame by each stage.
struct FrameTiming {
  double decode_ms = 0;  // H.264 decode (plain video: FFmpeg decode)
  double chroma_ms = 0;  // swscale bicubic into the HR frame (plain video: all planes)
  double sr_ms = 0;      // SR runtime, luma (0 for plain videos)
  double output_ms = 0;  // crop + md5 + sink write
  int level = 0;         // QoS level the frame was upscaled at
  // First frame of a segment after the first: its SR swapped to the next
  // segment's runtime (sr_ms includes any wait for it).
  bool segment_switch = false;
};

// ---- QoS hook ---------------------------------------------------------------

// What a LevelPolicy sees before each frame's SR. Decode runs ahead and output
// runs behind, so the only timing known for sure is the previous frame's SR.
struct LevelContext {
  int64_t frame = 0;             // output index of the frame about to be upscaled
  int levels = 1;                // valid levels are 0 .. levels-1 (0 = richest)
  double frame_interval_ms = 0;  // 1000 / stream frame rate (the real-time budget)
  const FrameTiming* last =
      nullptr;                // previous frame (sr_ms, chroma_ms, decode_ms, level); null first
  int queued_for_output = 0;  // frames upscaled but not yet written (back-pressure)
  // Routing of the frame's segment (null: static model or plain video) and
  // the frame's index in it. Owned by the decoder, valid during the call.
  const RoutingMap* routing = nullptr;
  int64_t routing_frame = 0;
};

// Decides the QoS level of every frame. Called on the SR thread only, once per
// frame, in order; the returned level is clamped to [0, levels-1].
class LevelPolicy {
 public:
  virtual ~LevelPolicy() = default;
  virtual int level_for_frame(const LevelContext& ctx) = 0;
};

// Always the same level (the default, and `--level N`).
class FixedLevelPolicy final : public LevelPolicy {
 public:
  explicit FixedLevelPolicy(int level) : level_(level) {}
  int level_for_frame(const LevelContext&) override { return level_; }

 private:
  int level_;
};

// The QoS controller's adapter, QosLevelPolicy (dydca/qos.h), is a
// LevelPolicy; decode_file builds one from the file for DecodeOptions::
// auto_level and ::switchable (a SwitchableLevelPolicy, dydca/qos.h).
class SwitchableLevelPolicy;

// ---- sinks --------------------------------------------------------------------

// Geometry of the frames a sink receives (cropped HR).
struct SinkFormat {
  int width = 0;
  int height = 0;
  Rational frame_rate{25, 1};
  std::string audio_from;  // input whose first audio stream is copied; "" = it has none
};

// Where HR frames go. open, then write per frame in order (on the output
// thread), then finish (success: output complete and visible) or abort
// (failure or cancel: no partial output left behind). Never called
// concurrently; open/finish/abort run on decode_file's calling thread.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual Status open(const SinkFormat& format) = 0;
  virtual Status write(const Frame& frame) = 0;
  // What decode_file calls: the frame with its timing (level, segment
  // switch, decode / chroma / SR ms; output_ms is not known yet). By default
  // write(frame); a sink that reports per-frame facts (the C API) overrides it.
  virtual Status write_timed(const Frame& frame, const FrameTiming& timing) { return write(frame); }
  virtual Status finish() = 0;
  virtual void abort() {}
};

enum class Muxer {
  kAuto,   // from DecodeOptions::output: "-" or .y4m -> y4m, .mp4/.mkv -> x264
  kY4m,    // y4m to output (file or "-")
  kVideo,  // x264 .mp4/.mkv at output (CRF video_crf), audio copied from the input
  kMd5,    // md5 of all output planes (like dav1d --muxer md5); nothing written
  kNull,   // nothing written (benchmarks)
};
// "auto", "y4m", "mp4", "mkv", "md5", "null" (the --muxer flag).
Expected<Muxer> parse_muxer(const std::string& name);

// ---- decoding -----------------------------------------------------------------

struct DecodeStats {
  std::string input;
  bool plain_video = false;  // no dydca blobs: bicubic fallback
  int lr_width = 0, lr_height = 0;
  int hr_width = 0, hr_height = 0;  // output (cropped) size
  int scale = 0;
  Rational frame_rate;
  int64_t packets = 0;  // compressed frames in the input (after max_frames)
  int64_t frames = 0;   // frames written (== frames decoded)
  double wall_s = 0;    // pipeline: first decode to finished output (fps is frames / wall_s)
  double setup_s = 0;   // before it: reading the file, parsing blobs, planning the runtime
  std::vector<FrameTiming> timings;      // one per frame, in order
  std::vector<int64_t> level_histogram;  // frames per QoS level
  int levels = 1;
  bool auto_level = false;    // the QoS controller chose the levels
  double calibration_ms = 0;  // its start-up calibration (part of setup_s)
  std::string md5;            // hex, when computed
  SimdLevel simd = SimdLevel::kNone;
  Precision precision = Precision::kFp32;  // of the SR model (the last one planned)
  int threads = 0;  // SR workers (the one pool every model runs on)
  // Multi-model files (models > 1). A tile "switches" when its model differs
  // from the same tile's model in the previous frame; a frame switches when
  // it uses a model the previous frame did not use.
  int models = 0;
  int models_loaded = 0;     // models planned (lazily, on first use)
  double model_load_ms = 0;  // total time spent planning them
  int64_t tile_switches = 0;
  int64_t frame_switches = 0;
  size_t runtime_bytes = 0;  // the session's arenas + packed weights of the models held
  // Segments (format 2; a format-1 file is one segment).
  int format_version = 0;          // 0 plain video, 1, 2
  int segments = 0;                // in the file
  int64_t segment_switches = 0;    // frames where the SR moved to the next segment's model
  int64_t switch_waits = 0;        // ... of which the next model was not ready yet
  int max_runtimes_alive = 0;      // SR models alive at once, at most (<= 2 for segments)
  double prepare_ms = 0;           // background time preparing segments (parse + plan)
  double switch_sr_p50_ms = 0, switch_sr_p99_ms = 0;  // sr_ms of the switch frames
  double other_sr_p50_ms = 0, other_sr_p99_ms = 0;    // sr_ms of every other frame

  double fps() const { return wall_s > 0 ? frames / wall_s : 0; }
  double speed() const { return frame_rate.valid() ? fps() / frame_rate.to_double() : 0; }
  // Mean of a FrameTiming field over all frames, e.g. mean_ms(&FrameTiming::sr_ms).
  double mean_ms(double FrameTiming::*field) const;
  // "frames, fps, speed, ms/frame split, level histogram" on one line; with
  // several segments, their count and the SR time at switches vs elsewhere.
  std::string summary() const;
};

struct DecodeOptions {
  std::string output;  // file path or "-"; unused by md5/null
  Muxer muxer = Muxer::kAuto;
  bool compute_md5 = false;  // hash output frames whatever the sink (implied by kMd5)
  int level = 0;             // fixed QoS level (policy, switchable null and !auto_level)
  // Per-frame level; null = `switchable`, else auto_level or the fixed `level`.
  std::shared_ptr<LevelPolicy> policy;
  // `--level auto` (policy null): a QosLevelPolicy (dydca/qos.h) for the
  // file's model and routing (format 2: segment 0's; the architecture is the
  // file's, and each frame's cost comes from its segment's routing),
  // calibrated on this device at start (about two frames' SR per level),
  // targeting the stream's frame rate. Single-model files only; plain and
  // multi-model files run level 0 with a warning.
  bool auto_level = false;
  // Instead of `level` / auto_level (policy null): the caller's switch, which
  // it may turn between fixed levels and auto while the run goes on (the C
  // API). decode_file attaches the file's QoS controller to it as for
  // auto_level, calibrated when it starts in auto (requested() < 0).
  std::shared_ptr<SwitchableLevelPolicy> switchable;
  // Auto level: the frame rate the QoS controller holds; <= 0: the stream's.
  double qos_target_fps = 0;
  int threads = 0;                // SR runtime workers incl. the caller; 0 = all cores
  // The SR's worker pool, when the caller shares one (e.g. with the QoS
  // calibration of the policy it builds); null = one of `threads` workers
  // made for this decode. Every model of the file runs on it.
  std::shared_ptr<WorkerPool> pool;
  int decode_threads = 1;         // libavcodec threads (1 keeps the cores for SR)
  std::optional<SimdLevel> simd;  // unset = best this CPU has
  // SR arithmetic (RuntimeOptions::precision): kAuto = int8 for a segment
  // whose model carries int8 activation scales (and a CPU with AVX2), else
  // fp32; kInt8 fails on a model without scales.
  Precision precision = Precision::kAuto;
  int plain_scale = 2;            // plain videos: bicubic factor (1..8)
  int64_t max_frames = 0;         // 0 = all
  int video_crf = 16;             // Muxer::kVideo: x264 CRF
  std::string video_preset = "veryfast";
  int queue_depth = 3;  // frames in flight between two stages (>= 1)
  // Called once when the input is open, before the first frame, with the
  // geometry fields of DecodeStats filled (sizes, scale, frame_rate, packets).
  std::function<void(const DecodeStats&)> on_start;
};

// Decodes `input` into the sink chosen by options (muxer/output). Progress is
// reported per written frame (stage "decode", total = frames expected);
// returning false from it cancels the run: the output is aborted and the call
// returns Status::cancelled() (code StatusCode::kCancelled).
Expected<DecodeStats> decode_file(const std::string& input, const DecodeOptions& options,
                                  const ProgressFn& progress = {});
// Same into a caller's sink (a player window, a test); options.output and
// options.muxer are ignored (compute_md5 is honoured).
Expected<DecodeStats> decode_file(const std::string& input, const DecodeOptions& options,
                                  FrameSink& sink, const ProgressFn& progress = {});

// Same from a reader the caller opened (e.g. a player that sizes its window
// and builds its QoS policy from the header first): the file is read once.
// `input` names the file in messages (and is reopened for plain videos only,
// which are decoded by FFmpeg whatever their codec).
Expected<DecodeStats> decode_file(DydcaReader reader, const std::string& input,
                                  const DecodeOptions& options, FrameSink& sink,
                                  const ProgressFn& progress = {});

// Sinks decode_file uses, for callers that build their own pipeline.
// kAuto resolves by the output's extension; errors name the path.
Expected<std::unique_ptr<FrameSink>> make_sink(Muxer muxer, const std::string& output,
                                               const DecodeOptions& options = {});

}  // namespace dydca
