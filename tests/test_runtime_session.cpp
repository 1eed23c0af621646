// Model apart from state (issue 18): one SrModel shared by sessions on one
// worker pool from several threads, a session running several models, the
// errors of the three objects; and FrameUpscaler, the client's frame: chroma
// = bicubic resize, luma by the level rule, several models stitched per tile.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "dydca/runtime.h"
#include "dydca/runtime_frame.h"
#include "test_util.h"

using namespace dydca;
using dydca::test::random_model;

long test_allocations();  // test_runtime.cpp's operator new counter

namespace {

std::vector<uint8_t> noise_plane(int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> p(size_t(w) * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      p[size_t(y) * w + x] = uint8_t(std::clamp(int(x * 3 + y * 2) % 256 + int(rng() % 41) - 20, 0, 255));
  return p;
}

Frame noise_frame(int w, int h, uint32_t seed) {
  Frame f = Frame::blank(w, h);
  f.y = noise_plane(w, h, seed);
  f.u = noise_plane(f.chroma_width(), f.chroma_height(), seed + 1);
  f.v = noise_plane(f.chroma_width(), f.chroma_height(), seed + 2);
  return f;
}

std::shared_ptr<const SrModel> plan(const Model& m, const ModelOptions& o = {}) {
  auto p = SrModel::create(m, o);
  REQUIRE_MESSAGE(p.has_value(), (p ? std::string() : p.error_message()));
  return *p;
}

std::shared_ptr<WorkerPool> make_pool(int threads) {
  auto p = WorkerPool::create(threads);
  REQUIRE(p.has_value());
  return *p;
}

SrSession make_session(std::shared_ptr<WorkerPool> pool, int tile) {
  SessionOptions o;
  o.tile_size = tile;
  o.max_lr_width = 64;
  o.max_lr_height = 64;
  auto s = SrSession::create(std::move(pool), o);
  REQUIRE(s.has_value());
  return std::move(*s);
}

// The whole-frame output of one path through the convenience runtime.
std::vector<uint8_t> reference(const Model& m, const std::vector<uint8_t>& lr, int w, int h,
                               int path, const ModelOptions& mo = {}, int tile = 16) {
  RuntimeOptions o;
  o.tile_size = tile;
  o.threads = 1;
  o.simd = mo.simd;
  o.precision = mo.precision;
  auto rt = SrRuntime::create(m, o);
  REQUIRE(rt.has_value());
  const int s = rt->scale();
  std::vector<uint8_t> hr(size_t(w) * s * h * s);
  REQUIRE(rt->upscale_luma(lr.data(), w, h, w, hr.data(), w * s, path).is_ok());
  return hr;
}

RoutingMap make_routing(int w, int h, int tile, int frames, std::vector<std::vector<uint8_t>> table,
                        uint32_t seed) {
  return test::random_routing(tile, w, h, frames, std::move(table), seed);
}

// A model with int8 activation scales when this CPU runs int8 (else as is).
Model with_act_scales(Model m, int w, int h) {
  if (best_simd_level() == SimdLevel::kNone) return m;
  const std::vector<uint8_t> plane = noise_plane(w, h, 99);
  auto act = calibrate_act_scales(m, {LumaView{plane.data(), w, h, w}});
  REQUIRE(act.has_value());
  m.act = *act;
  return m;
}

}  // namespace

TEST_CASE("one SrModel, sessions on one pool from two threads: the bits of SrRuntime") {
  const int w = 61, h = 45;
  const Model m = random_model(2, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 5);
  const std::vector<std::vector<uint8_t>> lr = {noise_plane(w, h, 1), noise_plane(w, h, 2)};
  std::vector<std::vector<std::vector<uint8_t>>> want(2);
  for (int c = 0; c < 2; ++c)
    for (int p = 0; p < 3; ++p) want[size_t(c)].push_back(reference(m, lr[size_t(c)], w, h, p));

  const auto model = plan(m);
  const auto pool = make_pool(3);
  CHECK(pool->threads() == 3);
  std::atomic<int> mismatches{0}, failures{0};
  auto caller = [&](int c) {
    auto session = SrSession::create(pool, SessionOptions{16, 2, 1, 64, 64});
    if (!session) return void(failures.fetch_add(1));
    std::vector<uint8_t> hr(size_t(w) * 2 * h * 2);
    for (int it = 0; it < 12; ++it)
      for (int p = 0; p < 3; ++p) {
        std::fill(hr.begin(), hr.end(), uint8_t(0xAB));
        if (!session->upscale_luma(*model, lr[size_t(c)].data(), w, h, w, hr.data(), w * 2, p))
          failures.fetch_add(1);
        else if (hr != want[size_t(c)][size_t(p)])
          mismatches.fetch_add(1);
      }
  };
  std::thread t0(caller, 0), t1(caller, 1);
  t0.join();
  t1.join();
  CHECK(failures.load() == 0);
  CHECK(mismatches.load() == 0);

  // A session without a pool runs on the caller's thread alone: same bits.
  SrSession alone = make_session(nullptr, 16);
  CHECK(alone.threads() == 1);
  std::vector<uint8_t> hr(size_t(w) * 2 * h * 2);
  REQUIRE(alone.upscale_luma(*model, lr[0].data(), w, h, w, hr.data(), w * 2, 2).is_ok());
  CHECK(hr == want[0][2]);
  CHECK(model.use_count() == 1);  // sessions hold no reference to a model
}

TEST_CASE("a session runs several models: arenas grow, outputs equal fresh runtimes, no allocation after") {
  const int w = 57, h = 40;
  std::vector<Model> models = {
      random_model(2, 8, 8, 1, {{0, 0}, {1, 8}}, 3),
      random_model(2, 32, 32, 4, {{0, 0}, {2, 16}, {4, 32}}, 4),
  };
  models.push_back(with_act_scales(models[1], w, h));  // int8 when the CPU runs it
  const std::vector<uint8_t> lr = noise_plane(w, h, 7);
  std::vector<std::shared_ptr<const SrModel>> planned;
  std::vector<std::vector<uint8_t>> want;
  for (const Model& m : models) {
    planned.push_back(plan(m));
    want.push_back(reference(m, lr, w, h, int(m.arch.paths.size()) - 1));
  }
  SrSession session = make_session(make_pool(2), 16);
  CHECK(session.memory_bytes() == 0);  // nothing until a model runs (or reserve())
  std::vector<uint8_t> hr(size_t(w) * 2 * h * 2);
  for (int round = 0; round < 2; ++round) {
    const long before = test_allocations();
    for (size_t i : {0, 1, 0, 2, 1}) {
      REQUIRE(session.upscale_luma(*planned[i], lr.data(), w, h, w, hr.data(), w * 2,
                                   planned[i]->num_paths() - 1)
                  .is_ok());
      CHECK(hr == want[i]);
    }
    if (round == 1) CHECK(test_allocations() == before);
  }
  CHECK(session.memory_bytes() > 0);
  // reserve() sizes for a model up front: its first frame then allocates nothing.
  SrSession fresh = make_session(nullptr, 16);
  fresh.reserve(*planned[1]);
  const long before = test_allocations();
  REQUIRE(fresh.upscale_luma(*planned[1], lr.data(), w, h, w, hr.data(), w * 2, 2).is_ok());
  CHECK(hr == want[1]);
  // (the tile path list of the single-path overload was reserved at create)
  CHECK(test_allocations() == before);
}

TEST_CASE("SrModel, WorkerPool, SrSession: errors and the level rule") {
  CHECK_FALSE(WorkerPool::create(-1).has_value());
  CHECK_FALSE(WorkerPool::create(257).has_value());
  CHECK(make_pool(0)->threads() >= 1);
  SessionOptions bad;
  bad.tile_size = 0;
  auto s = SrSession::create(nullptr, bad);
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error_message().find("tile size") != std::string::npos);
  Model m = random_model(2, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 1);
  Model broken = m;
  broken.tensors[0].data.pop_back();
  auto e = SrModel::create(broken);
  REQUIRE_FALSE(e.has_value());
  CHECK(e.error_message().find("head.weight") != std::string::npos);
  ModelOptions int8;
  int8.precision = Precision::kInt8;
  CHECK(SrModel::create(m, int8).status().code() == StatusCode::kUnsupported);

