// The C API (dydca/dydca.h) over decode_file(): a worker thread runs the
// three-thread pipeline into a FrameSink that hands pictures to a bounded
// queue; dydca_get_picture() pops it. The level comes from a LevelPolicy the
// context owns, so dydca_set_level() works while decoding.
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
#include "upscale_stages.h"

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
  int level = 0;
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

// ---- level policy -------------------------------------------------------------------

// The level of every frame: fixed (>= 0) or the QoS controller's (-1), as
// dydca_set_level() last said. Records each frame's level for its picture.
class SwitchableLevelPolicy final : public LevelPolicy {
 public:
  SwitchableLevelPolicy(int level, std::shared_ptr<QosLevelPolicy> qos)
      : requested_(level), qos_(std::move(qos)) {}
  void set(int level) { requested_.store(level); }
  bool has_auto() const { return qos_ != nullptr; }

  int level_for_frame(const LevelContext& ctx) override {
    const int want = requested_.load();
    int level = 0;
    if (want < 0 && qos_) {
      // The controller learns from the previous frame only if it chose it.
      LevelContext c = ctx;
      if (!auto_last_) c.last = nullptr;
      level = qos_->level_for_frame(c);
      auto_last_ = true;
    } else {
      level = std::max(want, 0);
      auto_last_ = false;
    }
    level = std::clamp(level, 0, std::max(0, ctx.levels - 1));
    std::lock_guard lock(mu_);
    chosen_.push_back(level);
    return level;
  }
  // Level of the next frame out (frames reach the sink in the order they were
  // upscaled). Plain videos have no SR and no policy call: 0.
  int pop_level() {
    std::lock_guard lock(mu_);
    if (chosen_.empty()) return 0;
    const int l = chosen_.front();
    chosen_.pop_front();
    return l;
  }

 private:
  std::atomic<int> requested_;
  std::shared_ptr<QosLevelPolicy> qos_;
  bool auto_last_ = false;  // SR thread only
  std::mutex mu_;
  std::deque<int> chosen_;  // upscaled, not yet output: bounded by the pipeline's queues
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
  std::shared_ptr<SwitchableLevelPolicy> policy;
  std::shared_ptr<PicturePool> pool;
  std::string last_error;

  // Between the sink (output thread) and dydca_get_picture (caller).
  std::mutex mu;
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
  Status write(const Frame& frame) override {
    std::unique_ptr<PictureBuffer> b = c_.pool->get();
    b->frame.width = frame.width;
    b->frame.height = frame.height;
    b->frame.y.assign(frame.y.begin(), frame.y.end());  // reuses the buffer's capacity
    b->frame.u.assign(frame.u.begin(), frame.u.end());
    b->frame.v.assign(frame.v.begin(), frame.v.end());
    b->frame.pts = frame.pts;
    b->index = next_++;
    b->level = c_.policy->pop_level();
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
  if (in->struct_size < offsetof(DydcaSettings, reserved) || in->struct_size > sizeof *in)
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
  return Status::ok();
}

Precision to_precision(int p) {
  switch (p) {
    case DYDCA_PRECISION_FP32: return Precision::kFp32;
    case DYDCA_PRECISION_INT8: return Precision::kInt8;
    default: return Precision::kAuto;
  }
}

// The QoS controller for the file, as DecodeOptions::auto_level builds it
// (single-model dydca files; null otherwise). Calibrated when the context
// starts in auto; otherwise it learns each level's speed on the first frame
// that runs it, should dydca_set_level(-1) come.
Expected<std::shared_ptr<QosLevelPolicy>> make_qos(DydcaReader& reader,
                                                   const DecodeOptions& options,
                                                   bool calibrate) {
  if (!reader.has_dydca() || reader.model_count() != 1)
    return std::shared_ptr<QosLevelPolicy>();
  auto model = reader.segment_model(0);
  if (!model) return model.status();
  std::optional<RoutingMap> segment0;
  const RoutingMap* routing = nullptr;
  if (reader.format_version() == 1) {
    routing = reader.v1_routing() ? &*reader.v1_routing() : nullptr;
  } else {
    auto r = reader.segment_routing(0);
    if (!r) return r.status();
    segment0 = std::move(*r);
    routing = segment0 ? &*segment0 : nullptr;
  }
  const EncodedVideo& video = reader.video();
  auto qos = QosLevelPolicy::create(model->arch, routing, video.width, video.height,
                                    video.frame_rate, {});
  if (!qos) return qos.status();
  if (calibrate)
    DYDCA_TRY((*qos)->calibrate(*model, detail::sr_runtime_options(reader, options, routing)));
  return *qos;
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

  auto qos = make_qos(reader, opt, s.level < 0);
  if (!qos) return qos.status().with_context(c.name + ": QoS");
  if (s.level < 0 && !*qos)
    log_warning(c.name + ": level auto needs a single-model dydca file; using level 0");
  c.policy = std::make_shared<SwitchableLevelPolicy>(s.level, *qos);
  opt.policy = c.policy;
  c.info.auto_level = *qos ? 1 : 0;
  c.info.format_version = reader.format_version();
  c.info.segments = int(reader.segments().size());
  c.capacity = size_t(s.queue_depth);
  c.pool = std::make_shared<PicturePool>(size_t(s.queue_depth) + 2);
  opt.on_start = [&c](const DecodeStats& st) {
    std::lock_guard lock(c.mu);
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
    try {
      QueueSink sink(c);
      auto stats = decode_file(std::move(reader), c.name, opt, sink,
                               [&c](const Progress&) { return !c.cancel.load(); });
      result = stats.status();
    } catch (const std::bad_alloc&) {
      result = Status::error("out of memory", StatusCode::kOutOfMemory);
    } catch (const std::exception& e) {
      result = Status::error(std::string("internal: ") + e.what());
    }
    std::lock_guard lock(c.mu);
    c.done = true;
    c.result = std::move(result);
    c.cv.notify_all();
  });

  // Open returns once the pipeline runs (or failed to start): its set-up
  // errors (models, runtime, options) are open's.
  std::unique_lock lock(c.mu);
  c.cv.wait(lock, [&] { return c.started || c.done; });
  if (!c.started) return c.result;
  if (s.level >= c.info.levels)
    return Status::error("QoS level " + std::to_string(s.level) + " but " + c.name + " has " +
                             std::to_string(c.info.levels) + " level" +
                             (c.info.levels == 1 ? "" : "s"),
                         StatusCode::kInvalidArgument);
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
  out->level = b->level;
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
  if (level < 0 && !ctx->policy->has_auto()) return DYDCA_ERR_UNSUPPORTED;
  ctx->policy->set(level);
  return DYDCA_OK;
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
