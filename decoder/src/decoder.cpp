// The decode pipeline: demux -> H.264 decode + bicubic chroma (decode thread)
// -> SR luma (caller thread, runtime pool) -> crop + md5 + sink (output thread).
// Frame slots are allocated once and recycled through a free queue.
#include "dydca/decoder.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "bounded_queue.h"
#include "dydca/container.h"
#include "dydca/qos.h"
#include "upscale_stages.h"

namespace dydca {

using detail::ms_since;
using Clock = std::chrono::steady_clock;

double DecodeStats::mean_ms(double FrameTiming::*field) const {
  if (timings.empty()) return 0;
  double sum = 0;
  for (const FrameTiming& t : timings) sum += t.*field;
  return sum / double(timings.size());
}

std::string DecodeStats::summary() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%" PRId64
                " frames %dx%d in %.2f s (+%.2f s setup): %.1f fps (%.2fx real time); ms/frame "
                "decode %.2f, chroma %.2f, SR %.2f, output %.2f",
                frames, hr_width, hr_height, wall_s, setup_s, fps(), speed(),
                mean_ms(&FrameTiming::decode_ms), mean_ms(&FrameTiming::chroma_ms),
                mean_ms(&FrameTiming::sr_ms), mean_ms(&FrameTiming::output_ms));
  std::string s = buf;
  if (plain_video) {
    s += "; plain video, bicubic x" + std::to_string(scale);
  } else {
    s += "; levels";
    for (size_t l = 0; l < level_histogram.size(); ++l)
      if (level_histogram[l])
        s.append(" ").append(std::to_string(l)).append(":").append(
            std::to_string(level_histogram[l]));  // (operator+ here trips GCC 12's -Wrestrict)
    if (auto_level) s += " (auto)";
    s += std::string("; ") + simd_level_name(simd) + " " + precision_name(precision) + " x" +
         std::to_string(threads);
  }
  if (segments > 1) {
    std::snprintf(buf, sizeof buf,
                  "; %d segments, %" PRId64 " switches (%" PRId64
                  " waited), SR ms p50/p99 at switches %.2f/%.2f, elsewhere %.2f/%.2f; "
                  "%d runtimes alive at most",
                  segments, segment_switches, switch_waits, switch_sr_p50_ms, switch_sr_p99_ms,
                  other_sr_p50_ms, other_sr_p99_ms, max_runtimes_alive);
    s += buf;
  }
  if (models > 1) {
    std::snprintf(buf, sizeof buf,
                  "; %d models, %d loaded in %.1f ms, %" PRId64 " tile / %" PRId64
                  " frame switches",
                  models, models_loaded, model_load_ms, tile_switches, frame_switches);
    s += buf;
  }
  return s;
}

namespace {

// Source of LR frames in output order, drained at the end.
class LrSource {
 public:
  virtual ~LrSource() = default;
  // true: a frame; false: end of stream (decoder drained). Errors name the file.
  virtual Expected<bool> next(Frame& out) = 0;
};

// Pulls packets from the reader as the decoder asks for them: nothing but the
// decoder's own reference frames and one packet is held.
class H264Source final : public LrSource {
 public:
  H264Source(DydcaReader& reader, VideoDecoder decoder, std::string input)
      : reader_(reader), decoder_(std::move(decoder)), input_(std::move(input)) {}
  Expected<bool> next(Frame& out) override {
    while (true) {
      auto got = decoder_.receive(out);
      if (!got) return got.status().with_context(input_);
      if (*got) return true;
      if (eof_sent_) return false;
      // Damaged or truncated: the reader's error names the file.
      DYDCA_ASSIGN_OR_RETURN(const bool more, reader_.read_packet(packet_));
      if (more) {
        DYDCA_TRY(decoder_.send(&packet_).with_context(input_));
      } else {
        DYDCA_TRY(decoder_.send(nullptr).with_context(input_));
        eof_sent_ = true;
      }
    }
  }

 private:
  DydcaReader& reader_;
  VideoDecoder decoder_;
  std::string input_;
  EncodedPacket packet_;
  bool eof_sent_ = false;
};

class ReaderSource final : public LrSource {
 public:
  ReaderSource(VideoReader reader, std::string input)
      : reader_(std::move(reader)), input_(std::move(input)) {}
  Expected<bool> next(Frame& out) override {
    auto got = reader_.read(out);
    if (!got) return got.status().with_context(input_);
    return got;
  }

