// The decode pipeline: a small dydca file made here (synthetic clip -> LR ->
// x264 -> random-weight model + routing -> .mkv) decoded through every sink;
// luma must equal the SR runtime on the same decoded LR frames, chroma must
// equal bicubic, frames in = frames out.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "dydca/container.h"
#include "dydca/decoder.h"
#include "dydca/runtime.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace dydca;
using dydca::test::random_model;

namespace {

// HR 102x70 (not a multiple of 2*scale: the decoder must crop 104x72 back).
constexpr int kHrW = 102, kHrH = 70, kScale = 2, kFrames = 10, kTile = 16;

struct TestFile {
  std::string path;
  EncodedVideo video;
};

RoutingMap make_routing(int lr_w, int lr_h, int frames, std::vector<std::vector<uint8_t>> table,
                        uint32_t seed) {
  return test::random_routing(kTile, lr_w, lr_h, frames, std::move(table), seed);
}

EncodedVideo make_lr_video(int frames) {
  const std::vector<Frame> lr = test::synthetic_lr(kHrW, kHrH, frames, kScale, 3);
  X264Config cfg;
  cfg.preset = "ultrafast";
  cfg.crf = 26;
  cfg.gop = 5;
  auto v = encode_h264(lr, Rational{25, 1}, cfg);
  REQUIRE(v);
  return std::move(*v);
}

// One dynamic model, 3 chunks, 3 QoS levels.
// int8: the model carries activation scales (calibrated on a synthetic plane).
TestFile make_dydca_file(const std::string& dir, const std::string& name, bool int8 = false) {
  TestFile tf;
  tf.path = dir + "/" + name;
  tf.video = make_lr_video(kFrames);
  DydcaPayload payload;
  payload.models.push_back(random_model(kScale, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 7));
  if (int8) {
    const int w = tf.video.width, h = tf.video.height;
    std::vector<uint8_t> plane(size_t(w) * h);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) plane[size_t(y) * w + x] = uint8_t((x * 7 + y * 3) % 256);
    auto act = calibrate_act_scales(payload.models[0], {LumaView{plane.data(), w, h, w}});
    REQUIRE(act);
    payload.models[0].act = *act;
  }
  payload.routing =
      make_routing(tf.video.width, tf.video.height, kFrames, {{1, 2, 2}, {0, 1, 2}, {0, 0, 1}}, 11);
  DydcaWriteParams params;
  params.hr_width = kHrW;
  params.hr_height = kHrH;
  REQUIRE(write_dydca_file(tf.path, tf.video, payload, params));
  return tf;
}

std::vector<Frame> read_y4m(const std::string& path) {
  auto r = Y4mReader::open(path);
  REQUIRE(r);
  std::vector<Frame> frames;
  while (true) {
    Frame f;
    auto got = r->read(f);
    REQUIRE(got);
    if (!*got) break;
    frames.push_back(std::move(f));
  }
  return frames;
}

// What the decoder must produce for frame i: luma from the runtime on the
// decoded LR frame, chroma bicubic, cropped to HR.
Frame expected_frame(SrRuntime& rt, const Frame& lr, const RoutingMap* routing, int i, int level) {
  auto hr = resize(lr, lr.width * kScale, lr.height * kScale, ScaleFilter::kBicubic);
  REQUIRE(hr);
  if (routing)
    REQUIRE(rt.upscale_luma(lr.y.data(), lr.width, lr.height, lr.width, hr->y.data(), hr->width,
                            *routing, i, level));
  return crop(*hr, kHrW, kHrH);
}

// Captures warnings for the duration of a scope.
struct LogCapture {
  std::mutex mu;
  std::vector<std::string> lines;
  LogCapture() {
    set_log_callback([this](LogLevel l, std::string_view m) {
      if (l > LogLevel::kWarning) return;
      std::lock_guard lock(mu);
      lines.emplace_back(m);
    });
  }
  ~LogCapture() { set_log_callback({}); }
  bool contains(const std::string& s) {
    std::lock_guard lock(mu);
    for (auto& l : lines)
      if (l.find(s) != std::string::npos) return true;
    return false;
  }
};

}  // namespace