  const auto model = plan(m);
  SrSession session = make_session(nullptr, 16);
  std::vector<uint8_t> paths;
  // Static model: level l runs the l-th richest path (the last is the richest).
  REQUIRE(session.level_tile_paths(*model, nullptr, 0, 0, 40, 20, &paths).is_ok());
  CHECK(paths == std::vector<uint8_t>(3 * 2, 2));
  REQUIRE(session.level_tile_paths(*model, nullptr, 0, 1, 40, 20, &paths).is_ok());
  CHECK(paths == std::vector<uint8_t>(6, 1));
  REQUIRE(session.level_tile_paths(*model, nullptr, 0, 9, 40, 20, &paths).is_ok());
  CHECK(paths == std::vector<uint8_t>(6, 0));
  CHECK_FALSE(session.level_tile_paths(*model, nullptr, 0, -1, 40, 20, &paths).is_ok());
  // With a routing map: its tables; the tile size must be the session's.
  RoutingMap r = make_routing(40, 20, 16, 2, {{2, 1}, {0, 0}}, 3);
  REQUIRE(session.level_tile_paths(*model, &r, 1, 0, 40, 20, &paths).is_ok());
  for (size_t i = 0; i < paths.size(); ++i)
    CHECK(paths[i] == r.chunk_path[0][r.chunk_ids[6 + i]]);
  RoutingMap other = r;
  other.tile_size = 8;
  CHECK_FALSE(session.level_tile_paths(*model, &other, 0, 0, 40, 20, &paths).is_ok());
  CHECK_FALSE(routing_tile_paths(r, 2, 0, 3, &paths).is_ok());  // frame
  CHECK_FALSE(routing_tile_paths(r, 0, 2, 3, &paths).is_ok());  // level
  CHECK_FALSE(routing_tile_paths(r, 0, 0, 2, &paths).is_ok());  // path 2 of a 2-path model
}

