#include "cli_common.h"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>

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
