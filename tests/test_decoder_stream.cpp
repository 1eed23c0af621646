// test_decoder_stream: the streaming, segment-based decoder. Format-2 files
// (segments with a full model or an update of the previous one, and their own
// routing) are built here with the container's writer; every decoded frame
// must equal the SR runtime run with its segment's model and routing (a
// reference loop written here), the switch statistics must be filled, a
// truncated file must fail at the end and leave no output, and a long file of
// many segments must never hold more than two runtimes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "dydca/container.h"
#include "dydca/decoder.h"
#include "dydca/routing.h"
#include "dydca/runtime.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace dydca;

namespace {

constexpr int kScale = 2, kTile = 16;

// The decoded stream of one file, as the decoder hands it to its sink.
class CaptureSink final : public FrameSink {
 public:
  Status open(const SinkFormat& f) override {
    format = f;
    return Status::ok();
  }
  Status write(const Frame& frame) override {
    frames.push_back(frame);
    return Status::ok();
  }
  Status finish() override {
    finished = true;
    return Status::ok();
  }
  void abort() override { aborted = true; }
  SinkFormat format;
  std::vector<Frame> frames;
  bool finished = false, aborted = false;
};

// Level 0 richest; every level a different table, so a wrong routing shows.
RoutingMap make_routing(int lr_w, int lr_h, int frames, uint32_t seed) {
  return test::random_routing(kTile, lr_w, lr_h, frames, {{2, 1, 2}, {1, 0, 2}, {0, 0, 1}}, seed);
}

Model perturbed(const Model& m, uint32_t seed) { return test::perturbed_model(m, seed, 0.1f); }

// A format-2 file: HR hr_w x hr_h synthetic clip, LR x264 with an IDR every
// `gop` frames, one segment per keyframe. Segment 0 a full model, the others
// updates of the previous reconstructed model (every `full_every`-th a full
// model again); routing in every segment except those where k % 3 == 2
// (static model: level l runs the l-th richest path).
struct V2File {
  std::string path;
  EncodedVideo video;
  std::vector<SegmentRecord> segments;
  std::vector<Model> models;  // what the client must run, per segment
  std::vector<std::optional<RoutingMap>> routing;
  int hr_w = 0, hr_h = 0;
};

V2File make_v2_file(const std::string& path, int hr_w, int hr_h, int frames, int gop,
                    int full_every = 4) {
  V2File f;
  f.path = path;
  f.hr_w = hr_w;
  f.hr_h = hr_h;
  const std::vector<Frame> lr = test::synthetic_lr(hr_w, hr_h, frames, kScale, 5);
  X264Config cfg;
  cfg.preset = "ultrafast";
  cfg.crf = 28;
  cfg.gop = gop;
  auto v = encode_h264(lr, Rational{25, 1}, cfg);
  REQUIRE(v);
  f.video = std::move(*v);
  std::vector<int> starts;
  for (size_t i = 0; i < f.video.packets.size(); ++i)
    if (f.video.packets[i].keyframe) starts.push_back(int(i));
  REQUIRE(!starts.empty());
  REQUIRE(starts[0] == 0);
  Model current;
  for (size_t k = 0; k < starts.size(); ++k) {
    SegmentRecord s;
    s.first_frame = starts[k];
    s.frames = (k + 1 < starts.size() ? starts[k + 1] : int(f.video.packets.size())) - starts[k];
    if (k % size_t(full_every) == 0) {
      const Model m = test::random_model(kScale, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}},
                                         uint32_t(7 + k));
      auto b = serialize_model(m, {WeightFormat::kFp16, 3});
      REQUIRE(b);
      s.model = *b;
      current = *parse_model(*b);  // what the client has
    } else {
      auto d = serialize_model_delta(current, perturbed(current, uint32_t(100 + k)), {3});
      REQUIRE(d);
      s.model_is_delta = true;
      s.model = *d;
      current = *apply_model_delta(current, *d);
    }
    std::optional<RoutingMap> r;
    if (k % 3 != 2) {
      r = make_routing(f.video.width, f.video.height, s.frames, uint32_t(k));
      s.routing = *serialize_routing(*r, 3);
    }
    f.models.push_back(current);
    f.routing.push_back(std::move(r));
    f.segments.push_back(std::move(s));
  }
  DydcaV2WriteParams params;
  params.hr_width = hr_w;
  params.hr_height = hr_h;
  REQUIRE(write_dydca_file_v2(path, f.video, f.segments, params));
  return f;
}

