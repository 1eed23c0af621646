// Shared pieces of the dydca command line: global flags, the progress line,
// error reporting. Every subcommand registers itself through a Subcommand.
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "dydca/log.h"
#include "dydca/media.h"
#include "dydca/status.h"
#ifdef DYDCA_HAVE_DECODER
#include "dydca/dydca.h"
#endif

namespace dydca::cli {

struct GlobalOptions {
  int verbosity = 0;  // -v increments, -q sets -1
  bool quiet = false;
  int threads = 2;
};
GlobalOptions& globals();

// Progress drawn on stderr when it is a terminal: stage, n/total, fps, ETA.
ProgressFn make_progress();
// Prints "dydca: error: <message>" and returns the exit code 1.
int fail(const Status& s);

// "dydca <level>: <message>" on stderr when level is within -q / -v (the
// format of the library's default log). The tools over libdydca print their
// own lines and the library's (print_library_log as the settings'
// log_callback; LogLevel's numbers are DYDCA_LOG_*) through it.
LogLevel cli_log_level();
void print_log(LogLevel level, std::string_view message);
void print_library_log(void* opaque, int level, const char* message);

// Ctrl-C / SIGTERM while it lives: the first signal sets the process-wide
// stop flag (long work polls it and stops cleanly), a second one exits at
// once with 130. The previous handlers come back on destruction.
class StopOnSignal {
 public:
  StopOnSignal();
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;
  static const std::atomic<bool>& flag();
  static bool stopped() { return flag().load(); }

 private:
  void (*old_int_)(int);
  void (*old_term_)(int);
};

#ifdef DYDCA_HAVE_DECODER
// ---- decode and play: thin tools over libdydca (dydca/dydca.h) ----------------

struct ContextCloser {
  void operator()(DydcaContext* c) const { dydca_close(&c); }
};
using Context = std::unique_ptr<DydcaContext, ContextCloser>;

// The decoding flags both tools have.
struct LibraryFlags {
  std::string level;      // "auto" or a number >= 0
  std::string simd;       // auto, none, avx2, avx512
  std::string precision;  // auto, fp32, int8
  int64_t max_frames = 0;
  int scale = 2;          // plain videos
};
// The settings for them, with --threads and the log of -q / -v.
Expected<DydcaSettings> library_settings(const LibraryFlags& flags);
// An open context with what is known from dydca_open on.
struct OpenedInput {
  Context ctx;
  DydcaInfo info{};
  DydcaStats stats{};  // the set-up part (has_audio, auto_level, calibration)
};
// dydca_open, dydca_get_info, dydca_get_stats; the error is the library's line.
Expected<OpenedInput> open_library(const std::string& input, const DydcaSettings& settings);
// The message of the context's failed call (dydca_last_error), or the code's name.
Status library_error(const DydcaContext* ctx, int code);
// The picture's planes into `out` (tightly packed; allocated when the size changes).
void copy_picture(const DydcaPicture& pic, Frame& out);
// A versioned struct of the library, zeroed with its struct_size set.
template <class T>
T library_struct() {
  T t{};
  t.struct_size = sizeof t;
  return t;
}
#endif

// A subcommand adds itself to the app and returns the function that runs it.
using Runner = std::function<int()>;
struct Subcommand {
  CLI::App* app;
  Runner run;
};

Subcommand add_probe(CLI::App& app);
Subcommand add_compare(CLI::App& app);
Subcommand add_baseline(CLI::App& app);
Subcommand add_info(CLI::App& app);
Subcommand add_chunks(CLI::App& app);
#ifdef DYDCA_HAVE_DECODER
Subcommand add_decode(CLI::App& app);
#endif
#ifdef DYDCA_HAVE_ENCODER
Subcommand add_encode(CLI::App& app);
Subcommand add_bench(CLI::App& app);
#endif
#ifdef DYDCA_HAVE_PLAY
Subcommand add_play(CLI::App& app);
#endif

}  // namespace dydca::cli