TEST_CASE("decode to y4m: frames, size, luma = runtime, chroma = bicubic") {
  const std::string dir = test::temp_dir("decoder_y4m");
  TestFile tf = make_dydca_file(dir, "a.mkv");
  auto file = read_dydca_file(tf.path);
  REQUIRE(file);
  auto lr = decode_h264(file->video, 1);
  REQUIRE(lr);
  REQUIRE(lr->size() == size_t(kFrames));

  for (int level : {0, 2}) {
    CAPTURE(level);
    DecodeOptions opt;
    opt.output = dir + "/out.y4m";
    opt.level = level;
    opt.threads = 2;
    opt.compute_md5 = true;
    auto stats = decode_file(tf.path, opt);
    REQUIRE_MESSAGE(stats, stats.error_message());
    CHECK(stats->frames == kFrames);
    CHECK(stats->packets == kFrames);
    CHECK(stats->timings.size() == size_t(kFrames));
    CHECK(stats->hr_width == kHrW);
    CHECK(stats->hr_height == kHrH);
    CHECK(!stats->plain_video);
    CHECK(stats->levels == 3);
    CHECK(stats->level_histogram[size_t(level)] == kFrames);
    CHECK(stats->md5.size() == 32);
    CHECK(!stats->summary().empty());

    auto out = read_y4m(opt.output);
    REQUIRE(out.size() == size_t(kFrames));
    RuntimeOptions ro;
    ro.tile_size = kTile;
    ro.threads = 1;
    auto rt = SrRuntime::create(file->models[0], ro);
    REQUIRE(rt);
    for (int i = 0; i < kFrames; ++i) {
      CAPTURE(i);
      const Frame want = expected_frame(*rt, (*lr)[size_t(i)], &*file->routing, i, level);
      REQUIRE(out[size_t(i)].width == kHrW);
      REQUIRE(out[size_t(i)].height == kHrH);
      CHECK(out[size_t(i)].y == want.y);
      CHECK(out[size_t(i)].u == want.u);
      CHECK(out[size_t(i)].v == want.v);
    }
  }
  // No temporary file left beside the output.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) entries += e.path().filename() != "a.mkv";
  CHECK(entries == 1);
}

TEST_CASE("md5 muxer: stable across thread counts and queue depths, differs across levels") {
  const std::string dir = test::temp_dir("decoder_md5");
  TestFile tf = make_dydca_file(dir, "a.mkv");
  std::string first;
  for (int threads : {1, 2, 3}) {
    for (int depth : {1, 3}) {
      DecodeOptions opt;
      opt.muxer = Muxer::kMd5;
      opt.threads = threads;
      opt.queue_depth = depth;
      auto stats = decode_file(tf.path, opt);
      REQUIRE_MESSAGE(stats, stats.error_message());
      CHECK(stats->frames == kFrames);
      if (first.empty()) first = stats->md5;
      CHECK(stats->md5 == first);
    }
  }
  DecodeOptions opt;
  opt.muxer = Muxer::kMd5;
  opt.level = 2;
  auto l2 = decode_file(tf.path, opt);
  REQUIRE(l2);
  CHECK(l2->md5 != first);
  // The y4m payload hashes to the same md5.
  DecodeOptions y4m;
  y4m.output = dir + "/o.y4m";
  y4m.compute_md5 = true;
  auto s = decode_file(tf.path, y4m);
  REQUIRE(s);
  CHECK(s->md5 == first);
}

TEST_CASE("max frames, bad level, cancel leaves no file") {
  const std::string dir = test::temp_dir("decoder_misc");
  TestFile tf = make_dydca_file(dir, "a.mkv");
  DecodeOptions opt;
  opt.muxer = Muxer::kNull;
  opt.max_frames = 4;
  auto s = decode_file(tf.path, opt);
  REQUIRE(s);
  CHECK(s->frames == 4);
  CHECK(s->packets == 4);

  opt.max_frames = 0;
  opt.level = 3;
  auto bad = decode_file(tf.path, opt);
  REQUIRE(!bad);
  CHECK(bad.error_message().find("level 3") != std::string::npos);

  DecodeOptions c;
  c.output = dir + "/cancel.y4m";
  auto cancelled = decode_file(tf.path, c, [](const Progress& p) { return p.done < 3; });
  REQUIRE(!cancelled);
  CHECK(cancelled.error_message() == "cancelled");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) entries += e.path().filename() != "a.mkv";
  CHECK(entries == 0);

  c.output = dir + "/x.avi";
  auto ext = decode_file(tf.path, c);
  REQUIRE(!ext);
  CHECK(ext.error_message().find("x.avi") != std::string::npos);
}