// What the decoder must produce for every frame at a fixed QoS level: luma
// from a runtime of the frame's segment's model, routed by that segment's
// routing at the frame's index in it; chroma bicubic; cropped to HR.
std::vector<Frame> reference_frames(const V2File& f, int level) {
  auto lr = decode_h264(f.video, 1);
  REQUIRE(lr);
  REQUIRE(lr->size() == f.video.packets.size());
  std::vector<Frame> out;
  RuntimeOptions ro;
  ro.tile_size = kTile;
  ro.threads = 1;
  for (size_t k = 0; k < f.segments.size(); ++k) {
    auto rt = SrRuntime::create(f.models[k], ro);
    REQUIRE(rt);
    const SegmentRecord& s = f.segments[k];
    for (int i = 0; i < s.frames; ++i) {
      const Frame& in = (*lr)[size_t(s.first_frame + i)];
      auto hr = resize(in, in.width * kScale, in.height * kScale, ScaleFilter::kBicubic);
      REQUIRE(hr);
      if (f.routing[k])
        REQUIRE(rt->upscale_luma(in.y.data(), in.width, in.height, in.width, hr->y.data(),
                                 hr->width, *f.routing[k], i, level));
      else
        REQUIRE(rt->upscale_luma(in.y.data(), in.width, in.height, in.width, hr->y.data(),
                                 hr->width, static_level_path(rt->num_paths(), level)));
      out.push_back(crop(*hr, f.hr_w, f.hr_h));
    }
  }
  return out;
}

using test::read_bytes;
using test::write_bytes;

}  // namespace

TEST_CASE("format 2: every frame runs its segment's model and routing; switches reported") {
  const std::string dir = test::temp_dir("decoder_stream_v2");
  const V2File f = make_v2_file(dir + "/v2.mkv", 102, 70, 23, 5);
  REQUIRE(f.segments.size() >= 4);
  const int n_frames = int(f.video.packets.size());

  for (int level : {0, 1}) {
    for (int threads : {1, 3}) {
      CAPTURE(level);
      CAPTURE(threads);
      DecodeOptions opt;
      opt.level = level;
      opt.threads = threads;
      opt.queue_depth = threads == 1 ? 1 : 3;
      CaptureSink sink;
      auto s = decode_file(f.path, opt, sink);
      REQUIRE_MESSAGE(s, s.error_message());
      CHECK(sink.finished);
      CHECK_FALSE(sink.aborted);
      CHECK(s->frames == n_frames);
      CHECK(s->format_version == 2);
      CHECK(s->segments == int(f.segments.size()));
      CHECK(s->segment_switches == int64_t(f.segments.size()) - 1);
      CHECK(s->max_runtimes_alive >= 1);
      CHECK(s->max_runtimes_alive <= 2);
      CHECK(s->prepare_ms > 0);
      CHECK(s->switch_sr_p50_ms > 0);
      CHECK(s->switch_sr_p99_ms >= s->switch_sr_p50_ms);
      CHECK(s->other_sr_p50_ms > 0);
      CHECK(s->other_sr_p99_ms >= s->other_sr_p50_ms);
      CHECK(s->summary().find(std::to_string(f.segments.size()) + " segments") !=
            std::string::npos);
      // The switch flag sits exactly on the first frame of segments 1..
      REQUIRE(s->timings.size() == size_t(n_frames));
      for (size_t k = 0; k < f.segments.size(); ++k)
        for (int i = 0; i < f.segments[k].frames; ++i)
          CHECK(s->timings[size_t(f.segments[k].first_frame + i)].segment_switch ==
                (k > 0 && i == 0));

      const std::vector<Frame> want = reference_frames(f, level);
      REQUIRE(sink.frames.size() == want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        CAPTURE(i);
        CHECK(sink.frames[i].same_pixels(want[i]));
      }
    }
  }
}

TEST_CASE("format 2: md5 as y4m equals the capture; --level auto keeps working across switches") {
  const std::string dir = test::temp_dir("decoder_stream_auto");
  const V2File f = make_v2_file(dir + "/v2.mkv", 96, 64, 20, 4);
  DecodeOptions opt;
  opt.muxer = Muxer::kMd5;
  opt.threads = 2;
  auto a = decode_file(f.path, opt);
  REQUIRE_MESSAGE(a, a.error_message());
  // The same file through a reader the caller opened (the player's way).
  auto reader = DydcaReader::open(f.path);
  REQUIRE(reader);
  CHECK(reader->segments().size() == f.segments.size());
  DecodeOptions o2 = opt;
  o2.compute_md5 = true;
  CaptureSink sink;
  auto b = decode_file(std::move(*reader), f.path, o2, sink);
  REQUIRE_MESSAGE(b, b.error_message());
  CHECK(a->md5 == b->md5);
  CHECK(b->frames == int64_t(f.video.packets.size()));

  DecodeOptions aut;
  aut.muxer = Muxer::kNull;
  aut.auto_level = true;
  aut.threads = 2;
  auto c = decode_file(f.path, aut);
  REQUIRE_MESSAGE(c, c.error_message());
  CHECK(c->auto_level);
  CHECK(c->frames == int64_t(f.video.packets.size()));
  CHECK(c->segment_switches == int64_t(f.segments.size()) - 1);
  int64_t total = 0;
  for (int64_t n : c->level_histogram) total += n;
  CHECK(total == c->frames);

  // Stopping early (max frames inside a segment) leaves no preparation behind.
  DecodeOptions few = opt;
  few.max_frames = f.segments[1].first_frame + 1;
  auto d = decode_file(f.path, few);
  REQUIRE_MESSAGE(d, d.error_message());
  CHECK(d->frames == few.max_frames);
  CHECK(d->segment_switches == 1);
}

