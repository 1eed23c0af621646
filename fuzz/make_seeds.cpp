// Writes seed corpora for the fuzzers into DIR/{model,routing,demux}: small
// valid blobs (as stored, first byte 0) and their payloads (first byte 1), a
// small dydca .mkv and a plain one.
#include <filesystem>
#include <fstream>
#include <random>

#include "dydca/container.h"
#include "dydca/synthetic.h"
#include "envelope.h"

using namespace dydca;

namespace {

Model small_model(int scale, int channels, int inner, int blocks) {
  Model m;
  m.arch.scale = scale;
  m.arch.channels = channels;
  m.arch.inner = inner;
  m.arch.blocks = blocks;
  m.arch.paths = {{0, 0}, {blocks, channels}};
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0, 0.1f);
  auto add = [&](std::string name, std::vector<int> shape) {
    Tensor t{std::move(name), shape, {}};
    size_t count = 1;
    for (int d : shape) count *= size_t(d);
    for (size_t i = 0; i < count; ++i) t.data.push_back(n(rng));
    m.tensors.push_back(std::move(t));
  };
  const int s2 = scale * scale;
  add("head.weight", {channels, 1, 3, 3});
  add("head.bias", {channels});
  for (int i = 0; i < blocks; ++i) {
    const std::string b = "blocks." + std::to_string(i);
    add(b + ".conv1.weight", {inner, channels, 3, 3});
    add(b + ".conv1.bias", {inner});
    add(b + ".conv2.weight", {channels, inner, 3, 3});
    add(b + ".conv2.bias", {channels});
  }
  add("tail.weight", {s2, channels, 3, 3});
  add("tail.bias", {s2});
  add("skip.weight", {s2, 1, 5, 5});
  add("skip.bias", {s2});
  return m;
}

RoutingMap small_routing(int w, int h, int frames, int chunks) {
  RoutingMap r;
  r.tile_size = 16;
  r.lr_width = w;
  r.lr_height = h;
  r.frames = frames;
  r.num_chunks = chunks;
  r.chunk_path = {std::vector<uint8_t>(size_t(chunks), 1), std::vector<uint8_t>(size_t(chunks), 0)};
  std::mt19937 rng(2);
  for (int i = 0; i < frames * r.tiles_per_frame(); ++i)
    r.chunk_ids.push_back(rng() % 5 == 0 ? uint8_t(rng() % uint32_t(chunks))
                                         : uint8_t(i % r.tiles_per_frame() % chunks));
  for (int f = 1; f < frames; f += 2)  // some frames equal to the previous one
    std::copy_n(r.chunk_ids.begin() + (f - 1) * r.tiles_per_frame(), r.tiles_per_frame(),
                r.chunk_ids.begin() + f * r.tiles_per_frame());
  return r;
}

void write(const std::filesystem::path& p, uint8_t mode, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.put(char(mode));
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void write_both(const std::filesystem::path& dir, const std::string& name,
                const blob::EnvelopeKind& kind, const std::vector<uint8_t>& sealed) {
  write(dir / (name + ".blob"), 0, sealed);
  auto opened = blob::open_envelope(kind, sealed.data(), sealed.size());
  if (opened) write(dir / (name + ".payload"), 1, opened->payload);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds DIR\n");
    return 2;
  }
  namespace fs = std::filesystem;
  const fs::path dir = argv[1];
  for (const char* sub : {"model", "routing", "demux"}) fs::create_directories(dir / sub);
  const blob::EnvelopeKind model_kind{"DYDCAMDL", "model blob", kModelBlobVersion,
                                      kMaxModelPayloadBytes};
  const blob::EnvelopeKind routing_kind{"DYDCARTG", "routing blob", kRoutingBlobVersion,
                                        kMaxRoutingPayloadBytes};
  const Model model = small_model(2, 4, 4, 1);
  for (auto f : {WeightFormat::kFp32, WeightFormat::kFp16, WeightFormat::kInt8})
    write_both(dir / "model", std::string("m_") + weight_format_name(f), model_kind,
               *serialize_model(model, {f, 3}));
  write_both(dir / "model", "m_x3", model_kind, *serialize_model(small_model(3, 2, 4, 2), {}));
  write_both(dir / "routing", "r_small", routing_kind,
             *serialize_routing(small_routing(64, 48, 6, 3)));
  write_both(dir / "routing", "r_wide", routing_kind,
             *serialize_routing(small_routing(200, 40, 3, 9)));

  X264Config cfg;
  cfg.preset = "ultrafast";
  cfg.crf = 40;
  auto video = encode_h264(synthetic_clip(32, 32, 3), {25, 1}, cfg);
  if (!video) return 1;
  DydcaPayload payload;
  payload.models.push_back(small_model(2, 4, 4, 1));
  payload.routing = small_routing(32, 32, 3, 2);
  DydcaWriteParams params;
  params.hr_width = 64;
  params.hr_height = 62;
  params.model_blob.weights = WeightFormat::kInt8;
  Status s = write_dydca_file((dir / "demux" / "dydca.mkv").string(), *video, payload, params);
  if (!s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  s = write_video_file((dir / "demux" / "plain.mkv").string(), *video);
  return s ? 0 : 1;
}