TEST_CASE("level policy hook sees the previous frame's SR time") {
  const std::string dir = test::temp_dir("decoder_policy");
  TestFile tf = make_dydca_file(dir, "a.mkv");
  struct Alternate : LevelPolicy {
    int calls = 0, with_last = 0;
    int level_for_frame(const LevelContext& ctx) override {
      CHECK(ctx.frame == calls);
      CHECK(ctx.levels == 3);
      CHECK(ctx.frame_interval_ms == doctest::Approx(40.0));
      if (ctx.last) {
        ++with_last;
        CHECK(ctx.last->sr_ms >= 0);
      }
      ++calls;
      return (calls % 2) ? 0 : 7;  // 7 is clamped to 2
    }
  };
  auto policy = std::make_shared<Alternate>();
  DecodeOptions opt;
  opt.muxer = Muxer::kNull;
  opt.policy = policy;
  auto s = decode_file(tf.path, opt);
  REQUIRE(s);
  CHECK(policy->calls == kFrames);
  CHECK(policy->with_last == kFrames - 1);
  CHECK(s->level_histogram[0] == kFrames / 2);
  CHECK(s->level_histogram[2] == kFrames / 2);

  // auto: the QoS controller picks levels in range, every frame accounted for.
  DecodeOptions a;
  a.muxer = Muxer::kNull;
  a.auto_level = true;
  auto sa = decode_file(tf.path, a);
  REQUIRE_MESSAGE(sa, sa.error_message());
  CHECK(sa->auto_level);
  int64_t total = 0;
  for (int64_t n : sa->level_histogram) total += n;
  CHECK(total == kFrames);
}

TEST_CASE("mp4 output: x264, every frame, HR size") {
  const std::string dir = test::temp_dir("decoder_mp4");
  TestFile tf = make_dydca_file(dir, "a.mkv");
  DecodeOptions opt;
  opt.output = dir + "/out.mp4";
  auto s = decode_file(tf.path, opt);
  REQUIRE_MESSAGE(s, s.error_message());
  VideoInfo info;
  auto frames = read_all_frames(opt.output, &info);
  REQUIRE(frames);
  CHECK(frames->size() == size_t(kFrames));
  CHECK(info.width == kHrW);
  CHECK(info.height == kHrH);
}

TEST_CASE("plain video falls back to bicubic with a warning") {
  const std::string dir = test::temp_dir("decoder_plain");
  const std::string path = dir + "/plain.mp4";
  EncodedVideo v = make_lr_video(6);
  REQUIRE(write_video_file(path, v));
  auto lr = decode_h264(v, 1);
  REQUIRE(lr);
  LogCapture logs;
  DecodeOptions opt;
  opt.output = dir + "/out.y4m";
  opt.plain_scale = 3;
  auto s = decode_file(path, opt);
  REQUIRE_MESSAGE(s, s.error_message());
  CHECK(s->plain_video);
  CHECK(s->frames == 6);
  CHECK(logs.contains("no dydca model"));
  auto out = read_y4m(opt.output);
  REQUIRE(out.size() == 6);
  for (size_t i = 0; i < out.size(); ++i) {
    auto want = resize((*lr)[i], v.width * 3, v.height * 3, ScaleFilter::kBicubic);
    REQUIRE(want);
    CHECK(out[i].same_pixels(*want));
  }
}

