// The segmented encoder's stages: segment boundaries from the streaming
// segmenter, and memory that does not grow with the input's length.
#include <atomic>
#include <cstdlib>
#include <new>

#include <doctest/doctest.h>

#include "dydca/container.h"
#include "dydca/encoder.h"
#include "dydca/synthetic.h"
#include "segment_source.h"
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

}  // namespace
}  // namespace dydca
