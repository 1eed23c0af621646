// The C API (dydca/dydca.h) over decode_file(): a worker thread runs the
// three-thread pipeline into a FrameSink that hands pictures to a bounded
// queue; dydca_get_picture() pops it. The level comes from a
// SwitchableLevelPolicy the context owns (decode_file attaches the file's QoS
// controller to it), so dydca_set_level() works while decoding.
#include "dydca/dydca.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dydca/container.h"
#include "dydca/decoder.h"
#include "dydca/log.h"
#include "dydca/qos.h"

#ifndef DYDCA_VERSION_STRING
#define DYDCA_VERSION_STRING "unknown"
#endif

namespace {

using namespace dydca;

thread_local std::string t_open_error;  // dydca_last_error(NULL)

int error_code(StatusCode c) {
  switch (c) {
    case StatusCode::kOk: return DYDCA_OK;
    case StatusCode::kInvalidArgument: return DYDCA_ERR_INVALID_ARG;
    case StatusCode::kInvalidData: return DYDCA_ERR_INVALID_DATA;
    case StatusCode::kUnsupported: return DYDCA_ERR_UNSUPPORTED;
    case StatusCode::kOutOfMemory: return DYDCA_ERR_NOMEM;
    case StatusCode::kIo: return DYDCA_ERR_IO;
    case StatusCode::kCancelled: return DYDCA_ERR_CANCELLED;
    case StatusCode::kFailed: break;
  }
  return DYDCA_ERR_FAILED;
}

// ---- logging ------------------------------------------------------------------
// The library logs through one process-wide callback (dydca/log.h). Contexts
// with a callback register here; the dispatcher, installed once, hands every
// message to each of them (stderr as by default when none is registered).

struct LogTarget {
  void (*fn)(void*, int, const char*);
  void* opaque;
  int level;
};

std::mutex g_log_mu;
std::vector<std::pair<const void*, LogTarget>> g_log_targets;  // by context
bool g_log_installed = false;

void dispatch_log(LogLevel level, std::string_view msg) {
  const std::string line(msg);
  std::lock_guard lock(g_log_mu);
  if (g_log_targets.empty()) {
    static const char* names[] = {"error", "warning", "info", "debug"};
    if (level <= LogLevel::kWarning)
      std::fprintf(stderr, "dydca %s: %s\n", names[int(level)], line.c_str());
    return;
  }
  for (const auto& [ctx, t] : g_log_targets)
    if (int(level) <= t.level) t.fn(t.opaque, int(level), line.c_str());
}

// The global level lets through what the most verbose context asks for (it is
// never lowered: the dispatcher filters per context, and a host's own
// setting stays).
void raise_log_level_locked(int level) {
  if (level > int(log_level())) set_log_level(LogLevel(level));
}

void register_log(const void* ctx, const DydcaSettings& s) {
  if (!s.log_callback) return;
  bool install = false;
  {
    std::lock_guard lock(g_log_mu);
    g_log_targets.push_back({ctx, {s.log_callback, s.log_opaque, s.log_level}});
    raise_log_level_locked(s.log_level);
    install = !g_log_installed;
    g_log_installed = true;
  }
  // Outside g_log_mu: log() holds its own lock while it calls dispatch_log.
  if (install) {
    set_log_callback(&dispatch_log);
    install_ffmpeg_log_bridge();
  }
}

void unregister_log(const void* ctx) {
  std::lock_guard lock(g_log_mu);
  auto it = std::remove_if(g_log_targets.begin(), g_log_targets.end(),
                           [&](const auto& e) { return e.first == ctx; });
  g_log_targets.erase(it, g_log_targets.end());
}

// ---- pictures -------------------------------------------------------------------

class PicturePool;

// One output picture; DydcaPicture::ref points at it while the caller holds it.
struct PictureBuffer {
  Frame frame;
  int64_t index = 0;
  FrameTiming timing;  // level, segment switch, stage times
  std::shared_ptr<PicturePool> pool;  // where unref returns it (outlives the context)
};

// Recycles picture buffers: once as many exist as are in flight, no picture
// allocates.
class PicturePool : public std::enable_shared_from_this<PicturePool> {
 public:
  explicit PicturePool(size_t keep) : keep_(keep) {}
  std::unique_ptr<PictureBuffer> get() {
    std::unique_ptr<PictureBuffer> b;
    {
      std::lock_guard lock(mu_);
      if (!free_.empty()) {
        b = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (!b) b = std::make_unique<PictureBuffer>();
    b->pool = shared_from_this();
    return b;
  }
  // The caller holds a reference to the pool (b's may be the last one).
  void put(std::unique_ptr<PictureBuffer> b) {
    b->pool.reset();  // a free buffer does not keep its pool alive (no cycle)
    std::lock_guard lock(mu_);
    if (free_.size() < keep_) free_.push_back(std::move(b));
  }

 private:
  std::mutex mu_;
  size_t keep_;
  std::vector<std::unique_ptr<PictureBuffer>> free_;
};

// ---- custom input ---------------------------------------------------------------------

class CallbackSource final : public ByteSource {
 public:
  explicit CallbackSource(const DydcaIO& io) : io_(io) {}
  int read(uint8_t* buf, int size) override { return io_.read(io_.opaque, buf, size); }
  int64_t seek(int64_t offset, int whence) override {
    return io_.seek ? io_.seek(io_.opaque, offset, whence) : -1;
  }

 private:
  DydcaIO io_;
};

}  // namespace

// ---- the context ------------------------------------------------------------------------

struct DydcaContext {
  DydcaSettings settings{};
  std::string name;  // the input in messages
  DydcaInfo info{};
  DydcaStats stats{};  // set-up fields at open, the rest when the decode ends
  std::shared_ptr<SwitchableLevelPolicy> levels;
  std::shared_ptr<PicturePool> pool;
  std::string last_error;

