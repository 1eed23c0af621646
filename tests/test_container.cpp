// Container: model blob and routing blob round trips and error bounds, the
// dydca Matroska file (write, read back, ffprobe), and damaged inputs: each
// gives one clear error, never a crash or a huge allocation.
#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "../container/src/byte_io.h"  // white-box: craft blobs with absurd fields
#include "../container/src/envelope.h"
#include "../container/src/half.h"
#include "dydca/container.h"
#include "dydca/synthetic.h"
#include "test_util.h"

using namespace dydca;
namespace fs = std::filesystem;

namespace {

const blob::EnvelopeKind kModelKind{"DYDCAMDL", "model blob", kModelBlobVersion,
                                    kMaxModelPayloadBytes};
const blob::EnvelopeKind kRoutingKind{"DYDCARTG", "routing blob", kRoutingBlobVersion,
                                      kMaxRoutingPayloadBytes};

ModelArch default_arch(int scale = 2) {
  ModelArch a;
  a.scale = scale;
  a.channels = 32;
  a.inner = 32;
  a.blocks = 4;
  a.paths = {{0, 0}, {1, 16}, {2, 24}, {4, 32}};
  return a;
}

// Weights like a trained net's: mostly small, a few larger, per-layer spread.
Model make_model(const ModelArch& a, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Model m;
  m.arch = a;
  auto add = [&](const std::string& name, std::vector<int> shape, float stddev) {
    Tensor t;
    t.name = name;
    t.shape = std::move(shape);
    int64_t n = 1;
    for (int d : t.shape) n *= d;
    t.data.resize(size_t(n));
    for (float& v : t.data) v = stddev * normal(rng);
    m.tensors.push_back(std::move(t));
  };
  const int C = a.channels, E = a.inner, s2 = a.scale * a.scale;
  add("head.weight", {C, 1, 3, 3}, 0.3f);
  add("head.bias", {C}, 0.01f);
  for (int i = 0; i < a.blocks; ++i) {
    const std::string b = "blocks." + std::to_string(i);
    add(b + ".conv1.weight", {E, C, 3, 3}, 0.06f);
    add(b + ".conv1.bias", {E}, 0.01f);
    add(b + ".conv2.weight", {C, E, 3, 3}, 0.03f);
    add(b + ".conv2.bias", {C}, 0.01f);
  }
  add("tail.weight", {s2, C, 3, 3}, 0.05f);
  add("tail.bias", {s2}, 0.01f);
  add("skip.weight", {s2, 1, 5, 5}, 0.1f);
  add("skip.bias", {s2}, 0.01f);
  return m;
}

RoutingMap make_routing(int tile, int lr_w, int lr_h, int frames, int chunks, uint32_t seed,
                        double change_rate = 0.05) {
  RoutingMap r;
  r.tile_size = tile;
  r.lr_width = lr_w;
  r.lr_height = lr_h;
  r.frames = frames;
  r.num_chunks = chunks;
  r.chunk_path = {{}, {}, {}};
  for (int c = 0; c < chunks; ++c) {
    r.chunk_path[0].push_back(uint8_t(1 + c % 3));
    r.chunk_path[1].push_back(uint8_t(c % 3));
    r.chunk_path[2].push_back(0);
  }
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  const size_t tiles = size_t(r.tiles_per_frame());
  r.chunk_ids.resize(tiles * size_t(frames));
  for (int f = 0; f < frames; ++f)
    for (size_t i = 0; i < tiles; ++i) {
      uint8_t& id = r.chunk_ids[size_t(f) * tiles + i];
      if (f > 0 && u(rng) >= change_rate)
        id = r.chunk_ids[size_t(f - 1) * tiles + i];
      else
        id = uint8_t(rng() % uint32_t(chunks));
    }
  return r;
}

void check_same_model(const Model& a, const Model& b) {
  CHECK(a.arch.scale == b.arch.scale);
  CHECK(a.arch.channels == b.arch.channels);
  CHECK(a.arch.inner == b.arch.inner);
  CHECK(a.arch.blocks == b.arch.blocks);
  CHECK(a.arch.paths == b.arch.paths);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    CHECK(a.tensors[i].name == b.tensors[i].name);
    CHECK(a.tensors[i].shape == b.tensors[i].shape);
    CHECK(a.tensors[i].data == b.tensors[i].data);
  }
}

void check_same_routing(const RoutingMap& a, const RoutingMap& b) {
  CHECK(a.tile_size == b.tile_size);
  CHECK(a.lr_width == b.lr_width);
  CHECK(a.lr_height == b.lr_height);
  CHECK(a.frames == b.frames);
  CHECK(a.num_chunks == b.num_chunks);
  CHECK(a.chunk_path == b.chunk_path);
  CHECK(a.chunk_ids == b.chunk_ids);
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A sealed envelope around an arbitrary payload (valid CRC, zstd, sizes).
std::vector<uint8_t> seal(const blob::EnvelopeKind& kind, const blob::ByteWriter& payload_writer) {
  blob::ByteWriter copy = payload_writer;
  auto sealed = blob::seal_envelope(kind, copy.buffer(), 3);
  REQUIRE(sealed);
  return *sealed;
}

void fix_crc(std::vector<uint8_t>& b) {
  const size_t at = b.size() - 4;
  const uint32_t crc = uint32_t(crc32(crc32(0L, Z_NULL, 0), b.data(), uInt(at)));
  for (int i = 0; i < 4; ++i) b[at + size_t(i)] = uint8_t(crc >> (8 * i));
}

using test::read_bytes;
using test::write_bytes;

EncodedVideo small_video(int width, int height, int frames) {
  X264Config cfg;
  cfg.preset = "ultrafast";
  cfg.crf = 30;
  auto enc = encode_h264(synthetic_clip(width, height, frames), {25, 1}, cfg);
  REQUIRE(enc);
  return *enc;
}

}  // namespace

