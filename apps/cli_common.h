// Shared pieces of the dydca command line: global flags, the progress line,
// error reporting. Every subcommand registers itself through a Subcommand.
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <functional>
#include <string>

#include "dydca/log.h"
#include "dydca/status.h"

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