TEST_CASE("FrameUpscaler: chroma = bicubic resize, luma = the session at the level, pts kept") {
  const int w = 50, h = 34;
  const Model m = random_model(2, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 55);
  const auto model = plan(m);
  const RoutingMap r = make_routing(w, h, 16, 2, {{2, 1, 0}, {1, 0, 0}}, 8);
  auto fu = FrameUpscaler::create(w, h, 2, make_pool(2), SessionOptions{16, 4, 4, w, h});
  REQUIRE(fu.has_value());
  CHECK(fu->scale() == 2);
  Frame lr = noise_frame(w, h, 4);
  lr.pts = 42;
  RuntimeOptions ro;
  ro.tile_size = 16;
  ro.threads = 1;
  auto rt = SrRuntime::create(m, ro);
  REQUIRE(rt.has_value());
  Frame hr;
  auto expect = [&](const RoutingMap* routing, int frame, int level) {
    auto want = resize(lr, 2 * w, 2 * h, ScaleFilter::kBicubic);
    REQUIRE(want.has_value());
    if (routing)
      REQUIRE(rt->upscale_luma(lr.y.data(), w, h, w, want->y.data(), 2 * w, *routing, frame, level).is_ok());
    else
      REQUIRE(rt->upscale_luma(lr.y.data(), w, h, w, want->y.data(), 2 * w,
                               std::max(0, 2 - level)).is_ok());
    CHECK(hr.width == 2 * w);
    CHECK(hr.height == 2 * h);
    CHECK(hr.pts == 42);
    CHECK(hr.y == want->y);
    CHECK(hr.u == want->u);
    CHECK(hr.v == want->v);
  };
  for (int frame = 0; frame < 2; ++frame)
    for (int level = 0; level < 2; ++level) {
      REQUIRE(fu->upscale(*model, lr, hr, &r, frame, level).is_ok());
      expect(&r, frame, level);
    }
  for (int level : {0, 1, 2, 7}) {
    REQUIRE(fu->upscale(*model, lr, hr, nullptr, 0, level).is_ok());
    expect(nullptr, 0, level);
  }
  // A map with another tile size: the session follows it.
  const RoutingMap r8 = make_routing(w, h, 8, 1, {{2, 0, 1}}, 9);
  REQUIRE(fu->upscale(*model, lr, hr, &r8, 0, 0).is_ok());
  CHECK(fu->session().tile_size() == 8);
  {
    RuntimeOptions o8 = ro;
    o8.tile_size = 8;
    auto rt8 = SrRuntime::create(m, o8);
    REQUIRE(rt8.has_value());
    std::vector<uint8_t> want(hr.y.size());
    REQUIRE(rt8->upscale_luma(lr.y.data(), w, h, w, want.data(), 2 * w, r8, 0, 0).is_ok());
    CHECK(hr.y == want);
  }
  // Errors: another LR size, a x3 model on a x2 upscaler, an HR frame of the wrong size.
  CHECK_FALSE(fu->upscale(*model, noise_frame(w, h + 2, 1), hr, nullptr, 0, 0).is_ok());
  const auto x3 = plan(random_model(3, 8, 8, 1, {{0, 0}, {1, 8}}, 2));
  CHECK_FALSE(fu->upscale(*x3, lr, hr, nullptr, 0, 0).is_ok());
  Frame small = Frame::blank(w, h);
  CHECK_FALSE(fu->luma(*model, lr, small, nullptr, 0, 0).is_ok());
  // Scale 1 is a copy.
  auto copy = BicubicUpscaler::create(w, h, 1);
  REQUIRE(copy.has_value());
  Frame same;
  REQUIRE(copy->run(lr, same).is_ok());
  CHECK((same.y == lr.y && same.u == lr.u && same.v == lr.v && same.pts == 42));
}

