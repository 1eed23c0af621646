// Library logging: one process-wide callback with levels. FFmpeg's av_log is
// bridged into it (see install_ffmpeg_log_bridge). Progress of long work is a
// separate callback passed to the work itself (see ProgressFn).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace dydca {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

using LogCallback = std::function<void(LogLevel, std::string_view)>;

// Replaces the callback (default: warnings and errors to stderr). Not
// thread-safe against concurrent logging; set it once at start-up.
void set_log_callback(LogCallback cb);
// Messages above this level are dropped before formatting.
void set_log_level(LogLevel max_level);
LogLevel log_level();
void log(LogLevel level, std::string_view message);
inline void log_error(std::string_view m) { log(LogLevel::kError, m); }
inline void log_warning(std::string_view m) { log(LogLevel::kWarning, m); }
inline void log_info(std::string_view m) { log(LogLevel::kInfo, m); }
inline void log_debug(std::string_view m) { log(LogLevel::kDebug, m); }

// Routes av_log into log() (FFmpeg's own levels mapped onto ours).
void install_ffmpeg_log_bridge();

// Progress of a long job: done units out of total (total may be 0 when
// unknown), with a short stage name. Returning false asks the job to stop.
struct Progress {
  Progress() = default;
  Progress(std::string_view stage_, int64_t done_, int64_t total_, std::string_view detail_ = {})
      : stage(stage_), done(done_), total(total_), detail(detail_) {}
  std::string_view stage;
  int64_t done = 0;
  int64_t total = 0;
  std::string_view detail;  // optional short status, e.g. "loss 0.012, held-out 31.2 dB"
};
using ProgressFn = std::function<bool(const Progress&)>;

}  // namespace dydca