// ---- fp16 -------------------------------------------------------------------

TEST_CASE("fp16 conversion: exact on every half, round to nearest even, stated bound") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = blob::half_to_float(uint16_t(h));
    if (std::isnan(f)) continue;
    CHECK(blob::float_to_half(f) == uint16_t(h));
  }
  CHECK(blob::half_to_float(blob::float_to_half(1.0f)) == 1.0f);
  CHECK(blob::half_to_float(blob::float_to_half(65504.0f)) == 65504.0f);
  CHECK(blob::float_to_half(65520.0f) == 0x7c00);         // rounds to infinity
  CHECK(blob::float_to_half(1.0f + 0x1p-11f) == 0x3c00);  // tie -> even
  CHECK(blob::float_to_half(1.0f + 3 * 0x1p-11f) == 0x3c02);
  CHECK(blob::float_to_half(0x1p-25f) == 0);  // tie -> even (zero)
  CHECK(blob::float_to_half(0x1p-24f) == 1);  // smallest subnormal
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> ex(-30, 15);
  for (int i = 0; i < 200000; ++i) {
    const float x = std::ldexp(mant(rng), ex(rng));
    const float y = blob::half_to_float(blob::float_to_half(x));
    REQUIRE(std::fabs(x - y) <= std::max(std::fabs(x) * 0x1p-11f, 0x1p-25f));
  }
}

// ---- model blob ----------------------------------------------------------------

TEST_CASE("model blob: fp32 round trip is exact; fp16 and int8 stay within their bounds") {
  const Model m = make_model(default_arch(), 1);
  REQUIRE(validate_model(m));
  auto fp32 = serialize_model(m, {WeightFormat::kFp32, 19});
  auto fp16 = serialize_model(m, {WeightFormat::kFp16, 19});
  auto int8 = serialize_model(m, {WeightFormat::kInt8, 19});
  REQUIRE(fp32);
  REQUIRE(fp16);
  REQUIRE(int8);
  MESSAGE("model blob C32 E32 N4 x2, 4 paths: fp32 " << fp32->size() << " B, fp16 " << fp16->size()
                                                     << " B, int8 " << int8->size() << " B");
  CHECK(fp16->size() < fp32->size());
  CHECK(int8->size() < fp16->size());

  ModelBlobInfo info;
  auto back = parse_model(*fp32, &info);
  REQUIRE(back);
  check_same_model(m, *back);
  CHECK(info.version == 1);  // no int8 activation scales: written as version 1
  CHECK(info.weights == WeightFormat::kFp32);
  CHECK(info.blob_bytes == fp32->size());
  // Serialization is deterministic: same model, same bytes.
  CHECK(*serialize_model(*back, {WeightFormat::kFp32, 19}) == *fp32);

  auto h = parse_model(*fp16, &info);
  REQUIRE(h);
  CHECK(info.weights == WeightFormat::kFp16);
  auto q = parse_model(*int8, &info);
  REQUIRE(q);
  CHECK(info.weights == WeightFormat::kInt8);
  for (size_t t = 0; t < m.tensors.size(); ++t) {
    const Tensor& x = m.tensors[t];
    const Tensor& xh = h->tensors[t];
    const Tensor& xq = q->tensors[t];
    REQUIRE(xh.data.size() == x.data.size());
    REQUIRE(xq.data.size() == x.data.size());
    if (x.shape.size() == 1) {  // biases stay fp32
      CHECK(xh.data == x.data);
      CHECK(xq.data == x.data);
      continue;
    }
    for (size_t i = 0; i < x.data.size(); ++i)
      REQUIRE(std::fabs(xh.data[i] - x.data[i]) <=
              std::max(std::fabs(x.data[i]) * 0x1p-11f, 0x1p-25f));
    const size_t per_out = x.data.size() / size_t(x.shape[0]);
    for (size_t o = 0; o < size_t(x.shape[0]); ++o) {
      float max_abs = 0;
      for (size_t i = 0; i < per_out; ++i)
        max_abs = std::max(max_abs, std::fabs(x.data[o * per_out + i]));
      const float bound = max_abs / 127.0f * 0.5f * (1 + 1e-5f) + 1e-12f;
      for (size_t i = 0; i < per_out; ++i)
        REQUIRE(std::fabs(xq.data[o * per_out + i] - x.data[o * per_out + i]) <= bound);
    }
  }
}