TEST_CASE("damaged files: truncated and corrupt blobs are errors, corrupt H.264 is concealed") {
  const std::string dir = test::temp_dir("decoder_bad");
  TestFile tf = make_dydca_file(dir, "a.mkv");
  std::ifstream in(tf.path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(bytes.size() > 1000);
  DecodeOptions opt;
  opt.muxer = Muxer::kNull;

  SUBCASE("truncated") {
    for (size_t keep : {size_t(0), size_t(100), bytes.size() / 2, bytes.size() - 300}) {
      CAPTURE(keep);
      std::ofstream(dir + "/t.mkv", std::ios::binary).write(bytes.data(), std::streamsize(keep));
      auto s = decode_file(dir + "/t.mkv", opt);
      CHECK(!s);
      if (!s) CHECK(s.error_message().find('\n') == std::string::npos);
    }
  }
  SUBCASE("corrupt model blob") {
    auto file = read_dydca_file(tf.path);
    REQUIRE(file);
    const auto& blob = file->model_blobs[0];
    auto it = std::search(bytes.begin(), bytes.end(), blob.begin(), blob.end(),
                          [](char a, uint8_t b) { return uint8_t(a) == b; });
    REQUIRE(it != bytes.end());
    std::vector<char> bad = bytes;
    bad[size_t(it - bytes.begin()) + blob.size() / 2] ^= 0x5a;
    std::ofstream(dir + "/m.mkv", std::ios::binary).write(bad.data(), std::streamsize(bad.size()));
    auto s = decode_file(dir + "/m.mkv", opt);
    REQUIRE(!s);
    CHECK(s.error_message().find("model") != std::string::npos);
  }
  SUBCASE("corrupt H.264 packet") {
    EncodedVideo v = tf.video;
    auto& data = v.packets[6].data;  // a P frame
    for (size_t i = data.size() / 3; i < data.size(); ++i) data[i] = uint8_t(i * 37);
    auto file = read_dydca_file(tf.path);
    REQUIRE(file);
    DydcaPayload payload;
    payload.models = file->models;
    payload.routing = file->routing;
    DydcaWriteParams params;
    params.hr_width = kHrW;
    params.hr_height = kHrH;
    REQUIRE(write_dydca_file(dir + "/h.mkv", v, payload, params));
    auto s = decode_file(dir + "/h.mkv", opt);
    REQUIRE_MESSAGE(s, s.error_message());
    CHECK(s->frames == kFrames);
  }
}

TEST_CASE("multi-model file: routing names models, tiles composed, switches counted") {
  const std::string dir = test::temp_dir("decoder_multi");
  const std::string path = dir + "/multi.mkv";
  EncodedVideo v = make_lr_video(kFrames);
  DydcaPayload payload;
  payload.models.push_back(random_model(kScale, 16, 16, 2, {{1, 8}}, 21));
  payload.models.push_back(random_model(kScale, 16, 16, 2, {{0, 0}, {2, 16}}, 22));
  payload.routing = make_routing(v.width, v.height, kFrames, {{0, 1, 1}}, 5);
  DydcaWriteParams params;
  params.hr_width = kHrW;
  params.hr_height = kHrH;
  REQUIRE(write_dydca_file(path, v, payload, params));
  auto file = read_dydca_file(path);
  REQUIRE(file);
  auto lr = decode_h264(file->video, 1);
  REQUIRE(lr);

  DecodeOptions opt;
  opt.output = dir + "/out.y4m";
  opt.threads = 2;
  auto s = decode_file(path, opt);
  REQUIRE_MESSAGE(s, s.error_message());
  CHECK(s->frames == kFrames);
  CHECK(s->models == 2);
  CHECK(s->models_loaded == 2);
  CHECK(s->model_load_ms > 0);
  CHECK(s->tile_switches > 0);
  auto out = read_y4m(opt.output);
  REQUIRE(out.size() == size_t(kFrames));

  // Oracle: each model's richest path on the whole frame, tile by tile.
  RuntimeOptions ro;
  ro.tile_size = kTile;
  ro.threads = 1;
  auto rt0 = SrRuntime::create(file->models[0], ro);
  auto rt1 = SrRuntime::create(file->models[1], ro);
  REQUIRE(rt0);
  REQUIRE(rt1);
  const RoutingMap& r = *file->routing;
  int64_t switches = 0;
  for (int i = 0; i < kFrames; ++i) {
    CAPTURE(i);
    const Frame& f = (*lr)[size_t(i)];
    const int W = f.width * kScale, H = f.height * kScale;
    std::vector<uint8_t> y0(size_t(W) * H), y1(size_t(W) * H);
    REQUIRE(rt0->upscale_luma(f.y.data(), f.width, f.height, f.width, y0.data(), W, 0));
    REQUIRE(rt1->upscale_luma(f.y.data(), f.width, f.height, f.width, y1.data(), W, 1));
    auto want = resize(f, W, H, ScaleFilter::kBicubic);
    REQUIRE(want);
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const int tx = x / (kTile * kScale), ty = y / (kTile * kScale);
        const int m = r.chunk_path[0][r.chunk(i, tx, ty)];
        want->y[size_t(y) * W + x] = (m == 0 ? y0 : y1)[size_t(y) * W + x];
      }
    const Frame c = crop(*want, kHrW, kHrH);
    CHECK(out[size_t(i)].same_pixels(c));
    if (i > 0)
      for (int ty = 0; ty < r.tiles_y(); ++ty)
        for (int tx = 0; tx < r.tiles_x(); ++tx)
          switches +=
              r.chunk_path[0][r.chunk(i, tx, ty)] != r.chunk_path[0][r.chunk(i - 1, tx, ty)];
  }
  CHECK(s->tile_switches == switches);
}

