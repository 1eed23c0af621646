// The segmented encoder's stages: segment boundaries from the streaming
// segmenter, memory that does not grow with the input's length, the total
// rate and the scale chosen by trial encodes (issue 15).
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <tuple>

#include <doctest/doctest.h>

#include "dydca/container.h"
#include "dydca/encoder.h"
#include "dydca/metrics.h"
#include "dydca/synthetic.h"
#include "operating_point.h"
#include "segment_source.h"
#include "stages.h"
#include "test_util.h"

// Live bytes allocated through operator new, and their peak: the encoder's
// frames are std::vectors, so this sees them (LibTorch's and FFmpeg's own
// allocators are not counted, which only makes the bound stricter).
namespace {
std::atomic<int64_t> g_live{0}, g_peak{0};
}  // namespace
void* operator new(size_t n) {
  void* p = std::malloc(n + 16);
  if (!p) throw std::bad_alloc();
  *static_cast<size_t*>(p) = n;
  const int64_t live = g_live += int64_t(n);
  int64_t peak = g_peak.load();
  while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {
  }
  return static_cast<char*>(p) + 16;
}
void operator delete(void* p) noexcept {
  if (!p) return;
  char* base = static_cast<char*>(p) - 16;
  g_live -= int64_t(*reinterpret_cast<size_t*>(base));
  std::free(base);
}
void operator delete(void* p, size_t) noexcept { operator delete(p); }

