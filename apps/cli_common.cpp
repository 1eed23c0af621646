#include "cli_common.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace dydca::cli {

GlobalOptions& globals() {
  static GlobalOptions g;
  return g;
}

namespace {
std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // second Ctrl-C: leave now
}
}  // namespace

StopOnSignal::StopOnSignal() {
  g_stop = false;
  old_int_ = std::signal(SIGINT, on_stop_signal);
  old_term_ = std::signal(SIGTERM, on_stop_signal);
}

StopOnSignal::~StopOnSignal() {
  std::signal(SIGINT, old_int_);
  std::signal(SIGTERM, old_term_);
}

const std::atomic<bool>& StopOnSignal::flag() { return g_stop; }

int fail(const Status& s) {
  std::fprintf(stderr, "dydca: error: %s\n", s.message().c_str());
  return 1;
}

LogLevel cli_log_level() {
  const GlobalOptions& g = globals();
  if (g.quiet) return LogLevel::kError;
  return g.verbosity >= 2 ? LogLevel::kDebug
         : g.verbosity == 1 ? LogLevel::kInfo
                            : LogLevel::kWarning;
}

void print_log(LogLevel level, std::string_view message) {
  if (level > cli_log_level()) return;
  static const char* names[] = {"error", "warning", "info", "debug"};
  std::fprintf(stderr, "dydca %s: %.*s\n", names[std::clamp(int(level), 0, 3)],
               int(message.size()), message.data());
}

void print_library_log(void*, int level, const char* message) {
  print_log(LogLevel(std::clamp(level, 0, 3)), message ? message : "");
}

#ifdef DYDCA_HAVE_DECODER
Expected<DydcaSettings> library_settings(const LibraryFlags& f) {
  DydcaSettings s;
  dydca_default_settings(&s);
  s.threads = globals().threads;
  s.max_frames = f.max_frames;
  s.plain_scale = f.scale;
  s.log_level = int(cli_log_level());
  s.log_callback = &print_library_log;
  if (f.level == "auto") {
    s.level = -1;
  } else {
    size_t used = 0;
    try {
      s.level = std::stoi(f.level, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != f.level.size() || s.level < 0)
      return Status::error("--level must be a number >= 0 or auto, not '" + f.level + "'");
  }
  static const std::pair<const char*, int> simd[] = {{"auto", DYDCA_SIMD_AUTO},
                                                     {"none", DYDCA_SIMD_NONE},
                                                     {"avx2", DYDCA_SIMD_AVX2},
                                                     {"avx512", DYDCA_SIMD_AVX512}};
  static const std::pair<const char*, int> precision[] = {{"auto", DYDCA_PRECISION_AUTO},
                                                          {"fp32", DYDCA_PRECISION_FP32},
                                                          {"int8", DYDCA_PRECISION_INT8}};
  auto pick = [](const auto& table, const std::string& name, int* out) {
    for (const auto& [n, v] : table)
      if (name == n) return *out = v, true;
    return false;
  };
  if (!pick(simd, f.simd, &s.simd))
    return Status::error("--simd must be auto, none, avx2 or avx512, not '" + f.simd + "'");
  if (!pick(precision, f.precision, &s.precision))
    return Status::error("--precision must be auto, fp32 or int8, not '" + f.precision + "'");
  return s;
}

Expected<OpenedInput> open_library(const std::string& input, const DydcaSettings& settings) {
  DydcaContext* ctx = nullptr;
  if (dydca_open(&ctx, input.c_str(), &settings) != DYDCA_OK)
    return Status::error(dydca_last_error(nullptr));
  OpenedInput in;
  in.ctx.reset(ctx);
  (void)dydca_get_info(ctx, &in.info);
  in.stats = library_struct<DydcaStats>();
  (void)dydca_get_stats(ctx, &in.stats);
  return in;
}

Status library_error(const DydcaContext* ctx, int code) {
  const std::string m = dydca_last_error(ctx);
  return Status::error(m.empty() ? dydca_error_string(code) : m);
}

void copy_picture(const DydcaPicture& pic, Frame& out) {
  if (out.width != pic.width || out.height != pic.height) out = Frame::blank(pic.width, pic.height);
  for (int p = 0; p < 3; ++p) {
    const size_t w = size_t(out.plane_width(p));
    for (int r = 0; r < out.plane_height(p); ++r)
      std::memcpy(out.plane(p) + size_t(r) * w, pic.planes[p] + ptrdiff_t(r) * pic.stride[p], w);
  }
  out.pts = pic.frame;
}
#endif

ProgressFn make_progress() {
  if (globals().quiet || !isatty(STDERR_FILENO)) return {};
  struct State {
    std::string stage;
    std::chrono::steady_clock::time_point start, last;
  };
  auto st = std::make_shared<State>();
  return [st](const Progress& p) {
    auto now = std::chrono::steady_clock::now();
    if (st->stage != p.stage) {
      if (!st->stage.empty()) std::fputc('\n', stderr);
      st->stage = std::string(p.stage);
      st->start = now;
      st->last = {};
    }
    bool done = p.total > 0 && p.done >= p.total;
    if (!done && now - st->last < std::chrono::milliseconds(200)) return true;
    st->last = now;
    double secs = std::chrono::duration<double>(now - st->start).count();
    double rate = secs > 0 ? p.done / secs : 0;
    if (p.total > 0) {
      double eta = rate > 0 ? (p.total - p.done) / rate : 0;
      std::fprintf(stderr, "\r%-14s %6lld/%-6lld %5.1f%%  %7.1f/s  ETA %4.0fs  %.*s   ",
                   st->stage.c_str(), (long long)p.done, (long long)p.total,
                   100.0 * p.done / p.total, rate, eta, int(p.detail.size()), p.detail.data());
    } else {
      std::fprintf(stderr, "\r%-14s %6lld  %7.1f/s   ", st->stage.c_str(), (long long)p.done, rate);
    }
    if (done) {
      std::fputc('\n', stderr);
      st->stage.clear();
    }
    std::fflush(stderr);
    return true;
  };
}

}  // namespace dydca::cli