TEST_CASE("model blob: other architectures, extra tensors, zero channels") {
  for (int s : {2, 3, 4}) {
    ModelArch a = default_arch(s);
    a.channels = 16;
    a.inner = 48;
    a.blocks = 2;
    a.paths = {{0, 0}, {0, 8}, {2, 16}};
    Model m = make_model(a, uint32_t(s));
    m.tensors.push_back({"extra.thing", {2, 3}, {1, 2, 3, 4, 5, 6}, {}, {}});
    std::fill(m.tensors[0].data.begin(), m.tensors[0].data.begin() + 9, 0.0f);  // a zero channel
    for (auto f : {WeightFormat::kFp32, WeightFormat::kFp16, WeightFormat::kInt8}) {
      auto b = serialize_model(m, {f, 3});
      REQUIRE(b);
      auto back = parse_model(*b);
      REQUIRE(back);
      CHECK(back->arch.paths == a.paths);
      CHECK(back->find("extra.thing"));
      for (int i = 0; i < 9; ++i) CHECK(back->tensors[0].data[size_t(i)] == 0.0f);
    }
  }
  CHECK(default_arch().macs_per_lr_pixel(0) == 100);
}

TEST_CASE("model validation refuses inconsistent models with one clear message") {
  const Model good = make_model(default_arch(), 2);
  auto expect_error = [](const Model& m, const char* part) {
    Status s = validate_model(m);
    CHECK_FALSE(s);
    CHECK_MESSAGE(contains(s.message(), part), s.message());
    CHECK_FALSE(serialize_model(m));
  };
  Model m = good;
  m.tensors.erase(m.tensors.begin() + 3);
  expect_error(m, "lacks tensor");
  m = good;
  m.tensors[0].shape = {32, 1, 9};
  expect_error(m, "shape");
  m = good;
  m.tensors[2].data[5] = std::nanf("");
  expect_error(m, "not finite");
  m = good;
  m.arch.scale = 5;
  expect_error(m, "scale");
  m = good;
  m.arch.paths.push_back({5, 32});
  expect_error(m, "exceeds");
  m = good;
  m.arch.paths = {{1, 0}};
  expect_error(m, "global path");
  m = good;
  m.arch.paths.clear();
  expect_error(m, "paths");
  m = good;
  m.tensors.push_back(m.tensors[0]);
  expect_error(m, "twice");
  m = good;
  m.tensors[1].name = "bad name";
  expect_error(m, "name");
  m = good;
  m.tensors[0].data[0] = 1e6f;
  CHECK_FALSE(serialize_model(m, {WeightFormat::kFp16, 3}));  // beyond fp16
  CHECK(serialize_model(m, {WeightFormat::kFp32, 3}));
}

// ---- routing blob ----------------------------------------------------------------

TEST_CASE("routing blob round trips exactly for many shapes of map") {
  struct Case {
    int tile, w, h, frames, chunks;
    double change;
  };
  for (const Case& c : std::vector<Case>{{32, 480, 270, 50, 8, 0.05},
                                         {32, 480, 270, 20, 8, 1.0},    // noise
                                         {32, 480, 270, 20, 8, 0.0},    // static
                                         {16, 33, 17, 5, 255, 0.3},     // odd sizes, many chunks
                                         {1024, 64, 64, 3, 1, 0.5},     // one tile
                                         {1, 40, 30, 4, 3, 0.2},        // 1-pixel tiles
                                         {32, 960, 540, 1, 4, 0.1}}) {  // one frame
    RoutingMap r = make_routing(c.tile, c.w, c.h, c.frames, c.chunks, 11, c.change);
    REQUIRE(validate_routing(r));
    auto b = serialize_routing(r);
    REQUIRE(b);
    auto back = parse_routing(*b);
    REQUIRE(back);
    check_same_routing(r, *back);
  }
  // Frame 0 all zeros (coded as "same as previous" of the implicit zero frame).
  RoutingMap z = make_routing(32, 128, 64, 3, 2, 1, 0.0);
  std::fill(z.chunk_ids.begin(), z.chunk_ids.end(), 0);
  auto b = serialize_routing(z);
  REQUIRE(b);
  auto back = parse_routing(*b);
  REQUIRE(back);
  check_same_routing(z, *back);
}

TEST_CASE("routing validation and model fit") {
  RoutingMap r = make_routing(32, 128, 64, 4, 4, 2);
  REQUIRE(validate_routing(r));
  RoutingMap bad = r;
  bad.chunk_ids[3] = 4;
  CHECK(contains(validate_routing(bad).message(), "chunk 4"));
  bad = r;
  bad.chunk_ids.pop_back();
  CHECK(contains(validate_routing(bad).message(), "tile entries"));
  bad = r;
  bad.chunk_path[1].pop_back();
  CHECK(contains(validate_routing(bad).message(), "level 1"));
  bad = r;
  bad.chunk_path.clear();
  CHECK_FALSE(validate_routing(bad));
  bad = r;
  bad.tile_size = 0;
  CHECK_FALSE(validate_routing(bad));
  CHECK_FALSE(serialize_routing(bad));
  ModelArch a = default_arch();
  CHECK(check_routing_fits_model(r, a));
  a.paths.resize(2);
  CHECK(contains(check_routing_fits_model(r, a).message(), "the model has 2 paths"));
}

