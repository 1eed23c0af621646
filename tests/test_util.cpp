#include "test_util.h"

#include "dydca/synthetic.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <random>
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

namespace dydca::test {
namespace {

// Uniform in [-scale, scale]; `center` is added to the centre tap of every
// (out, in) kernel of a 4-D weight.
Tensor random_tensor(const std::string& name, std::vector<int> shape, std::mt19937& rng,
                     float scale, float center = 0.f) {
  Tensor t;
  t.name = name;
  t.shape = shape;
  size_t n = 1;
  for (int d : shape) n *= size_t(d);
  std::uniform_real_distribution<float> u(-scale, scale);
  t.data.resize(n);
  for (auto& v : t.data) v = u(rng);
  if (center != 0.f && shape.size() == 4) {
    const int k = shape[2];
    for (size_t oi = 0; oi < n / size_t(k * k); ++oi) t.data[oi * k * k + (k * k) / 2] += center;
  }
  return t;
}

}  // namespace

Model random_model(int scale, int C, int E, int N, std::vector<PathSpec> paths, uint32_t seed) {
  std::mt19937 rng(seed);
  Model m;
  m.arch.scale = scale;
  m.arch.channels = C;
  m.arch.inner = E;
  m.arch.blocks = N;
  m.arch.paths = std::move(paths);
  const int s2 = scale * scale;
  auto he = [](int fan_in) { return std::sqrt(3.0f / float(fan_in)); };
  m.tensors.push_back(random_tensor("head.weight", {C, 1, 3, 3}, rng, he(9)));
  m.tensors.push_back(random_tensor("head.bias", {C}, rng, 0.1f));
  for (int i = 0; i < N; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    m.tensors.push_back(random_tensor(p + "conv1.weight", {E, C, 3, 3}, rng, he(9 * C)));
    m.tensors.push_back(random_tensor(p + "conv1.bias", {E}, rng, 0.1f));
    m.tensors.push_back(random_tensor(p + "conv2.weight", {C, E, 3, 3}, rng, 0.3f * he(9 * E)));
    m.tensors.push_back(random_tensor(p + "conv2.bias", {C}, rng, 0.05f));
  }
  m.tensors.push_back(random_tensor("tail.weight", {s2, C, 3, 3}, rng, 0.05f * he(9 * C)));
  m.tensors.push_back(random_tensor("tail.bias", {s2}, rng, 0.01f));
  m.tensors.push_back(random_tensor("skip.weight", {s2, 1, 5, 5}, rng, 0.02f, 0.9f));
  m.tensors.push_back(random_tensor("skip.bias", {s2}, rng, 0.02f));
  return m;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

Model perturbed_model(const Model& m, uint32_t seed, float rel) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, 1);
  Model out = m;
  for (Tensor& t : out.tensors) {
    double ss = 0;
    for (float v : t.data) ss += double(v) * v;
    const float sigma = float(std::sqrt(ss / double(t.data.size()))) + 1e-4f;
    for (float& v : t.data) v += rel * sigma * n(rng);
  }
  return out;
}

RoutingMap random_routing(int tile, int lr_w, int lr_h, int frames,
                          std::vector<std::vector<uint8_t>> table, uint32_t seed) {
  RoutingMap r;
  r.tile_size = tile;
  r.lr_width = lr_w;
  r.lr_height = lr_h;
  r.frames = frames;
  r.num_chunks = int(table.at(0).size());
  r.chunk_path = std::move(table);
  std::mt19937 rng(seed);
  r.chunk_ids.resize(size_t(frames) * size_t(r.tiles_per_frame()));
  for (auto& c : r.chunk_ids) c = uint8_t(rng() % unsigned(r.num_chunks));
  return r;
}

std::vector<Frame> synthetic_lr(int hr_w, int hr_h, int frames, int scale, uint32_t seed) {
  std::vector<Frame> lr;
  for (const Frame& f : synthetic_clip(hr_w, hr_h, frames, seed)) {
    auto d = downscale(pad_to_multiple(f, 2 * scale), scale, ScaleFilter::kArea);
    if (!d) throw std::runtime_error(d.error_message());
    lr.push_back(std::move(*d));
  }
  return lr;
}

}  // namespace dydca::test