// Not a check: writes the small dydca file for tests/test_decode_cli.sh when
// DYDCA_DECODER_FIXTURE names the output (`test_decoder -tc="fixture*"`).
// Writes the files test_decode_cli.sh decodes (run by it with these
// variables set; skipped otherwise), and checks that they open.
TEST_CASE("fixture for the CLI test") {
  const char* out = std::getenv("DYDCA_DECODER_FIXTURE");
  if (!out) DYDCA_SKIP("fixture: only for test_decode_cli.sh (DYDCA_DECODER_FIXTURE unset)");
  std::vector<std::string> written;
  const fs::path p(out);
  make_dydca_file(p.parent_path().string(), p.filename().string());
  written.push_back(p.string());
  if (const char* out8 = std::getenv("DYDCA_DECODER_FIXTURE_INT8")) {
    const fs::path p8(out8);
    make_dydca_file(p8.parent_path().string(), p8.filename().string(), true);
    written.push_back(p8.string());
  }
  for (const std::string& f : written) {
    auto r = DydcaReader::open(f);
    REQUIRE_MESSAGE(r, r.error_message());
    CHECK(r->has_dydca());
    CHECK(r->model_count() == 1);
  }
}

TEST_CASE("precision: auto runs a model with int8 scales in int8; int8 without scales fails") {
  const std::string dir = test::temp_dir("decoder_int8");
  TestFile plain = make_dydca_file(dir, "plain.mkv");
  TestFile scaled = make_dydca_file(dir, "int8.mkv", true);
  auto decode = [&](const std::string& path, Precision p) {
    DecodeOptions opt;
    opt.muxer = Muxer::kMd5;
    opt.threads = 2;
    opt.precision = p;
    return decode_file(path, opt);
  };
  auto a = decode(scaled.path, Precision::kAuto);
  REQUIRE_MESSAGE(a, a.error_message());
  CHECK(a->frames == kFrames);
  if (best_simd_level() != SimdLevel::kNone)
    CHECK(a->precision == Precision::kInt8);
  CHECK(a->summary().find(precision_name(a->precision)) != std::string::npos);
  auto f = decode(scaled.path, Precision::kFp32);
  REQUIRE(f);
  CHECK(f->precision == Precision::kFp32);
  CHECK(f->md5 != a->md5);  // (int8 and fp32 round differently somewhere)
  auto p = decode(plain.path, Precision::kAuto);
  REQUIRE(p);
  CHECK(p->precision == Precision::kFp32);
  auto bad = decode(plain.path, Precision::kInt8);
  REQUIRE_FALSE(bad);
  CHECK(bad.error_message().find("int8 activation scales") != std::string::npos);
  // Bit-exact int8: every SIMD level gives the same output.
  DecodeOptions o;
  o.muxer = Muxer::kMd5;
  o.precision = Precision::kInt8;
  o.simd = SimdLevel::kNone;
  auto ref = decode_file(scaled.path, o);
  REQUIRE(ref);
  auto best = decode(scaled.path, Precision::kInt8);
  REQUIRE(best);
  CHECK(ref->md5 == best->md5);
}