// A routing map as chunking would make it on real content: per-tile detail
// (mean |Laplacian|) of 32x32 LR tiles of Big Buck Bunny at 960x540 LR, cut
// into K = 8 chunks at global quantiles; noise near the cuts makes tiles
// flicker between chunks from frame to frame, as clustering does.
TEST_CASE("routing blob size on a realistic map (bytes per second) [samples]") {
  const std::string path = test::sample("bbb1080.mp4");
  if (path.empty()) DYDCA_SKIP("bbb1080.mp4 not fetched (samples/fetch.sh)");
  auto reader = VideoReader::open(path, 2);
  REQUIRE(reader);
  const int scale = 2, lr_tile = 32, hr_tile = lr_tile * scale, max_frames = 240;
  const int lr_w = reader->info().width / scale, lr_h = reader->info().height / scale;
  const int tx = (lr_w + lr_tile - 1) / lr_tile, ty = (lr_h + lr_tile - 1) / lr_tile;
  std::vector<float> detail;
  Frame f;
  int frames = 0;
  while (frames < max_frames) {
    auto got = reader->read(f);
    REQUIRE(got);
    if (!*got) break;
    for (int y = 0; y < ty; ++y)
      for (int x = 0; x < tx; ++x) {
        double sum = 0;
        int n = 0;
        for (int j = y * hr_tile + 2; j < std::min((y + 1) * hr_tile, f.height - 2); j += 2)
          for (int i = x * hr_tile + 2; i < std::min((x + 1) * hr_tile, f.width - 2); i += 2) {
            const uint8_t* p = &f.y[size_t(j) * size_t(f.width) + size_t(i)];
            sum += std::abs(4 * p[0] - p[-2] - p[2] - p[-2 * f.width] - p[2 * f.width]);
            ++n;
          }
        detail.push_back(n ? float(sum / n) : 0.0f);
      }
    ++frames;
  }
  REQUIRE(frames > 24);
  const int K = 8;
  std::vector<float> sorted = detail;
  std::sort(sorted.begin(), sorted.end());
  RoutingMap r;
  r.tile_size = lr_tile;
  r.lr_width = lr_w;
  r.lr_height = lr_h;
  r.frames = frames;
  r.num_chunks = K;
  r.chunk_path = {{0, 1, 1, 2, 2, 3, 3, 3}, {0, 0, 1, 1, 2, 2, 2, 2}, {0, 0, 0, 0, 1, 1, 1, 1}};
  for (float d : detail) {
    int c = 0;
    while (c + 1 < K && d > sorted[sorted.size() * size_t(c + 1) / K]) ++c;
    r.chunk_ids.push_back(uint8_t(c));
  }
  auto b = serialize_routing(r);
  REQUIRE(b);
  auto back = parse_routing(*b);
  REQUIRE(back);
  check_same_routing(r, *back);
  const double seconds = frames / reader->info().frame_rate.to_double();
  const double bytes_per_s = double(b->size()) / seconds;
  MESSAGE("realistic routing map: " << frames << " frames of " << tx << "x" << ty
                                    << " tiles, K=8, 3 levels: " << b->size()
                                    << " B = " << bytes_per_s << " B/s = " << bytes_per_s * 8 / 1000
                                    << " kb/s (raw map " << r.chunk_ids.size() << " B)");
  CHECK(bytes_per_s * 8 / 1000 < 20.0);  // a small part of a 150..600 kb/s stream
}

// ---- damaged and hostile blobs --------------------------------------------------

TEST_CASE("damaged blobs: truncation, flipped bytes, wrong magic, future version") {
  const Model m = make_model(default_arch(), 4);
  auto model_blob = serialize_model(m, {WeightFormat::kInt8, 3});
  auto routing_blob = serialize_routing(make_routing(32, 256, 128, 30, 6, 5));
  REQUIRE(model_blob);
  REQUIRE(routing_blob);
  struct Kind {
    std::vector<uint8_t> blob;
    std::function<Status(const std::vector<uint8_t>&)> parse;
  };
  std::vector<Kind> kinds = {
      {*model_blob, [](const std::vector<uint8_t>& b) { return parse_model(b).status(); }},
      {*routing_blob, [](const std::vector<uint8_t>& b) { return parse_routing(b).status(); }}};
  for (const Kind& k : kinds) {
    REQUIRE(k.parse(k.blob));
    // Every truncation.
    for (size_t n = 0; n < k.blob.size(); ++n) {
      std::vector<uint8_t> cut(k.blob.begin(), k.blob.begin() + std::ptrdiff_t(n));
      Status s = k.parse(cut);
      REQUIRE_FALSE(s);
      CHECK(!s.message().empty());
      CHECK(s.message().find('\n') == std::string::npos);
    }
    // Every byte flipped: the header fields give their own error, anything
    // after the header is caught by the CRC.
    for (size_t i = 0; i < k.blob.size(); ++i) {
      std::vector<uint8_t> bad = k.blob;
      bad[i] ^= 0x20;
      Status s = k.parse(bad);
      REQUIRE_FALSE(s);
      if (i >= blob::kEnvelopeHeaderBytes)
        CHECK_MESSAGE(contains(s.message(), "checksum"), s.message());
    }
    // Trailing garbage.
    std::vector<uint8_t> longer = k.blob;
    longer.push_back(0);
    CHECK(contains(k.parse(longer).message(), "size mismatch"));
    // Wrong magic.
    std::vector<uint8_t> magic = k.blob;
    magic[0] = 'X';
    CHECK(contains(k.parse(magic).message(), "bad magic"));
    // Future version with a valid CRC.
    std::vector<uint8_t> future = k.blob;
    future[8] = 9;
    fix_crc(future);
    Status s = k.parse(future);
    CHECK(contains(s.message(), "version 9"));
    CHECK(contains(s.message(), "newer dydca"));
  }
  // The model blob in place of the routing blob and back.
  CHECK(contains(parse_routing(*model_blob).status().message(), "bad magic"));
  CHECK(contains(parse_model(*routing_blob).status().message(), "bad magic"));
}