  // Between the sink (output thread) and dydca_get_picture (caller).
  mutable std::mutex mu;
  std::condition_variable cv;  // any change below
  std::deque<std::unique_ptr<PictureBuffer>> ready;
  size_t capacity = 3;
  bool started = false;  // decode_file's on_start ran (info is valid)
  bool done = false;     // decode_file returned
  Status result;         // its status once done
  std::atomic<bool> cancel{false};
  std::thread worker;

  ~DydcaContext() {
    cancel = true;
    {
      std::lock_guard lock(mu);
      cv.notify_all();
    }
    if (worker.joinable()) worker.join();
    unregister_log(this);
  }
};

namespace {

// Copies decoded frames into pooled pictures and queues them; blocks while
// the caller is queue_depth pictures behind (back-pressure on the pipeline).
class QueueSink final : public FrameSink {
 public:
  explicit QueueSink(DydcaContext& c) : c_(c) {}
  Status open(const SinkFormat&) override { return Status::ok(); }
  Status write(const Frame& frame) override { return write_timed(frame, FrameTiming{}); }
  Status write_timed(const Frame& frame, const FrameTiming& timing) override {
    std::unique_ptr<PictureBuffer> b = c_.pool->get();
    b->frame.width = frame.width;
    b->frame.height = frame.height;
    b->frame.y.assign(frame.y.begin(), frame.y.end());  // reuses the buffer's capacity
    b->frame.u.assign(frame.u.begin(), frame.u.end());
    b->frame.v.assign(frame.v.begin(), frame.v.end());
    b->frame.pts = frame.pts;
    b->index = next_++;
    b->timing = timing;
    std::unique_lock lock(c_.mu);
    c_.cv.wait(lock, [&] { return c_.cancel.load() || c_.ready.size() < c_.capacity; });
    if (c_.cancel) return Status::cancelled();
    c_.ready.push_back(std::move(b));
    c_.cv.notify_all();
    return Status::ok();
  }
  Status finish() override { return Status::ok(); }