TEST_CASE("FrameUpscaler stitches several models: each tile is its model's whole-frame output") {
  const int w = 70, h = 45, tile = 16, s = 2;
  // Baseline-like single-path models, a dynamic one, and an int8 one.
  std::vector<Model> models = {
      random_model(s, 16, 16, 2, {{2, 16}}, 21),
      random_model(s, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 22),
      with_act_scales(random_model(s, 16, 16, 2, {{0, 0}, {2, 16}}, 23), w, h),
  };
  std::vector<std::shared_ptr<const SrModel>> planned;
  std::vector<const SrModel*> ptrs;
  for (const Model& m : models) {
    planned.push_back(*stitch_model(m));
    ptrs.push_back(planned.back().get());
    CHECK(planned.back()->num_paths() == 2);  // the global path, then the richest
    CHECK(planned.back()->arch().paths[0].width == 0);
    CHECK(planned.back()->arch().paths[1].width == m.arch.paths.back().width);
  }
  CHECK(planned[2]->precision() == (best_simd_level() == SimdLevel::kNone ? Precision::kFp32
                                                                           : Precision::kInt8));
  const Frame lr = noise_frame(w, h, 5);
  std::vector<std::vector<uint8_t>> whole;
  for (const Model& m : models)
    whole.push_back(reference(m, lr.y, w, h, int(m.arch.paths.size()) - 1));

  // Chunks 0..3 -> models {2, 0, 1, 0} at level 0, all model 1 at level 1.
  const RoutingMap r = make_routing(w, h, tile, 3, {{2, 0, 1, 0}, {1, 1, 1, 1}}, 31);
  auto fu = FrameUpscaler::create(w, h, s, make_pool(2), SessionOptions{tile, 4, 4, w, h});
  REQUIRE(fu.has_value());
  Frame hr;
  auto bicubic = resize(lr, w * s, h * s, ScaleFilter::kBicubic);
  REQUIRE(bicubic.has_value());
  // Each tile of each frame: 0 = equal to its model's whole-frame output.
  std::vector<int> wrong;
  wrong.reserve(64);
  bool chroma_ok = true;
  for (int round = 0; round < 2; ++round) {
    const long before = test_allocations();
    for (int frame = 0; frame < 3; ++frame) {
      REQUIRE(fu->upscale(ptrs, lr, hr, r, frame, 0).is_ok());
      for (int ty = 0; ty < r.tiles_y(); ++ty)
        for (int tx = 0; tx < r.tiles_x(); ++tx) {
          const uint8_t mi = r.chunk_path[0][r.chunk(frame, tx, ty)];
          const int x0 = tx * tile * s, x1 = std::min(w * s, (tx + 1) * tile * s);
          bool same = true;
          for (int y = ty * tile * s; y < std::min(h * s, (ty + 1) * tile * s); ++y)
            same = same && std::memcmp(hr.y.data() + size_t(y) * w * s + x0,
                                       whole[mi].data() + size_t(y) * w * s + x0,
                                       size_t(x1 - x0)) == 0;
          if (!same && wrong.size() < wrong.capacity()) wrong.push_back(frame * 1000 + ty * 100 + tx);
        }
      chroma_ok = chroma_ok && hr.u == bicubic->u && hr.v == bicubic->v;
    }
    if (round == 1) CHECK(test_allocations() == before);  // no allocation per frame
  }
  CHECK(wrong.empty());  // frame*1000 + ty*100 + tx of tiles that differ
  CHECK(chroma_ok);
  // A frame one model owns runs straight into the output.
  REQUIRE(fu->upscale(ptrs, lr, hr, r, 1, 1).is_ok());
  CHECK(hr.y == whole[1]);
  // Models no tile uses may be absent; a used one may not.
  std::vector<const SrModel*> partial = {nullptr, ptrs[1], nullptr};
  REQUIRE(fu->upscale(partial, lr, hr, r, 0, 1).is_ok());
  CHECK(hr.y == whole[1]);
  auto missing = fu->upscale(partial, lr, hr, r, 0, 0);
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.message().find("not loaded") != std::string::npos);
  CHECK_FALSE(fu->luma_tiles(ptrs, std::vector<uint8_t>(3, 0), lr, hr).is_ok());  // tile count
}
