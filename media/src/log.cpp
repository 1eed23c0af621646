#include "dydca/log.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <mutex>

extern "C" {
#include <libavutil/log.h>
}

namespace dydca {
namespace {

std::mutex g_mutex;
LogCallback g_callback;
std::atomic<int> g_level{static_cast<int>(LogLevel::kWarning)};

void default_sink(LogLevel level, std::string_view msg) {
  static const char* names[] = {"error", "warning", "info", "debug"};
  std::fprintf(stderr, "dydca %s: %.*s\n", names[static_cast<int>(level)],
               static_cast<int>(msg.size()), msg.data());
}

void ffmpeg_callback(void* avcl, int level, const char* fmt, va_list vl) {
  LogLevel ours;
  if (level <= AV_LOG_ERROR) ours = LogLevel::kError;
  else if (level <= AV_LOG_WARNING) ours = LogLevel::kWarning;
  else if (level <= AV_LOG_INFO) ours = LogLevel::kInfo;
  else if (level <= AV_LOG_VERBOSE) ours = LogLevel::kDebug;
  else return;
  // FFmpeg errors are usually also returned as codes that we report; show
  // them as warnings so that a concealed corrupt packet is not "an error".
  if (ours == LogLevel::kError) ours = LogLevel::kWarning;
  if (static_cast<int>(ours) > g_level.load()) return;
  char line[1024];
  int print_prefix = 1;
  av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
  std::string_view msg(line);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.remove_suffix(1);
  if (msg.empty()) return;
  log(ours, std::string("ffmpeg: ") + std::string(msg));
}

}  // namespace

void set_log_callback(LogCallback cb) {
  std::lock_guard lock(g_mutex);
  g_callback = std::move(cb);
}

void set_log_level(LogLevel max_level) { g_level = static_cast<int>(max_level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log(LogLevel level, std::string_view message) {
  if (static_cast<int>(level) > g_level.load()) return;
  std::lock_guard lock(g_mutex);
  if (g_callback) g_callback(level, message);
  else default_sink(level, message);
}

void install_ffmpeg_log_bridge() {
  av_log_set_level(AV_LOG_VERBOSE);
  av_log_set_callback(&ffmpeg_callback);
}

}  // namespace dydca