TEST_CASE("format 2: a truncated file fails at the end with a clear error and leaves no output") {
  const std::string dir = test::temp_dir("decoder_stream_trunc");
  const V2File f = make_v2_file(dir + "/v2.mkv", 96, 64, 20, 4);
  const std::vector<uint8_t> bytes = read_bytes(f.path);
  const uint8_t cluster[4] = {0x1f, 0x43, 0xb6, 0x75};
  const auto first_cluster = std::search(bytes.begin(), bytes.end(), cluster, cluster + 4);
  REQUIRE(first_cluster != bytes.end());
  const std::string cut = dir + "/cut.mkv";
  write_bytes(cut, {bytes.begin(), first_cluster + (bytes.end() - first_cluster) / 2});

  DecodeOptions opt;
  opt.output = dir + "/out.y4m";
  opt.threads = 2;
  auto s = decode_file(cut, opt);
  REQUIRE_FALSE(s);
  CHECK(s.error_message().find("truncated") != std::string::npos);
  CHECK(s.error_message().find("cut.mkv") != std::string::npos);
  CHECK(s.error_message().find('\n') == std::string::npos);
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    CHECK_MESSAGE((name == "v2.mkv" || name == "cut.mkv"), "left behind: " << name);
  }
  // A caller's sink is aborted, never finished.
  CaptureSink sink;
  auto s2 = decode_file(cut, DecodeOptions{}, sink);
  REQUIRE_FALSE(s2);
  CHECK(sink.aborted);
  CHECK_FALSE(sink.finished);
}

TEST_CASE("format 2: a long file of many segments never holds more than two runtimes") {
  const std::string dir = test::temp_dir("decoder_stream_long");
  // 360 small frames, an IDR every 6: about 60 segments.
  const V2File f = make_v2_file(dir + "/long.mkv", 64, 48, 360, 6, 5);
  REQUIRE(f.segments.size() >= 40);
  DecodeOptions opt;
  opt.muxer = Muxer::kNull;
  opt.threads = 2;
  auto s = decode_file(f.path, opt);
  REQUIRE_MESSAGE(s, s.error_message());
  CHECK(s->frames == 360);
  CHECK(s->segments == int(f.segments.size()));
  CHECK(s->segment_switches == int64_t(f.segments.size()) - 1);
  CHECK(s->models_loaded == int(f.segments.size()));
  CHECK(s->max_runtimes_alive == 2);  // current + next, never more
}

TEST_CASE("format 1 through the streaming reader: one segment, no switch") {
  const std::string dir = test::temp_dir("decoder_stream_v1");
  const V2File f = make_v2_file(dir + "/v2.mkv", 96, 64, 10, 100);
  REQUIRE(f.segments.size() == 1);
  DydcaPayload payload;
  payload.models.push_back(f.models[0]);
  payload.routing = f.routing[0];
  DydcaWriteParams params;
  params.hr_width = f.hr_w;
  params.hr_height = f.hr_h;
  params.model_blob.weights = WeightFormat::kFp32;  // the client model is exactly models[0]
  REQUIRE(write_dydca_file(dir + "/v1.mkv", f.video, payload, params));
  CaptureSink v1, v2;
  auto a = decode_file(dir + "/v1.mkv", DecodeOptions{}, v1);
  auto b = decode_file(f.path, DecodeOptions{}, v2);
  REQUIRE_MESSAGE(a, a.error_message());
  REQUIRE_MESSAGE(b, b.error_message());
  CHECK(a->format_version == 1);
  CHECK(b->format_version == 2);
  CHECK(a->segments == 1);
  CHECK(a->segment_switches == 0);
  CHECK(a->max_runtimes_alive == 1);
  REQUIRE(v1.frames.size() == v2.frames.size());
  for (size_t i = 0; i < v1.frames.size(); ++i) CHECK(v1.frames[i].same_pixels(v2.frames[i]));
}

// Not a check: writes a small format-2 file (about 6 segments, 30 frames,
// HR 102x70) for tests/test_decode_cli.sh when DYDCA_DECODER_FIXTURE_V2 names
// the output (`test_decoder -tc="fixture*"`). DYDCA_DECODER_FIXTURE_V2_FRAMES
// makes it longer (an IDR every 25 frames then), for memory checks by hand.
// The format-2 file test_decode_cli.sh decodes (skipped unless it asks).
TEST_CASE("fixture: format 2 for the CLI test") {
  const char* out = std::getenv("DYDCA_DECODER_FIXTURE_V2");
  if (!out) DYDCA_SKIP("fixture: only for test_decode_cli.sh (DYDCA_DECODER_FIXTURE_V2 unset)");
  const char* frames = std::getenv("DYDCA_DECODER_FIXTURE_V2_FRAMES");
  if (frames)
    make_v2_file(out, 102, 70, std::max(1, std::atoi(frames)), 25);
  else
    make_v2_file(out, 102, 70, 30, 5);
  auto r = DydcaReader::open(out);
  REQUIRE_MESSAGE(r, r.error_message());
  CHECK(r->segments().size() >= 1);
}