namespace dydca {
namespace {

using detail::SegmentSource;
using detail::SegmentSourceParams;

std::vector<std::pair<int, int>> cut(const std::string& path, int max_frames) {
  auto reader = VideoReader::open(path);
  REQUIRE(reader);
  SegmentSourceParams sp;
  sp.scale = 2;
  sp.max_frames = max_frames;
  SegmentSource src(*reader, sp);
  std::vector<std::pair<int, int>> out;
  while (true) {
    auto next = src.next({});
    REQUIRE(next);
    if (!*next) break;
    CHECK((*next)->index == int(out.size()));
    CHECK((*next)->lr.size() == (*next)->hr.size());
    out.push_back({(*next)->first_frame, (*next)->first_frame + (*next)->frames()});
  }
  return out;
}

TEST_CASE("segments: scene cuts inside a max-length segment, one-frame segments, short clips") {
  const std::string dir = test::temp_dir("segments");
  // synthetic_clip cuts at frames / 2.
  test::write_y4m(dir + "/cut.y4m", synthetic_clip(64, 64, 30));
  using V = std::vector<std::pair<int, int>>;
  // The cut at 15 ends the second segment; the 15 frames after it are one
  // 10-frame piece plus 5 at the end of the input, which join it.
  CHECK(cut(dir + "/cut.y4m", 10) == V{{0, 10}, {10, 15}, {15, 30}});
  CHECK(cut(dir + "/cut.y4m", 6) == V{{0, 6}, {6, 12}, {12, 15}, {15, 21}, {21, 30}});
  CHECK(cut(dir + "/cut.y4m", 100) == V{{0, 15}, {15, 30}});
  auto clip = synthetic_clip(64, 64, 42);  // the first 21 frames have no cut
  clip.resize(21);
  test::write_y4m(dir + "/nocut.y4m", clip);
  // The last frame alone would be a segment: it joins the one before.
  CHECK(cut(dir + "/nocut.y4m", 10) == V{{0, 10}, {10, 21}});
  CHECK(cut(dir + "/nocut.y4m", 7) == V{{0, 7}, {7, 14}, {14, 21}});
  // A cut at the last frame makes a one-frame last segment.
  auto two = synthetic_clip(64, 64, 42);
  std::vector<Frame> last_cut(two.begin(), two.begin() + 20);
  last_cut.push_back(two[30]);
  test::write_y4m(dir + "/lastcut.y4m", last_cut);
  CHECK(cut(dir + "/lastcut.y4m", 10) == V{{0, 10}, {10, 20}, {20, 21}});
  // A clip shorter than one segment.
  CHECK(cut(dir + "/nocut.y4m", 250) == V{{0, 21}});
  clip.resize(1);
  test::write_y4m(dir + "/one.y4m", clip);
  CHECK(cut(dir + "/one.y4m", 250) == V{{0, 1}});
}

TEST_CASE("segments: the segmenter holds at most one segment and its look-ahead") {
  const std::string dir = test::temp_dir("segments_memory");
  auto clip = synthetic_clip(96, 64, 2);
  std::vector<Frame> frames;
  for (int i = 0; i < 300; ++i) frames.push_back(clip[0]);  // one long scene
  test::write_y4m(dir + "/long.y4m", frames);
  frames.clear();
  auto reader = VideoReader::open(dir + "/long.y4m");
  REQUIRE(reader);
  SegmentSourceParams sp;
  sp.max_frames = 8;
  SegmentSource src(*reader, sp);
  const int64_t base = g_live.load();
  g_peak = base;
  int segments = 0;
  while (true) {
    auto next = src.next({});
    REQUIRE(next);
    if (!*next) break;
    ++segments;
  }
  CHECK(segments == 37);  // 300 = 36 * 8 + 12: the last 12 frames, 4 after a full 8, join it
  const int64_t per_frame = SegmentSource::frame_bytes(96, 64, 2);
  const int64_t bound = (2 * 8 + 2 * SegmentSource::kLookahead + 4) * per_frame + (1 << 20);
  INFO("peak extra bytes " << g_peak.load() - base << ", bound " << bound);
  CHECK(g_peak.load() - base < bound);
}

TEST_CASE("downscale: lanczos by default, area or bicubic on request, a bad name is an error") {
  const std::string dir = test::temp_dir("downscale");
  auto clip = synthetic_clip(96, 64, 3);
  test::write_y4m(dir + "/in.y4m", clip);
  auto lr_of = [&](ScaleFilter filter) {
    auto reader = VideoReader::open(dir + "/in.y4m");
    REQUIRE(reader);
    SegmentSourceParams sp;
    sp.filter = filter;
    SegmentSource src(*reader, sp);
    auto next = src.next({});
    REQUIRE(next);
    REQUIRE(*next);
    return (*next)->lr;
  };
  CHECK(SegmentSourceParams{}.filter == ScaleFilter::kLanczos);
  for (ScaleFilter f : {ScaleFilter::kLanczos, ScaleFilter::kArea}) {
    const auto lr = lr_of(f);
    REQUIRE(lr.size() == clip.size());
    for (size_t i = 0; i < clip.size(); ++i) {
      auto want = downscale(clip[i], 2, f);
      REQUIRE(want);
      CHECK(lr[i].y == want->y);
      CHECK(lr[i].u == want->u);
    }
  }
  CHECK(lr_of(ScaleFilter::kLanczos)[0].y != lr_of(ScaleFilter::kArea)[0].y);

  CHECK(*detail::downscale_filter("auto") == ScaleFilter::kLanczos);
  CHECK(*detail::downscale_filter("area") == ScaleFilter::kArea);
  CHECK(*detail::downscale_filter("bicubic") == ScaleFilter::kBicubic);
  EncodeParams p;
  p.input = dir + "/in.y4m";
  p.output = dir + "/out.mkv";
  p.downscale = "box";
  auto r = encode_video(p);
  REQUIRE(!r);
  CHECK(r.status().message().find("--downscale") != std::string::npos);
  CHECK(!std::filesystem::exists(p.output));
}

// Peak live bytes of a whole encode (minimal training): must not grow with
// the number of frames when segments are short.
int64_t encode_peak(const std::string& dir, int frames) {
  auto clip = synthetic_clip(64, 64, 2);
  std::vector<Frame> v(size_t(frames), clip[0]);
  const std::string in = dir + "/in" + std::to_string(frames) + ".y4m";
  test::write_y4m(in, v, {24, 1});
  v.clear();
  EncodeParams p;
  p.input = in;
  p.output = dir + "/out" + std::to_string(frames) + ".mkv";
  p.scale = 2;
  p.train_steps = 1;  // split by duration: one step per segment
  p.segment_seconds = 0.5;      // 12 frames
  p.preset = "ultrafast";
  p.chunks = 2;
  p.threads = 1;
  const int64_t base = g_live.load();
  g_peak = base;
  auto r = encode_video(p);
  REQUIRE_MESSAGE(r, r.status().message());
  CHECK(r->frames == frames);
  CHECK(r->segments.size() == size_t(frames / 12));
  return g_peak.load() - base;
}

TEST_CASE("encoder: memory does not grow with the input's length") {
  const std::string dir = test::temp_dir("encoder_memory");
  const int64_t short_peak = encode_peak(dir, 96);
  const int64_t long_peak = encode_peak(dir, 384);
  INFO("peak live bytes: 96 frames " << short_peak << ", 384 frames " << long_peak);
  CHECK(long_peak < short_peak * 3 / 2);
  auto f = read_dydca_file(dir + "/out384.mkv");
  REQUIRE_MESSAGE(f, f.status().message());
  CHECK(f->video.packets.size() == 384);
}


TEST_CASE("total rate: the video gets what the model and routing leave") {
  using detail::TotalRate;
  TotalRate r(200, 10000);  // 10 kB model: 80 kb over a first 4 s segment = 20 kb/s
  auto v = r.video_kbps(4.0);
  REQUIRE(v);
  CHECK(*v == 200 - 20 - 2);  // routing: 1 % until measured
  // The segment spent 10 % too much video: the next one pays it back.
  r.add(4.0, (*v * 1100 / 8) * 4, 10000, 1000);  // routing 2 kb/s measured
  auto v2 = r.video_kbps(4.0);
  REQUIRE(v2);
  const double update_kbps = 10000 * 8 / 1000.0 / 4;  // the last update's size again
  const double plain = 200 - update_kbps - 2;
  CHECK(*v2 < plain);
  CHECK(*v2 >= int(0.7 * plain));
  // A model the budget cannot pay: a clear error.
  TotalRate tight(20, 10000);
  auto bad = tight.video_kbps(4.0);
  REQUIRE_FALSE(bad);
  CHECK(bad.status().message().find("too low for the model") != std::string::npos);
  // The prediction of a model's size is of the right order for the default x2 network.
  const int64_t predicted = detail::predict_model_bytes(default_arch(2), WeightFormat::kInt8);
  CHECK(predicted > 4000);
  CHECK(predicted < 20000);
  CHECK(detail::predict_model_bytes(default_arch(1), WeightFormat::kInt8) < predicted);
}

// A 352x192 crop of a real sample clip (96 frames): small enough for a
// test, real content. "" when the sample is not fetched.
std::string crop_clip(const std::string& dir, const std::string& name, int x, int y) {
  const std::string src = test::sample(name);
  if (src.empty()) return "";
  const std::string out = dir + "/" + name + ".y4m";
  REQUIRE(test::run("ffmpeg -v error -y -i '" + src + "' -vf crop=352:192:" + std::to_string(x) +
                    ":" + std::to_string(y) + " -frames:v 96 -pix_fmt yuv420p '" + out + "'") == 0);
  return out;
}

EncodeParams quick_params(const std::string& in, const std::string& out) {
  EncodeParams p;
  p.input = in;
  p.output = out;
  p.train_steps = 20;
  p.preset = "veryfast";
  p.chunks = 2;
  p.threads = 2;
  return p;
}

TEST_CASE("total rate: video + model + routing lands within 5 % of --bitrate [samples]") {
  const std::string dir = test::temp_dir("total_rate");
  std::vector<std::string> clips;
  for (auto [name, x, y] : {std::tuple{"cityCC0.mpg", 180, 100}, std::tuple{"cockatoo.mp4", 400, 300}}) {
    const std::string c = crop_clip(dir, name, x, y);
    if (c.empty())
      MESSAGE(name << " not fetched: skipped");
    else
      clips.push_back(c);
  }
  if (clips.empty()) DYDCA_SKIP("cityCC0.mpg and cockatoo.mp4 not fetched (samples/fetch.sh)");
  for (const std::string& clip : clips)
    for (int kbps : {80, 300}) {
      CAPTURE(clip);
      CAPTURE(kbps);
      EncodeParams p = quick_params(clip, dir + "/rate.mkv");
      p.scale = 2;
      p.bitrate_kbps = kbps;
      auto r = encode_video(p);
      REQUIRE_MESSAGE(r, r.status().message());
      const double total = r->video_kbps + r->model_kbps + r->routing_kbps;
      MESSAGE("target " << kbps << " kb/s: video " << r->video_kbps << " + model " << r->model_kbps
                        << " + routing " << r->routing_kbps << " = " << total);
      CHECK(std::fabs(total - kbps) <= 0.05 * kbps);
      CHECK(r->model_kbps > 0);
    }
}

TEST_CASE("a network that does not pay for its bits gives them back to the video [samples]") {
  // cockatoo at 80 kb/s with 20 training steps: the network gains next to
  // nothing over a linear upscaler, while its ~20 kb/s would buy the video
  // most of a dB. The linear upscaler ships (a few hundred bytes), x264 gets
  // the bits, the total still lands on the target, and the result is at
  // least as good as shipping the network.
  const std::string dir = test::temp_dir("must_pay");
  const std::string clip = crop_clip(dir, "cockatoo.mp4", 400, 300);
  if (clip.empty()) DYDCA_SKIP("cockatoo.mp4 not fetched (samples/fetch.sh)");
  EncodeParams p = quick_params(clip, dir + "/pay.mkv");
  p.scale = 2;
  p.bitrate_kbps = 80;
  auto paid = encode_video(p);
  REQUIRE_MESSAGE(paid, paid.status().message());
  p.model_must_pay = false;
  p.output = dir + "/network.mkv";
  auto net = encode_video(p);
  REQUIRE_MESSAGE(net, net.status().message());
  REQUIRE(paid->segments.size() == 1);
  CHECK(paid->segments[0].linear_only);
  CHECK_FALSE(net->segments[0].linear_only);
  CHECK(paid->segments[0].model_bytes < 1000);
  CHECK(paid->video_kbps > net->video_kbps + 10);
  const double total = paid->video_kbps + paid->model_kbps + paid->routing_kbps;
  CHECK(std::fabs(total - 80) <= 0.05 * 80);
  MESSAGE("network " << net->levels[0].psnr_y << " dB at " << net->video_kbps << " kb/s video; "
                     << "linear upscaler " << paid->levels[0].psnr_y << " dB at "
                     << paid->video_kbps);
  CHECK(paid->levels[0].psnr_y >= net->levels[0].psnr_y);
}

struct X264Point {
  double kbps = 0, psnr_y = 0;
};

// x264 at the full size (2-pass, same preset) on a clip.
X264Point x264_full_size(const std::vector<Frame>& frames, Rational fps, int kbps,
                         const std::string& preset) {
  X264Config xc;
  xc.preset = preset;
  xc.bitrate_kbps = kbps;
  xc.two_pass = true;
  xc.threads = 2;
  auto enc = encode_h264(frames, fps, xc);
  REQUIRE(enc);
  auto dec = decode_h264(*enc);
  REQUIRE(dec);
  auto q = compare_clips(frames, *dec, false);
  REQUIRE(q);
  return {enc->total_bytes() * 8 / 1000.0 / (frames.size() / fps.to_double()), q->psnr_y};
}

// x264 at the full size at `kbps`, read off x264's own RD curve between two
// encodes around it (linear in log rate).
double x264_at_rate(const std::vector<Frame>& frames, Rational fps, double kbps,
                    const std::string& preset) {
  const X264Point a = x264_full_size(frames, fps, int(kbps * 0.92), preset);
  const X264Point b = x264_full_size(frames, fps, int(kbps * 1.08) + 1, preset);
  const double t = std::log(kbps / a.kbps) / std::log(b.kbps / a.kbps);
  return a.psnr_y + t * (b.psnr_y - a.psnr_y);
}

TEST_CASE("scale auto: full size at a high rate, x2 at a low rate, never worse than x264 [samples]") {
  const std::string dir = test::temp_dir("scale_auto");
  const std::string city = crop_clip(dir, "cityCC0.mpg", 180, 100);
  if (city.empty()) DYDCA_SKIP("cityCC0.mpg not fetched (samples/fetch.sh)");
  VideoInfo info;
  auto frames = read_all_frames(city, &info);
  REQUIRE(frames);
  struct Case {
    int kbps;
    bool low;
  };
  for (Case c : {Case{20, true}, Case{900, false}}) {
    CAPTURE(c.kbps);
    EncodeParams p = quick_params(city, dir + "/auto.mkv");
    p.scale = 0;
    p.scale_candidates = {1, 2};
    p.bitrate_kbps = c.kbps;
    // A small network, so that a 4-second clip can pay for its model.
    p.arch.channels = p.arch.inner = 8;
    p.arch.blocks = 1;
    p.arch.paths = {{0, 0}, {1, 8}};
    auto r = encode_video(p);
    REQUIRE_MESSAGE(r, r.status().message());
    MESSAGE(report_text(*r));
    // x264, x2 linear, then the networks of x1 and x2 (the second only when
    // its base is close enough to the best).
    CHECK(r->scale_trials.size() >= 3);
    CHECK(!r->scale_decision.empty());
    if (c.low)
      CHECK(r->scale >= 2);
    else
      CHECK(r->scale == 1);  // x1 post-filter or plain x264 at the full size
    // Never worse: x264 at the full size at the same total bits, read off
    // x264's own RD curve between two encodes around dydca's total.
    const double total = r->video_kbps + r->model_kbps + r->routing_kbps;
    const double x264 = x264_at_rate(*frames, info.frame_rate, total, p.preset);
    MESSAGE("dydca " << r->levels[0].psnr_y << " dB at " << total << " kb/s; x264 " << x264
                     << " dB there");
    CHECK(r->levels[0].psnr_y >= x264 - 0.05);
    auto f = read_dydca_file(p.output);
    REQUIRE_MESSAGE(f, f.status().message());
  }
}

TEST_CASE("scale auto: a scale whose network cannot pay is tried with its linear upscaler [samples]") {
  // At 20 kb/s the default network alone (~10 kB on a 4-second clip, 22
  // kb/s) takes more than half the rate: x2 is tried, and chosen, without a
  // network (before, it was not tried at all and plain x264 shipped).
  const std::string dir = test::temp_dir("scale_linear");
  const std::string city = crop_clip(dir, "cityCC0.mpg", 180, 100);
  if (city.empty()) DYDCA_SKIP("cityCC0.mpg not fetched (samples/fetch.sh)");
  VideoInfo info;
  auto frames = read_all_frames(city, &info);
  REQUIRE(frames);
  EncodeParams p = quick_params(city, dir + "/linear.mkv");
  p.scale = 0;
  p.scale_candidates = {2};
  p.bitrate_kbps = 20;
  auto r = encode_video(p);
  REQUIRE_MESSAGE(r, r.status().message());
  MESSAGE(report_text(*r));
  // x264, x2 linear from the lanczos-downscaled LR, then from the area one.
  REQUIRE(r->scale_trials.size() == 3);
  for (int i : {1, 2}) {
    CHECK(r->scale_trials[size_t(i)].scale == 2);
    CHECK(r->scale_trials[size_t(i)].linear);
  }
  CHECK(r->scale_trials[1].downscale == "lanczos");
  CHECK(r->scale_trials[2].downscale == "area");
  // The title's filter is the better trial's (compared at the target rate
  // along the same slope as the trials).
  auto at_target = [&](const ScaleTrial& t) {
    return t.psnr_y + detail::kDbPerDoubling * std::log2(20.0 / t.total_kbps);
  };
  CHECK(r->downscale == (at_target(r->scale_trials[2]) > at_target(r->scale_trials[1])
                             ? "area"
                             : "lanczos"));
  CHECK(r->scale_decision.find("linear upscaler") != std::string::npos);
  REQUIRE(r->scale == 2);
  CHECK(r->train_steps == 0);
  for (const SegmentReport& g : r->segments) {
    CHECK(g.linear_only);
    CHECK(g.model_bytes < 600);
  }
  const double total = r->video_kbps + r->model_kbps + r->routing_kbps;
  CHECK(std::fabs(total - 20) <= 0.05 * 20);
  const double x264 = x264_at_rate(*frames, info.frame_rate, total, p.preset);
  MESSAGE("dydca x2 linear " << r->levels[0].psnr_y << " dB at " << total << " kb/s; x264 "
                             << x264 << " dB there");
  CHECK(r->levels[0].psnr_y >= x264 - 0.05);
  auto f = read_dydca_file(p.output);
  REQUIRE_MESSAGE(f, f.status().message());

  // A fixed x2 at that rate ships the linear upscaler too (it used to fail:
  // "too low for the model at this scale").
  p.scale = 2;
  p.output = dir + "/fixed.mkv";
  auto fixed = encode_video(p);
  REQUIRE_MESSAGE(fixed, fixed.status().message());
  CHECK(fixed->train_steps == 0);
  REQUIRE(fixed->segments.size() == 1);
  CHECK(fixed->segments[0].linear_only);
  const double fixed_total = fixed->video_kbps + fixed->model_kbps + fixed->routing_kbps;
  CHECK(std::fabs(fixed_total - 20) <= 0.05 * 20);
  CHECK(fixed->levels[0].psnr_y >= x264 - 0.05);
}

}  // namespace
}  // namespace dydca
