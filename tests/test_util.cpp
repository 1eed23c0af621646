#include "test_util.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace fs = std::filesystem;

namespace dydca::test {

std::string temp_dir(const std::string& name) {
  fs::path p = fs::path(DYDCA_BINARY_DIR) / "test-tmp" / name;
  std::error_code ec;
  fs::remove_all(p, ec);
  fs::create_directories(p);
  return p.string();
}

std::string sample(const std::string& name) {
  const char* env = std::getenv("DYDCA_SAMPLES_DIR");
  fs::path dir = env ? fs::path(env) : fs::path(DYDCA_SOURCE_DIR) / "samples" / "cache";
  fs::path p = dir / name;
  return fs::exists(p) ? p.string() : std::string();
}

int run(const std::string& cmd, std::string* out) {
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    if (out) out->append(buf, n);
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void write_y4m(const std::string& path, const std::vector<Frame>& frames, Rational fps) {
  auto w = Y4mWriter::open(path, frames.at(0).width, frames.at(0).height, fps);
  if (!w) throw std::runtime_error(w.error_message());
  for (const auto& f : frames)
    if (!w->write(f)) throw std::runtime_error("y4m write");
  if (!w->close()) throw std::runtime_error("y4m close");
}

}  // namespace dydca::test

namespace {
// FFmpeg/x264 chatter goes through dydca's logger (warnings and errors only).
const int g_quiet_ffmpeg = (dydca::install_ffmpeg_log_bridge(), 0);
}  // namespace