 private:
  DydcaContext& c_;
  int64_t next_ = 0;
};

Status check_settings(const DydcaSettings* in, DydcaSettings* out) {
  dydca_default_settings(out);
  if (!in) return Status::error("settings are NULL", StatusCode::kInvalidArgument);
  // 1.0's fields end where target_fps starts (1.1 took it from the reserved bytes).
  if (in->struct_size < offsetof(DydcaSettings, target_fps) || in->struct_size > sizeof *in)
    return Status::error("settings: struct_size " + std::to_string(in->struct_size) +
                             " is not from this dydca.h (call dydca_default_settings)",
                         StatusCode::kInvalidArgument);
  std::memcpy(static_cast<void*>(out), in, in->struct_size);
  out->struct_size = sizeof *out;
  auto bad = [](const std::string& what) {
    return Status::error("settings: " + what, StatusCode::kInvalidArgument);
  };
  if (out->threads < 0 || out->threads > 1024) return bad("threads must be 0..1024");
  if (out->level < -1) return bad("level must be -1 (auto) or >= 0");
  if (out->precision < DYDCA_PRECISION_AUTO || out->precision > DYDCA_PRECISION_INT8)
    return bad("unknown precision");
  if (out->max_frames < 0) return bad("max_frames must be >= 0");
  if (out->queue_depth < 1 || out->queue_depth > 64) return bad("queue_depth must be 1..64");
  if (out->plain_scale < 1 || out->plain_scale > 8) return bad("plain_scale must be 1..8");
  if (out->log_level < DYDCA_LOG_ERROR || out->log_level > DYDCA_LOG_DEBUG)
    return bad("log_level must be 0..3");
  if (!(out->target_fps >= 0 && out->target_fps <= 1000))  // NaN too
    return bad("target_fps must be 0 (the stream's) .. 1000");
  if (out->simd < DYDCA_SIMD_AUTO || out->simd > DYDCA_SIMD_AVX512) return bad("unknown simd");
  return Status::ok();
}

std::optional<SimdLevel> to_simd(int s) {
  switch (s) {
    case DYDCA_SIMD_NONE: return SimdLevel::kNone;
    case DYDCA_SIMD_AVX2: return SimdLevel::kAvx2;
    case DYDCA_SIMD_AVX512: return SimdLevel::kAvx512;
    default: return std::nullopt;
  }
}

int from_simd(SimdLevel s) {
  switch (s) {
    case SimdLevel::kAvx2: return DYDCA_SIMD_AVX2;
    case SimdLevel::kAvx512: return DYDCA_SIMD_AVX512;
    case SimdLevel::kNone: break;
  }
  return DYDCA_SIMD_NONE;
}

// The run's statistics into the context's DydcaStats (decode_file returned).
void fill_stats(const DecodeStats& d, DydcaStats& s) {
  s.complete = 1;
  s.frames = d.frames;
  s.decode_ms = d.mean_ms(&FrameTiming::decode_ms);
  s.chroma_ms = d.mean_ms(&FrameTiming::chroma_ms);
  s.sr_ms = d.mean_ms(&FrameTiming::sr_ms);
  for (size_t l = 0; l < d.level_histogram.size() && l < DYDCA_MAX_LEVELS; ++l)
    s.level_frames[l] = d.level_histogram[l];
  s.simd = from_simd(d.simd);
  s.precision = d.precision == Precision::kInt8 ? DYDCA_PRECISION_INT8 : DYDCA_PRECISION_FP32;
  s.threads = d.threads;
  s.segment_switches = d.segment_switches;
  s.switch_waits = d.switch_waits;
  s.max_runtimes_alive = d.max_runtimes_alive;
  s.prepare_ms = d.prepare_ms;
  s.switch_sr_p50_ms = d.switch_sr_p50_ms;
  s.switch_sr_p99_ms = d.switch_sr_p99_ms;
  s.other_sr_p50_ms = d.other_sr_p50_ms;
  s.other_sr_p99_ms = d.other_sr_p99_ms;
  s.models = d.models;
  s.models_loaded = d.models_loaded;
  s.model_load_ms = d.model_load_ms;
  s.tile_switches = d.tile_switches;
  s.frame_switches = d.frame_switches;
  s.runtime_bytes = int64_t(d.runtime_bytes);
}

// A versioned struct (struct_size first) into the caller's copy of it, whose
// size the caller set: the common part, and zeros past what this library
// knows.
template <class T>
int copy_sized(const T& from, T* out) {
  if (!out) return DYDCA_ERR_INVALID_ARG;
  const size_t n = out->struct_size;
  if (n < sizeof(size_t) || n > 4096) return DYDCA_ERR_INVALID_ARG;
  auto* dst = reinterpret_cast<unsigned char*>(out);
  const auto* src = reinterpret_cast<const unsigned char*>(&from);
  std::memcpy(dst + sizeof(size_t), src + sizeof(size_t), std::min(n, sizeof(T)) - sizeof(size_t));
  if (n > sizeof(T)) std::memset(dst + sizeof(T), 0, n - sizeof(T));
  return DYDCA_OK;
}

Precision to_precision(int p) {
  switch (p) {
    case DYDCA_PRECISION_FP32: return Precision::kFp32;
    case DYDCA_PRECISION_INT8: return Precision::kInt8;
    default: return Precision::kAuto;
  }
}

// dydca_open / dydca_open_io after the reader opened.
Status start(DydcaContext& c, DydcaReader reader, bool from_path) {
  const DydcaSettings& s = c.settings;
  if (!from_path && !reader.has_dydca())
    return Status::error(c.name + ": a plain video (no dydca model) is decoded from a path only",
                         StatusCode::kUnsupported);
  DecodeOptions opt;
  opt.threads = s.threads;
  opt.precision = to_precision(s.precision);
  opt.max_frames = s.max_frames;
  opt.queue_depth = s.queue_depth;
  opt.plain_scale = s.plain_scale;
  opt.simd = to_simd(s.simd);
  opt.qos_target_fps = s.target_fps;
  // decode_file decides what auto is for the file and attaches the QoS
  // controller (calibrated when the level starts at -1) before on_start.
  c.levels = std::make_shared<SwitchableLevelPolicy>(s.level);
  opt.switchable = c.levels;
  c.stats.has_audio = reader.has_audio() ? 1 : 0;
  c.info.format_version = reader.format_version();
  c.info.segments = int(reader.segments().size());
  c.capacity = size_t(s.queue_depth);
  c.pool = std::make_shared<PicturePool>(size_t(s.queue_depth) + 2);
  opt.on_start = [&c](const DecodeStats& st) {
    const std::shared_ptr<QosLevelPolicy>& qos = c.levels->qos();
    if (qos && c.settings.caller_reports_late) qos->set_sink_reports_late(true);
    std::lock_guard lock(c.mu);
    c.info.auto_level = qos ? 1 : 0;
    c.stats.auto_level = st.auto_level ? 1 : 0;
    c.stats.calibration_ms = st.calibration_ms;
    c.info.width = st.hr_width;
    c.info.height = st.hr_height;
    c.info.lr_width = st.lr_width;
    c.info.lr_height = st.lr_height;
    c.info.scale = st.scale;
    c.info.fps_num = st.frame_rate.num;
    c.info.fps_den = st.frame_rate.den;
    c.info.frames = st.packets;
    c.info.levels = st.levels;
    c.started = true;
    c.cv.notify_all();
  };

  c.worker = std::thread([&c, reader = std::move(reader), opt = std::move(opt)]() mutable {
    Status result;
    DecodeStats stats;
    try {
      QueueSink sink(c);
      auto run = decode_file(std::move(reader), c.name, opt, sink,
                             [&c](const Progress&) { return !c.cancel.load(); });
      result = run.status();
      if (run) stats = std::move(*run);
    } catch (const std::bad_alloc&) {
      result = Status::error("out of memory", StatusCode::kOutOfMemory);
    } catch (const std::exception& e) {
      result = Status::error(std::string("internal: ") + e.what());
    }
    std::lock_guard lock(c.mu);
    if (result) fill_stats(stats, c.stats);
    c.done = true;
    c.result = std::move(result);
    c.cv.notify_all();
  });

  // Open returns once the pipeline runs (or failed to start): its set-up
  // errors (models, runtime, options) are open's.
  std::unique_lock lock(c.mu);
  c.cv.wait(lock, [&] { return c.started || c.done; });
  if (!c.started) return c.result;  // (a level the file lacks is decode_file's error)
  return Status::ok();
}

// Shared by dydca_open and dydca_open_io: the reader comes from open_reader.
template <class OpenReader>
int open_context(DydcaContext** out, const DydcaSettings* settings, bool from_path,
                 const std::string& name, OpenReader open_reader) {
  t_open_error.clear();
  std::unique_ptr<DydcaContext> c;
  Status s;
  try {
    c = std::make_unique<DydcaContext>();
    c->name = name;
    s = check_settings(settings, &c->settings);
    if (s) {
      register_log(c.get(), c->settings);
      Expected<DydcaReader> reader = open_reader();
      s = reader ? start(*c, std::move(*reader), from_path) : reader.status();
    }
  } catch (const std::bad_alloc&) {
    s = Status::error("out of memory", StatusCode::kOutOfMemory);
  } catch (const std::exception& e) {
    s = Status::error(std::string("internal: ") + e.what());
  }
  if (!s) {
    t_open_error = s.message();
    c.reset();  // stops a pipeline that started
    return error_code(s.code());
  }
  *out = c.release();
  return DYDCA_OK;
}

}  // namespace

// ---- the C functions ----------------------------------------------------------------------

// The ABI of libdydca.so.1 (LP64): 1.1 took its settings from the reserved
// bytes, so every 1.0 struct keeps its size and offsets.
static_assert(sizeof(void*) != 8 ||
                  (sizeof(DydcaSettings) == 128 && offsetof(DydcaSettings, target_fps) == 64 &&
                   sizeof(DydcaInfo) == 56 && sizeof(DydcaPicture) == 88),
              "the 1.0 structs of dydca.h changed: that breaks libdydca.so.1");

extern "C" {

const char* dydca_version(void) { return DYDCA_VERSION_STRING; }

unsigned dydca_api_version(void) { return DYDCA_API_VERSION; }

const char* dydca_error_string(int code) {
  switch (code) {
    case DYDCA_OK: return "success";
    case DYDCA_ERR_AGAIN: return "no picture ready yet";
    case DYDCA_ERR_EOS: return "end of stream";
    case DYDCA_ERR_INVALID_DATA: return "invalid data";
    case DYDCA_ERR_UNSUPPORTED: return "unsupported";
    case DYDCA_ERR_NOMEM: return "out of memory";
    case DYDCA_ERR_CANCELLED: return "cancelled";
    case DYDCA_ERR_IO: return "input/output error";
    case DYDCA_ERR_INVALID_ARG: return "invalid argument";
    case DYDCA_ERR_FAILED: return "failed";
    default: return "unknown error code";
  }
}

void dydca_default_settings(DydcaSettings* s) {
  if (!s) return;
  std::memset(static_cast<void*>(s), 0, sizeof *s);
  s->struct_size = sizeof *s;
  s->threads = 0;
  s->level = -1;
  s->precision = DYDCA_PRECISION_AUTO;
  s->max_frames = 0;
  s->queue_depth = 3;
  s->nonblocking = 0;
  s->plain_scale = 2;
  s->log_level = DYDCA_LOG_WARNING;
}

int dydca_open(DydcaContext** out, const char* path, const DydcaSettings* settings) {
  if (out) *out = nullptr;
  if (!out || !path) {
    t_open_error = "dydca_open: out and path must not be NULL";
    return DYDCA_ERR_INVALID_ARG;
  }
  const std::string p = path;
  return open_context(out, settings, true, p, [&] { return DydcaReader::open(p); });
}

int dydca_open_io(DydcaContext** out, const DydcaIO* io, const DydcaSettings* settings) {
  if (out) *out = nullptr;
  if (!out || !io || !io->read) {
    t_open_error = "dydca_open_io: out, io and io->read must not be NULL";
    return DYDCA_ERR_INVALID_ARG;
  }
  const DydcaIO copy = *io;
  const std::string name = "custom input";
  return open_context(out, settings, false, name, [&] {
    return DydcaReader::open(std::make_unique<CallbackSource>(copy), name);
  });
}

int dydca_get_info(const DydcaContext* ctx, DydcaInfo* out) {
  if (!ctx || !out) return DYDCA_ERR_INVALID_ARG;
  *out = ctx->info;  // written before dydca_open returned, constant since
  return DYDCA_OK;
}

int dydca_get_picture(DydcaContext* ctx, DydcaPicture* out) {
  if (out) std::memset(static_cast<void*>(out), 0, sizeof *out);
  if (!ctx || !out) return DYDCA_ERR_INVALID_ARG;
  std::unique_ptr<PictureBuffer> b;
  {
    std::unique_lock lock(ctx->mu);
    if (!ctx->settings.nonblocking)
      ctx->cv.wait(lock, [&] { return !ctx->ready.empty() || ctx->done; });
    if (ctx->ready.empty()) {
      if (!ctx->done) return DYDCA_ERR_AGAIN;
      if (ctx->result) return DYDCA_ERR_EOS;
      ctx->last_error = ctx->result.message();
      return error_code(ctx->result.code());
    }
    b = std::move(ctx->ready.front());
    ctx->ready.pop_front();
    ctx->cv.notify_all();  // room for the sink
  }
  Frame& f = b->frame;
  out->planes[0] = f.y.data();
  out->planes[1] = f.u.data();
  out->planes[2] = f.v.data();
  out->stride[0] = f.width;
  out->stride[1] = out->stride[2] = f.chroma_width();
  out->width = f.width;
  out->height = f.height;
  out->frame = b->index;
  out->pts = ctx->info.fps_num > 0 && ctx->info.fps_den > 0
                 ? double(b->index) * ctx->info.fps_den / ctx->info.fps_num
                 : 0.0;
  out->level = b->timing.level;
  out->ref = b.release();
  return DYDCA_OK;
}

void dydca_picture_unref(DydcaPicture* pic) {
  if (!pic || !pic->ref) return;
  std::unique_ptr<PictureBuffer> b(static_cast<PictureBuffer*>(pic->ref));
  std::memset(static_cast<void*>(pic), 0, sizeof *pic);
  std::shared_ptr<PicturePool> pool = b->pool;  // keeps the pool alive through put()
  pool->put(std::move(b));
}

int dydca_set_level(DydcaContext* ctx, int level) {
  if (!ctx || level < -1 || (level >= 0 && level >= ctx->info.levels))
    return DYDCA_ERR_INVALID_ARG;
  if (level < 0 && !ctx->levels->qos()) return DYDCA_ERR_UNSUPPORTED;
  ctx->levels->set(level);
  return DYDCA_OK;
}

int dydca_report_late(DydcaContext* ctx, int64_t frame) {
  if (!ctx || frame < 0) return DYDCA_ERR_INVALID_ARG;
  const std::shared_ptr<QosLevelPolicy>& qos = ctx->levels->qos();
  if (!qos) return DYDCA_OK;
  qos->note_late();
  if (log_level() >= LogLevel::kDebug)
    log_debug(ctx->name + ": picture " + std::to_string(frame) + " shown late");
  return DYDCA_OK;
}

int dydca_get_stats(const DydcaContext* ctx, DydcaStats* out) {
  if (!ctx) return DYDCA_ERR_INVALID_ARG;
  DydcaStats s;
  {
    std::lock_guard lock(ctx->mu);
    s = ctx->stats;  // the counters are filled when decode_file returns
  }
  s.struct_size = sizeof s;
  return copy_sized(s, out);
}

int dydca_get_picture_stats(const DydcaPicture* pic, DydcaPictureStats* out) {
  if (!pic || !pic->ref) return DYDCA_ERR_INVALID_ARG;
  const FrameTiming& t = static_cast<const PictureBuffer*>(pic->ref)->timing;
  DydcaPictureStats s{};
  s.struct_size = sizeof s;
  s.decode_ms = t.decode_ms;
  s.chroma_ms = t.chroma_ms;
  s.sr_ms = t.sr_ms;
  s.segment_switch = t.segment_switch ? 1 : 0;
  return copy_sized(s, out);
}

int dydca_write_qos_trace(DydcaContext* ctx, const char* path) {
  if (!ctx || !path) return DYDCA_ERR_INVALID_ARG;
  if (!ctx->levels->qos()) return DYDCA_ERR_UNSUPPORTED;
  Status s;
  try {
    s = write_qos_trace_csv(path, ctx->levels->trace());
  } catch (const std::bad_alloc&) {
    s = Status::error("out of memory", StatusCode::kOutOfMemory);
  }
  if (s) return DYDCA_OK;
  ctx->last_error = s.message();
  return s.code() == StatusCode::kOutOfMemory ? DYDCA_ERR_NOMEM : DYDCA_ERR_IO;
}

const char* dydca_last_error(const DydcaContext* ctx) {
  return ctx ? ctx->last_error.c_str() : t_open_error.c_str();
}

void dydca_close(DydcaContext** ctx) {
  if (!ctx || !*ctx) return;
  delete *ctx;  // ~DydcaContext cancels and joins the worker
  *ctx = nullptr;
}

}  // extern "C"
