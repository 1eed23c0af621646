// What the encoder reports is what the client shows (issue 18): the encoder's
// quality evaluation (evaluate_stage for the dynamic codec, evaluate_baseline
// for multi-model files) measured against the decoder's own output of the
// same file finds zero error on every plane of every frame, at every QoS
// level, fp32 and int8: the two produce the same frames bit for bit, because
// both run FrameUpscaler. No training: random models, x264 ultrafast.
#include <doctest/doctest.h>

#include "baseline.h"
#include "dydca/container.h"
#include "dydca/decoder.h"
#include "stages.h"
#include "test_util.h"

namespace dydca {
namespace {

using test::random_model;

// HR 102x70: not a multiple of 2*scale (the decoder crops 104x72 back).
constexpr int kHrW = 102, kHrH = 70, kScale = 2, kFrames = 6, kTile = 16;

struct CaptureSink final : FrameSink {
  std::vector<Frame> frames;
  Status open(const SinkFormat&) override { return Status::ok(); }
  Status write(const Frame& f) override {
    frames.push_back(f);
    return Status::ok();
  }
  Status finish() override { return Status::ok(); }
};

RoutingMap make_routing(int w, int h, std::vector<std::vector<uint8_t>> table, uint32_t seed) {
  return test::random_routing(kTile, w, h, kFrames, std::move(table), seed);
}

struct Clip {
  EncodedVideo video;
  std::vector<Frame> lr;  // decoded as the encoder's x264 round trip does
};

Clip make_clip() {
  Clip c;
  const std::vector<Frame> lr = test::synthetic_lr(kHrW, kHrH, kFrames, kScale, 3);
  X264Config cfg;
  cfg.preset = "ultrafast";
  cfg.crf = 26;
  cfg.gop = 3;
  auto trip = detail::x264_round_trip(lr, Rational{25, 1}, cfg, 1, {});
  REQUIRE_MESSAGE(trip, trip.status().message());
  c.video = std::move(trip->video);
  c.lr = std::move(trip->decoded);
  return c;
}

// The decoder's frames of `path` at `level`, padded back to the encoder's
// HR size (the padding is outside the measured area).
std::vector<Frame> decoded(const std::string& path, int level) {
  DecodeOptions o;
  o.level = level;
  o.threads = 2;
  CaptureSink sink;
  auto s = decode_file(path, o, sink);
  REQUIRE_MESSAGE(s, s.status().message());
  REQUIRE(sink.frames.size() == size_t(kFrames));
  std::vector<Frame> out;
  for (const Frame& f : sink.frames) out.push_back(pad_to_multiple(f, 2 * kScale));
  return out;
}

EncodeParams params() {
  EncodeParams p;
  p.tile_size = kTile;
  p.threads = 2;
  return p;
}

}  // namespace

TEST_CASE("encoder evaluation = decoder output, bit for bit, every level, fp32 and int8") {
  const std::string dir = test::temp_dir("encoder_eval");
  const Clip clip = make_clip();
  const int w = clip.video.width, h = clip.video.height;
  for (bool int8 : {false, true}) {
    CAPTURE(int8);
    DydcaPayload payload;
    payload.models.push_back(random_model(kScale, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 7));
    if (int8) {
      auto act = calibrate_act_scales(payload.models[0], {LumaView{clip.lr[0].y.data(), w, h, w}});
      REQUIRE(act);
      payload.models[0].act = *act;
    }
    payload.routing = make_routing(w, h, {{1, 2, 2}, {0, 1, 2}, {0, 0, 1}}, 11);
    const std::string path = dir + (int8 ? "/int8.mkv" : "/fp32.mkv");
    DydcaWriteParams wp;
    wp.hr_width = kHrW;
    wp.hr_height = kHrH;
    REQUIRE(write_dydca_file(path, clip.video, payload, wp));
    auto file = read_dydca_file(path);  // the shipped model, as both sides have it
    REQUIRE(file);

    // The encoder's evaluation objects, as encode_segment makes them.
    const RuntimeOptions ropt = detail::runtime_options(params(), w, h);
    auto model = SrModel::create(file->models[0], ropt.model());
    REQUIRE(model);
    CHECK((*model)->precision() == (int8 && best_simd_level() != SimdLevel::kNone
                                        ? Precision::kInt8
                                        : Precision::kFp32));
    auto pool = WorkerPool::create(2);
    REQUIRE(pool);
    auto frames = FrameUpscaler::create(w, h, kScale, *pool, ropt.session());
    REQUIRE(frames);
    for (int level = 0; level < 3; ++level) {
      CAPTURE(level);
      const std::vector<Frame> hr = decoded(path, level);
      auto q = detail::evaluate_stage(*frames, **model, nullptr, hr, clip.lr, *file->routing,
                                      kHrW, kHrH, kFrames, {});
      REQUIRE_MESSAGE(q, q.status().message());
      const detail::QualitySum& l = q->levels[size_t(level)];
      CHECK(l.frames == kFrames);
      CHECK(l.mse_y == 0);
      CHECK(l.mse_u == 0);
      CHECK(l.mse_v == 0);
      CHECK(q->bicubic.mse_y > 0);  // the reference is not trivially anything
    }
  }
}

TEST_CASE("baseline evaluation = decoder output of the multi-model file, bit for bit") {
  const std::string dir = test::temp_dir("encoder_eval_multi");
  const Clip clip = make_clip();
  const int w = clip.video.width, h = clip.video.height;
  DydcaPayload payload;
  // Single-path models of the full size, as the baselines train them.
  for (uint32_t seed : {21u, 22u, 23u})
    payload.models.push_back(random_model(kScale, 16, 16, 2, {{2, 16}}, seed));
  payload.routing = make_routing(w, h, {{0, 1, 2, 1}}, 5);
  const std::string path = dir + "/multi.mkv";
  DydcaWriteParams wp;
  wp.hr_width = kHrW;
  wp.hr_height = kHrH;
  REQUIRE(write_dydca_file(path, clip.video, payload, wp));
  auto file = read_dydca_file(path);
  REQUIRE(file);
  REQUIRE(file->models.size() == 3);

  const std::vector<Frame> hr = decoded(path, 0);
  ClipQuality bicubic, sr;
  REQUIRE(detail::evaluate_baseline(file->models, *file->routing, hr, clip.lr, kHrW, kHrH,
                                    detail::runtime_options(params(), w, h), &bicubic, &sr, {}));
  REQUIRE(sr.per_frame.size() == size_t(kFrames));
  for (const FrameQuality& f : sr.per_frame) {
    CHECK(f.mse_y == 0);
    CHECK(f.mse_u == 0);
    CHECK(f.mse_v == 0);
  }
  CHECK(bicubic.per_frame.at(0).mse_y > 0);
}

}  // namespace dydca