 private:
  VideoReader reader_;
  std::string input_;
};

struct Slot {
  Frame lr, hr;
  FrameTiming timing;
  int64_t index = 0;
};
using SlotPtr = std::unique_ptr<Slot>;

// First error wins; every queue is cancelled so that all threads wind down.
class ErrorLatch {
 public:
  explicit ErrorLatch(std::vector<detail::BoundedQueue<SlotPtr>*> queues)
      : queues_(std::move(queues)) {}
  void fail(Status s) {
    {
      std::lock_guard lock(mu_);
      if (failed_) return;
      failed_ = true;
      status_ = std::move(s);
    }
    for (auto* q : queues_) q->cancel();
  }
  bool failed() const {
    std::lock_guard lock(mu_);
    return failed_;
  }
  Status status() const {
    std::lock_guard lock(mu_);
    return status_;
  }

 private:
  mutable std::mutex mu_;
  bool failed_ = false;
  Status status_;
  std::vector<detail::BoundedQueue<SlotPtr>*> queues_;
};

// Nearest-rank percentile (q in (0, 1]) of unsorted values; 0 when empty.
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = size_t(std::ceil(q * double(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

void crop_into(const Frame& in, Frame& out) {
  for (int p = 0; p < 3; ++p) {
    const int w = out.plane_width(p), h = out.plane_height(p), in_w = in.plane_width(p);
    for (int r = 0; r < h; ++r)
      std::memcpy(out.plane(p) + size_t(r) * w, in.plane(p) + size_t(r) * in_w, size_t(w));
  }
  out.pts = in.pts;
}

}  // namespace

Expected<DecodeStats> decode_file(const std::string& input, const DecodeOptions& options,
                                  const ProgressFn& progress) {
  const Muxer muxer = options.muxer;
  DYDCA_ASSIGN_OR_RETURN(auto sink, make_sink(muxer, options.output, options));
  DecodeOptions opt = options;
  if (muxer == Muxer::kMd5) opt.compute_md5 = true;
  return decode_file(input, opt, *sink, progress);
}

Expected<DecodeStats> decode_file(const std::string& input, const DecodeOptions& options,
                                  FrameSink& sink, const ProgressFn& progress) {
  const auto t_open = Clock::now();
  DYDCA_ASSIGN_OR_RETURN(auto reader, DydcaReader::open(input));
  const double open_s = std::chrono::duration<double>(Clock::now() - t_open).count();
  auto stats = decode_file(std::move(reader), input, options, sink, progress);
  if (stats) stats->setup_s += open_s;  // reading the header and blobs is setup too
  return stats;
}

Expected<DecodeStats> decode_file(DydcaReader reader, const std::string& input,
                                  const DecodeOptions& options, FrameSink& sink,
                                  const ProgressFn& progress) {
  const auto t_open = Clock::now();
  if (options.queue_depth < 1 || options.queue_depth > 64)
    return Status::error("queue depth must be 1..64", StatusCode::kInvalidArgument);
  if (options.max_frames < 0)
    return Status::error("max frames must be >= 0", StatusCode::kInvalidArgument);
  if (options.plain_scale < 1 || options.plain_scale > 8)
    return Status::error("scale must be 1..8", StatusCode::kInvalidArgument);
  if (options.level < 0)
    return Status::error("QoS level must be >= 0", StatusCode::kInvalidArgument);
  if (options.simd && !simd_level_supported(*options.simd))
    return Status::error(std::string("this CPU has no ") + simd_level_name(*options.simd),
                         StatusCode::kUnsupported);

  DecodeStats stats;
  stats.input = input;
  stats.plain_video = !reader.has_dydca();
  stats.format_version = reader.format_version();
  std::unique_ptr<LrSource> source;
  std::unique_ptr<detail::SrStage> sr;
  int64_t expected = 0;
  if (reader.has_dydca()) {
    const EncodedVideo& video = reader.video();
    stats.lr_width = video.width;
    stats.lr_height = video.height;
    stats.scale = reader.scale();
    stats.hr_width = reader.hr_width();
    stats.hr_height = reader.hr_height();
    stats.frame_rate = video.frame_rate;
    expected = reader.frames();
    auto dec = VideoDecoder::open(video, options.decode_threads);
    if (!dec) return dec.status().with_context(input);
    source = std::make_unique<H264Source>(reader, std::move(*dec), input);
    auto stage = detail::SrStage::create(reader, options);
    if (!stage) return stage.status().with_context(input);
    sr = std::move(*stage);
    stats.levels = sr->levels();
    const int fixed_level =
        options.switchable ? options.switchable->requested() : options.level;
    if (!options.policy && fixed_level >= stats.levels)
      return Status::error("QoS level " + std::to_string(fixed_level) + " but " + input +
                           " has " + std::to_string(stats.levels) + " level" +
                           (stats.levels == 1 ? "" : "s") + " (0.." +
                           std::to_string(stats.levels - 1) + ")",
                           StatusCode::kInvalidArgument);
  } else {
    // Any codec FFmpeg reads: its own reader (the dydca reader has read the
    // header only).
    DYDCA_ASSIGN_OR_RETURN(auto plain, VideoReader::open(input, options.decode_threads));
    const VideoInfo& info = plain.info();
    log_warning(input + " has no dydca model: upscaling x" + std::to_string(options.plain_scale) +
                " with bicubic");
    stats.lr_width = info.width;
    stats.lr_height = info.height;
    stats.scale = options.plain_scale;
    stats.hr_width = info.width * options.plain_scale;
    stats.hr_height = info.height * options.plain_scale;
    stats.frame_rate = info.frame_rate.valid() ? info.frame_rate : Rational{25, 1};
    expected = info.frame_count;
    source = std::make_unique<ReaderSource>(std::move(plain), input);
  }
  if (options.max_frames > 0 && expected > 0) expected = std::min(expected, options.max_frames);
  stats.packets = expected;
  stats.level_histogram.assign(size_t(stats.levels), 0);
  const int64_t limit = options.max_frames > 0 ? options.max_frames : INT64_MAX;

  // The client's frames: chroma on the decode thread, luma (SrStage) on this
  // one, every model on the stage's pool.
  auto frames = FrameUpscaler::create(stats.lr_width, stats.lr_height, stats.scale,
                                      sr ? sr->pool() : nullptr,
                                      sr ? sr->session_options() : SessionOptions{});
  if (!frames) return frames.status().with_context(input);

  // The level of every frame: the caller's policy, else a switch (the
  // caller's, or fixed `level` / auto). What auto means for the file is
  // decided here and nowhere else: the QoS controller for single-model
  // files, from segment 0's model and routing (one architecture per file;
  // each frame's cost then comes from its own segment's routing), calibrated
  // when the run starts in auto.
  std::shared_ptr<SwitchableLevelPolicy> levels = options.switchable;
  if (!levels)
    levels = std::make_shared<SwitchableLevelPolicy>(options.auto_level ? -1 : options.level);
  LevelPolicy* policy = options.policy ? options.policy.get() : levels.get();
  if (!options.policy && (options.auto_level || options.switchable)) {
    if (sr && reader.model_count() == 1) {
      QosParams params;
      params.target_fps = options.qos_target_fps;  // <= 0: the stream's
      // Segment 0's model and routing: one architecture for the file; each
      // frame's cost then comes from its own segment's routing (LevelContext).
      auto q = QosLevelPolicy::create(sr->first_model()->arch(), sr->first_routing(),
                                      stats.lr_width, stats.lr_height, stats.frame_rate, params);
      if (!q) return q.status().with_context(input + ": QoS");
      if (levels->requested() < 0) {
        const auto t0 = Clock::now();
        if (Status s = (*q)->calibrate(*sr->first_model(), frames->session()); !s)
          return s.with_context(input);
        stats.auto_level = true;
        stats.calibration_ms = ms_since(t0);
      }
      levels->attach(*q);
    } else if (levels->requested() < 0) {
      log_warning(input + ": level auto needs a single-model dydca file; using level 0");
    }
  }

  // Slots: enough for every queue to be full plus one in each stage.
  const size_t depth = size_t(options.queue_depth);
  const size_t n_slots = 2 * depth + 3;
  detail::BoundedQueue<SlotPtr> free_q(n_slots), to_sr(depth), to_out(depth);
  for (size_t i = 0; i < n_slots; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->lr = Frame::blank(stats.lr_width, stats.lr_height);
    slot->hr = Frame::blank(stats.lr_width * stats.scale, stats.lr_height * stats.scale);
    (void)free_q.push(std::move(slot));
  }
  const bool crop = stats.hr_width != stats.lr_width * stats.scale ||
                    stats.hr_height != stats.lr_height * stats.scale;
  Frame cropped = crop ? Frame::blank(stats.hr_width, stats.hr_height) : Frame{};
  std::optional<FrameMd5> md5;
  if (options.compute_md5) md5.emplace();
  stats.timings.reserve(size_t(std::clamp<int64_t>(expected, 0, 1 << 20)));

  if (options.on_start) options.on_start(stats);
  SinkFormat format;
  format.width = stats.hr_width;
  format.height = stats.hr_height;
  format.frame_rate = stats.frame_rate;
  // Only a file with audio is handed on (opening it again for nothing costs a
  // probe and FFmpeg warnings about the attachment streams).
  if (reader.has_audio()) format.audio_from = input;
  if (Status s = sink.open(format); !s) {
    sink.abort();
    return s;
  }

  ErrorLatch latch({&free_q, &to_sr, &to_out});
  const auto t_start = Clock::now();
  std::atomic<int64_t> decoded{0};

  std::thread decode_thread([&] {
    int64_t n = 0;
    while (n < limit) {
      std::optional<SlotPtr> slot = free_q.pop();
      if (!slot) break;  // cancelled
      Slot& sl = **slot;
      auto t0 = Clock::now();
      auto got = source->next(sl.lr);
      if (!got) return latch.fail(got.status());  // the sources name the file
      if (!*got) break;
      sl.timing = FrameTiming{};
      sl.timing.decode_ms = ms_since(t0);
      t0 = Clock::now();
      if (Status s = frames->chroma(sl.lr, sl.hr); !s) return latch.fail(s.with_context(input));
      sl.timing.chroma_ms = ms_since(t0);
      sl.index = n++;
      if (!to_sr.push(std::move(*slot))) break;
    }
    decoded = n;
    to_sr.close();
  });

  std::thread output_thread([&] {
    int64_t written = 0;
    while (std::optional<SlotPtr> slot = to_out.pop()) {
      Slot& sl = **slot;
      const auto t0 = Clock::now();
      const Frame* out = &sl.hr;
      if (crop) {
        crop_into(sl.hr, cropped);
        out = &cropped;
      }
      if (md5) md5->add(*out);
      if (Status s = sink.write_timed(*out, sl.timing); !s) return latch.fail(s);
      sl.timing.output_ms = ms_since(t0);
      stats.timings.push_back(sl.timing);
      ++written;
      if (progress && !progress(Progress{"decode", written, expected}))
        return latch.fail(Status::cancelled());
      if (!free_q.push(std::move(*slot))) break;
    }
  });

  // SR on this thread: the runtime's pool is driven from here.
  FrameTiming last;
  bool have_last = false;
  while (std::optional<SlotPtr> slot = to_sr.pop()) {
    Slot& sl = **slot;
    if (sr) {
      // The switch (a pointer swap when the next segment is ready) is SR
      // time of this frame.
      const auto t_switch = Clock::now();
      bool switched = false;
      if (Status s = sr->begin_frame(sl.index, &switched); !s) {
        latch.fail(s.with_context(input + " frame " + std::to_string(sl.index)));
        break;
      }
      const double switch_ms = ms_since(t_switch);
      LevelContext ctx;
      ctx.frame = sl.index;
      ctx.levels = stats.levels;
      ctx.frame_interval_ms =
          stats.frame_rate.valid() ? 1000.0 / stats.frame_rate.to_double() : 40.0;
      ctx.last = have_last ? &last : nullptr;
      ctx.queued_for_output = int(to_out.size());
      ctx.routing = sr->routing_for(sl.index, &ctx.routing_frame);
      const int level = std::clamp(policy->level_for_frame(ctx), 0, stats.levels - 1);
      const auto t0 = Clock::now();
      if (Status s = sr->run(*frames, sl.lr, sl.hr, sl.index, level); !s) {
        latch.fail(s.with_context(input + " frame " + std::to_string(sl.index)));
        break;
      }
      sl.timing.sr_ms = ms_since(t0) + switch_ms;
      sl.timing.level = level;
      sl.timing.segment_switch = switched;
      last = sl.timing;
      have_last = true;
    }
    if (!to_out.push(std::move(*slot))) break;
  }
  to_out.close();
  decode_thread.join();
  output_thread.join();

  if (latch.failed()) {
    sink.abort();
    return latch.status();
  }
  if (Status s = sink.finish(); !s) return s;
  stats.frames = int64_t(stats.timings.size());
  stats.wall_s = std::chrono::duration<double>(Clock::now() - t_start).count();
  stats.setup_s = std::chrono::duration<double>(t_start - t_open).count();
  // Frames in = frames out: every decoded frame went through every stage.
  if (stats.frames != decoded)
    return Status::error("internal: decoded " + std::to_string(decoded.load()) +
                         " frames but wrote " + std::to_string(stats.frames));
  if (expected > 0 && stats.frames != expected &&
      (options.max_frames == 0 || stats.frames < expected))
    log_warning(input + ": " + std::to_string(expected) + " packets gave " +
                std::to_string(stats.frames) + " frames (damaged stream?)");
  std::vector<double> switch_sr, other_sr;
  for (const FrameTiming& t : stats.timings) {
    ++stats.level_histogram[size_t(t.level)];
    (t.segment_switch ? switch_sr : other_sr).push_back(t.sr_ms);
  }
  stats.switch_sr_p50_ms = percentile(switch_sr, 0.50);
  stats.switch_sr_p99_ms = percentile(switch_sr, 0.99);
  stats.other_sr_p50_ms = percentile(other_sr, 0.50);
  stats.other_sr_p99_ms = percentile(other_sr, 0.99);
  if (md5) stats.md5 = md5->hex();
  if (sr) sr->report(stats, *frames);
  if (!options.policy && !stats.timings.empty()) levels->finish(stats.timings.back());
  return stats;
}

}  // namespace dydca