TEST_CASE("absurd sizes are refused before allocating") {
  // Envelope announcing a 4 GiB payload (valid CRC).
  {
    std::vector<uint8_t> b = *serialize_model(make_model(default_arch(), 1));
    b[12] = b[13] = b[14] = b[15] = 0xff;
    fix_crc(b);
    CHECK(contains(parse_model(b).status().message(), "outside the limit"));
  }
  auto model_payload_head = [](blob::ByteWriter& w, int paths) {
    w.u16(2);
    w.u16(32);
    w.u16(32);
    w.u16(4);
    w.u8(uint8_t(paths));
    ModelArch a = default_arch();
    for (int p = 0; p < paths; ++p) {
      w.u16(uint16_t(a.paths[size_t(p % 4)].depth));
      w.u16(uint16_t(a.paths[size_t(p % 4)].width));
      w.u32(uint32_t(a.macs_per_lr_pixel(p % 4)));
    }
  };
  {  // 65535 tensors
    blob::ByteWriter w;
    model_payload_head(w, 4);
    w.u16(0xffff);
    CHECK(contains(parse_model(seal(kModelKind, w)).status().message(), "tensors"));
  }
  {  // 200 paths
    blob::ByteWriter w;
    model_payload_head(w, 0);
    std::vector<uint8_t> b = seal(kModelKind, w);
    blob::ByteWriter w2;
    w2.u16(2), w2.u16(32), w2.u16(32), w2.u16(4), w2.u8(200);
    CHECK(contains(parse_model(seal(kModelKind, w2)).status().message(), "paths"));
  }
  {  // a tensor of 2^24 x 2^24 elements, and one of 2^24 claiming data it lacks
    blob::ByteWriter w;
    model_payload_head(w, 4);
    w.u16(1);
    w.u8(1), w.bytes("x", 1), w.u8(2), w.u32(1u << 24), w.u32(1u << 24), w.u8(0);
    CHECK(contains(parse_model(seal(kModelKind, w)).status().message(), "too large"));
    blob::ByteWriter w2;
    model_payload_head(w2, 4);
    w2.u16(1);
    w2.u8(1), w2.bytes("x", 1), w2.u8(1), w2.u32(1u << 24), w2.u8(0);
    CHECK(contains(parse_model(seal(kModelKind, w2)).status().message(), "truncated"));
  }
  {  // wrong MACs
    blob::ByteWriter w;
    w.u16(2), w.u16(32), w.u16(32), w.u16(4), w.u8(1), w.u16(4), w.u16(32), w.u32(7);
    CHECK(contains(parse_model(seal(kModelKind, w)).status().message(), "MACs"));
  }
  auto routing_head = [](blob::ByteWriter& w, int tile, int lw, int lh, uint32_t frames, int chunks,
                         int levels) {
    w.u16(uint16_t(tile)), w.u16(uint16_t(lw)), w.u16(uint16_t(lh)), w.u32(frames);
    w.u8(uint8_t(chunks)), w.u8(uint8_t(levels));
    for (int i = 0; i < chunks * levels; ++i) w.u8(0);
  };
  // Frame sections after the head: sizes of counts and values, then modes,
  // counts, values, raw.
  auto sections = [](blob::ByteWriter& w, std::vector<uint8_t> modes, std::vector<uint8_t> counts,
                     std::vector<uint8_t> values, std::vector<uint8_t> raw) {
    w.u32(uint32_t(counts.size())), w.u32(uint32_t(values.size()));
    w.bytes(modes.data(), modes.size());
    w.bytes(counts.data(), counts.size());
    w.bytes(values.data(), values.size());
    w.bytes(raw.data(), raw.size());
  };
  auto routing_error = [&](int tile, int lw, int lh, uint32_t frames, int chunks, int levels,
                           std::vector<uint8_t> modes, std::vector<uint8_t> counts,
                           std::vector<uint8_t> values, std::vector<uint8_t> raw) {
    blob::ByteWriter w;
    routing_head(w, tile, lw, lh, frames, chunks, levels);
    sections(w, modes, counts, values, raw);
    return parse_routing(seal(kRoutingKind, w)).status().message();
  };
  // 4 billion frames; 1-pixel tiles on 8192x8192 for 4M frames (2^48 tiles).
  CHECK(contains(routing_error(32, 960, 540, 0xffffffffu, 2, 1, {}, {}, {}, {}), "frame count"));
  CHECK(contains(routing_error(1, 8192, 8192, 1u << 22, 2, 1, {}, {}, {}, {}), "tiles"));
  // A million frames announced, four present; section sizes beyond the payload.
  CHECK(contains(routing_error(32, 64, 64, 1u << 20, 2, 1, {0, 0, 0, 0}, {}, {}, {}), "truncated"));
  {
    blob::ByteWriter w;
    routing_head(w, 32, 64, 64, 1, 2, 1);
    w.u32(0xffffffffu), w.u32(0xffffffffu), w.u8(0);
    CHECK(contains(parse_routing(seal(kRoutingKind, w)).status().message(), "truncated"));
  }
  CHECK(routing_error(32, 64, 64, 1, 2, 1, {1}, {4}, {1}, {}).empty());  // valid: one run of 4
  CHECK(contains(routing_error(32, 64, 64, 1, 2, 1, {1}, {5}, {0}, {}), "run"));
  CHECK(contains(routing_error(32, 64, 64, 1, 2, 1, {1}, {2}, {0}, {}), "truncated"));
  CHECK(contains(routing_error(32, 64, 64, 1, 2, 1, {2}, {1, 4}, {1}, {}), "outside"));
  CHECK(contains(routing_error(32, 64, 64, 1, 2, 1, {2}, {1, 0}, {2}, {}), "out of range"));
  CHECK(contains(routing_error(32, 64, 64, 1, 2, 1, {2}, {9}, {}, {}), "more changes"));
  CHECK(contains(routing_error(32, 64, 64, 1, 2, 1, {9}, {}, {}, {}), "mode"));
  CHECK(contains(routing_error(32, 64, 64, 1, 2, 1, {3}, {}, {}, {0, 1, 7, 0}), "chunk 7"));
  CHECK(contains(routing_error(32, 64, 64, 1, 2, 1, {3}, {}, {}, {0, 1, 1}), "truncated"));
  CHECK(contains(routing_error(32, 64, 64, 1, 2, 1, {0}, {}, {}, {0}), "trailing"));
  CHECK(contains(
      routing_error(32, 64, 64, 1, 2, 1, {1}, {0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, {0}, {}),
      "truncated"));  // overlong varint
  CHECK_FALSE(parse_model(nullptr, 0));
  CHECK_FALSE(parse_routing(nullptr, 0));
}

// ---- Matroska ----------------------------------------------------------------------

TEST_CASE("dydca .mkv: write, read back identical blobs and packets, ffprobe sees the video") {
  const std::string dir = test::temp_dir("container_mkv");
  const int frames = 12;
  const EncodedVideo enc = small_video(128, 96, frames);
  DydcaPayload payload;
  payload.models.push_back(make_model(default_arch(), 7));
  payload.routing = make_routing(32, 128, 96, frames, 4, 3);
  DydcaWriteParams params;
  params.hr_width = 254;  // 256 - 2: padded to a multiple of 2 * scale by the encoder
  params.hr_height = 190;
  params.model_blob.weights = WeightFormat::kFp16;
  const std::string path = dir + "/out.mkv";
  REQUIRE(write_dydca_file(path, enc, payload, params));

  auto file = read_dydca_file(path);
  REQUIRE(file);
  CHECK(file->has_dydca);
  CHECK(contains(file->format, "matroska"));
  CHECK(file->hr_width == 254);
  CHECK(file->hr_height == 190);
  CHECK(file->scale == 2);
  CHECK_FALSE(file->writer_version.empty());
  REQUIRE(file->models.size() == 1);
  CHECK(file->model_blobs[0] == *serialize_model(payload.models[0], params.model_blob));
  CHECK(file->routing_blob == *serialize_routing(*payload.routing));
  CHECK(file->model_info[0].weights == WeightFormat::kFp16);
  REQUIRE(file->routing);
  check_same_routing(*payload.routing, *file->routing);
  CHECK(file->models[0].arch.paths == payload.models[0].arch.paths);
  CHECK(file->video.packets.size() == size_t(frames));
  CHECK(file->video.width == 128);

  // Same pictures as the encoder's stream (the first mux converts Annex B to
  // length-prefixed NAL units), then packets identical byte for byte.
  auto want = decode_h264(enc);
  auto got = decode_h264(file->video);
  REQUIRE(want);
  REQUIRE(got);
  REQUIRE(got->size() == want->size());
  for (size_t i = 0; i < want->size(); ++i) CHECK((*got)[i].same_pixels((*want)[i]));
  const std::string again = dir + "/again.mkv";
  REQUIRE(
      write_dydca_file_blobs(again, file->video, file->model_blobs, &file->routing_blob, params));
  auto file2 = read_dydca_file(again);
  REQUIRE(file2);
  REQUIRE(file2->video.packets.size() == file->video.packets.size());
  for (size_t i = 0; i < file->video.packets.size(); ++i) {
    CHECK(file2->video.packets[i].data == file->video.packets[i].data);
    CHECK(file2->video.packets[i].pts == file->video.packets[i].pts);
    CHECK(file2->video.packets[i].keyframe == file->video.packets[i].keyframe);
  }
  CHECK(file2->video.extradata == file->video.extradata);
  CHECK(file2->model_blobs == file->model_blobs);
  CHECK(file2->routing_blob == file->routing_blob);

  // Stock ffprobe: a valid file, an h264 video stream, two attachments, no complaint.
  std::string out, err;
  CHECK(test::run("ffprobe -v error -show_streams '" + path + "'", &out) == 0);
  CHECK(contains(out, "codec_name=h264"));
  CHECK(contains(out, "width=128"));
  CHECK(contains(out, "TAG:filename=model.dydca"));
  CHECK(contains(out, "TAG:mimetype=application/x-dydca-routing"));
  CHECK(test::run("ffprobe -v error -show_streams '" + path + "' 2>&1 >/dev/null", &err) == 0);
  CHECK_MESSAGE(err.empty(), err);
  std::string nframes;
  CHECK(test::run("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                  "stream=nb_read_frames -of csv=p=0 '" +
                      path + "'",
                  &nframes) == 0);
  CHECK(std::atoi(nframes.c_str()) == frames);

  // `dydca info` on it (when the CLI is built).
  const std::string cli = std::string(DYDCA_BINARY_DIR) + "/dydca";
  if (fs::exists(cli)) {
    std::string text, json;
    CHECK(test::run("'" + cli + "' info '" + path + "'", &text) == 0);
    CHECK(contains(text, "254x190"));
    CHECK(test::run("'" + cli + "' info --json '" + path + "'", &json) == 0);
    CHECK(contains(json, "\"routing_bytes\""));
    CHECK(test::run("'" + cli + "' info '" + dir + "/missing.mkv' 2>/dev/null") != 0);
  }
}

TEST_CASE("dydca .mkv: several models, no routing, audio copied, plain videos") {
  const std::string dir = test::temp_dir("container_multi");
  const EncodedVideo enc = small_video(64, 48, 5);
  DydcaPayload payload;
  for (uint32_t i = 0; i < 3; ++i) payload.models.push_back(make_model(default_arch(), i));
  DydcaWriteParams params;
  params.hr_width = 128;
  params.hr_height = 96;
  params.model_blob.weights = WeightFormat::kInt8;
  REQUIRE(write_dydca_file(dir + "/multi.mkv", enc, payload, params));
  auto f = read_dydca_file(dir + "/multi.mkv");
  REQUIRE(f);
  CHECK(f->models.size() == 3);
  CHECK_FALSE(f->routing);
  CHECK(f->routing_bytes() == 0);
  std::string out;
  CHECK(test::run("ffprobe -v error -show_streams '" + dir + "/multi.mkv'", &out) == 0);
  CHECK(contains(out, "TAG:filename=model2.dydca"));

  // Audio from an input is copied beside the video.
  const std::string src = dir + "/src.mkv";
  REQUIRE(test::run("ffmpeg -v error -f lavfi -i sine=frequency=440 -t 0.2 -c:a libvorbis -y '" +
                    src + "' 2>&1") == 0);
  params.copy_audio_from = src;
  payload.models.resize(1);
  REQUIRE(write_dydca_file(dir + "/audio.mkv", enc, payload, params));
  auto a = read_dydca_file(dir + "/audio.mkv");
  REQUIRE(a);
  CHECK(a->has_audio);
  CHECK(a->audio_bytes > 0);

  // Plain videos: reported as such, not an error.
  REQUIRE(write_video_file(dir + "/plain.mkv", enc));
  REQUIRE(write_video_file(dir + "/plain.mp4", enc));
  for (const char* name : {"/plain.mkv", "/plain.mp4"}) {
    auto p = read_dydca_file(dir + name);
    REQUIRE(p);
    CHECK_FALSE(p->has_dydca);
    CHECK(p->models.empty());
    CHECK(p->video.packets.size() == 5);
  }

  // The writer refuses inconsistent payloads before writing anything.
  DydcaWriteParams bad = params;
  bad.copy_audio_from.clear();
  bad.hr_width = 200;  // LR 64 x2 = 128
  CHECK(contains(write_dydca_file(dir + "/bad.mkv", enc, payload, bad).message(), "HR width"));
  DydcaPayload wrong = payload;
  wrong.routing = make_routing(32, 64, 48, 4, 2, 1);  // 4 frames, video has 5
  CHECK(contains(write_dydca_file(dir + "/bad.mkv", enc, wrong, params).message(), "frames"));
  wrong.routing = make_routing(32, 96, 48, 5, 2, 1);
  CHECK(
      contains(write_dydca_file(dir + "/bad.mkv", enc, wrong, params).message(), "routing is for"));
  wrong.models = {make_model(default_arch(3), 1)};
  wrong.routing.reset();
  CHECK_FALSE(write_dydca_file(dir + "/bad.mkv", enc, wrong, params));
  CHECK_FALSE(write_dydca_file(dir + "/bad.mkv", enc, DydcaPayload{}, params));
  CHECK_FALSE(write_dydca_file(dir + "/bad.mp4", enc, payload, params));
  CHECK_FALSE(fs::exists(dir + "/bad.mkv"));
}

TEST_CASE("damaged dydca files: one clear error each, no crash") {
  const std::string dir = test::temp_dir("container_bad");
  const int frames = 10;
  const EncodedVideo enc = small_video(64, 48, frames);
  DydcaPayload payload;
  payload.models.push_back(make_model(default_arch(), 9));
  payload.routing = make_routing(32, 64, 48, frames, 3, 4);
  DydcaWriteParams params;
  params.hr_width = 128;
  params.hr_height = 96;
  const std::string good = dir + "/good.mkv";
  REQUIRE(write_dydca_file(good, enc, payload, params));
  const std::vector<uint8_t> bytes = read_bytes(good);
  REQUIRE(bytes.size() > 1000);
  auto expect_error = [&](const std::vector<uint8_t>& content, const std::string& name) {
    const std::string p = dir + "/" + name;
    write_bytes(p, content);
    auto r = read_dydca_file(p);
    CHECK_MESSAGE(!r, name);
    if (!r) {
      CHECK(!r.error_message().empty());
      CHECK(r.error_message().find('\n') == std::string::npos);
    }
    return r ? std::string() : r.error_message();
  };

  // Truncated anywhere: attachments and tags sit in front, so a cut either
  // loses them (error) or loses frames (DYDCA_FRAMES says how many there were).
  for (double at : {0.0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99})
    expect_error({bytes.begin(), bytes.begin() + std::ptrdiff_t(double(bytes.size()) * at)},
                 "cut" + std::to_string(int(at * 1000)) + ".mkv");
  CHECK(contains(
      expect_error({bytes.begin(), bytes.begin() + std::ptrdiff_t(bytes.size() / 2)}, "half.mkv"),
      "truncated"));

  // A flipped byte inside the model blob: CRC error naming the attachment.
  auto find = [&](const char* magic) {
    auto it = std::search(bytes.begin(), bytes.end(), magic, magic + 8);
    REQUIRE(it != bytes.end());
    return size_t(it - bytes.begin());
  };
  std::vector<uint8_t> flipped = bytes;
  flipped[find("DYDCAMDL") + 100] ^= 0x01;
  std::string msg = expect_error(flipped, "flip_model.mkv");
  CHECK(contains(msg, "model.dydca"));
  CHECK(contains(msg, "checksum"));
  flipped = bytes;
  flipped[find("DYDCARTG") + 30] ^= 0x80;
  msg = expect_error(flipped, "flip_routing.mkv");
  CHECK(contains(msg, "routing.dydca"));
  CHECK(contains(msg, "checksum"));

  // Missing attachments: tags say dydca, blobs absent.
  MuxOptions mux;
  mux.tags = {{kTagVersion, "0.1.0"},
              {kTagHrWidth, "128"},
              {kTagHrHeight, "96"},
              {kTagScale, "2"},
              {kTagFrames, std::to_string(frames)},
              {kTagBlobs, "model.dydca,routing.dydca"}};
  REQUIRE(write_video_file(dir + "/no_blobs.mkv", enc, mux));
  auto r = read_dydca_file(dir + "/no_blobs.mkv");
  REQUIRE_FALSE(r);
  CHECK(contains(r.error_message(), "missing attachment model.dydca"));
  mux.attachments.push_back({"model.dydca", kModelMimetype, *serialize_model(payload.models[0])});
  REQUIRE(write_video_file(dir + "/no_routing.mkv", enc, mux));
  r = read_dydca_file(dir + "/no_routing.mkv");
  REQUIRE_FALSE(r);
  CHECK(contains(r.error_message(), "missing attachment routing.dydca"));
  mux.tags.erase(kTagHrWidth);
  mux.tags[kTagBlobs] = "model.dydca";
  REQUIRE(write_video_file(dir + "/no_tag.mkv", enc, mux));
  r = read_dydca_file(dir + "/no_tag.mkv");
  REQUIRE_FALSE(r);
  CHECK(contains(r.error_message(), "missing tag DYDCA_HR_WIDTH"));
  MuxOptions only_routing;
  only_routing.attachments.push_back(
      {"routing.dydca", kRoutingMimetype, *serialize_routing(*payload.routing)});
  REQUIRE(write_video_file(dir + "/untagged.mkv", enc, only_routing));
  r = read_dydca_file(dir + "/untagged.mkv");
  REQUIRE_FALSE(r);
  CHECK(contains(r.error_message(), "DYDCA_VERSION"));
  // A model blob that is not one (right mimetype, garbage inside).
  mux = {};
  mux.tags = {{kTagVersion, "0.1.0"},
              {kTagHrWidth, "128"},
              {kTagHrHeight, "96"},
              {kTagScale, "2"},
              {kTagFrames, std::to_string(frames)}};
  mux.attachments.push_back({"model.dydca", kModelMimetype, {1, 2, 3}});
  REQUIRE(write_video_file(dir + "/garbage_model.mkv", enc, mux));
  r = read_dydca_file(dir + "/garbage_model.mkv");
  REQUIRE_FALSE(r);
  CHECK(contains(r.error_message(), "bad magic"));

  // Not Matroska, not a video at all, nothing there.
  msg = expect_error(std::vector<uint8_t>(4000, 'x'), "text.mkv");
  CHECK(contains(msg, "text.mkv"));
  std::mt19937 rng(1);
  std::vector<uint8_t> noise(5000);
  for (auto& b : noise) b = uint8_t(rng());
  expect_error(noise, "noise.mkv");
  std::vector<uint8_t> ebml_noise = noise;
  const uint8_t ebml[4] = {0x1a, 0x45, 0xdf, 0xa3};
  std::copy(ebml, ebml + 4, ebml_noise.begin());
  expect_error(ebml_noise, "ebml_noise.mkv");
  CHECK_FALSE(read_dydca_file(dir + "/does_not_exist.mkv"));
}

TEST_CASE("model blob: the x1 post-filter round-trips; scales outside 1..4 are refused") {
  const Model m = test::random_model(1, 8, 8, 2, {{0, 0}, {1, 8}, {2, 8}}, 3);
  for (WeightFormat f : {WeightFormat::kFp32, WeightFormat::kFp16, WeightFormat::kInt8}) {
    ModelBlobOptions o;
    o.weights = f;
    auto blob = serialize_model(m, o);
    REQUIRE_MESSAGE(blob, blob.status().message());
    auto back = parse_model(*blob);
    REQUIRE_MESSAGE(back, back.status().message());
    CHECK(back->arch.scale == 1);
    CHECK(back->arch.paths == m.arch.paths);
    REQUIRE(back->find("tail.weight"));
    CHECK(back->find("tail.weight")->shape == std::vector<int>{1, 8, 3, 3});
    if (f == WeightFormat::kFp32) CHECK(back->tensors[0].data == m.tensors[0].data);
  }
  for (int bad : {0, 5}) {
    Model b = m;
    b.arch.scale = bad;
    auto blob = serialize_model(b, {});
    CHECK_FALSE(blob);
    if (!blob) CHECK(blob.status().message().find("scale") != std::string::npos);
  }
}
