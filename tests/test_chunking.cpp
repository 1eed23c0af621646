// Chunking: scene cuts, tile features, clustering (k-means and quantiles), path
// and QoS tables, routing smoothing, balanced sampler with halos, chunk map PNG.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "dydca/chunking.h"
#include "dydca/synthetic.h"
#include "test_util.h"

using namespace dydca;

namespace {

struct Clip {
  std::vector<Frame> hr, lr;
};

// synthetic_clip at HR, area-downscaled LR (no x264: keeps the suite fast; one
// case below runs the codec round trip).
Clip make_clip(int w, int h, int frames, int scale = 2) {
  Clip c;
  c.hr = synthetic_clip(w, h, frames);
  for (auto& f : c.hr) {
    f = pad_to_multiple(f, 2 * scale);
    auto lr = downscale(f, scale, ScaleFilter::kArea);
    REQUIRE(lr);
    c.lr.push_back(std::move(*lr));
  }
  return c;
}

ModelArch four_paths() {
  ModelArch a;
  a.scale = 2;
  a.paths = {{0, 0}, {1, 16}, {2, 24}, {4, 32}};
  return a;
}

}  // namespace

TEST_CASE("scene cut found at frames/2 of the synthetic clip") {
  Clip c = make_clip(256, 144, 24);
  std::vector<double> scores;
  auto seg = detect_segments(c.lr, {}, &scores);
  REQUIRE(seg);
  REQUIRE(seg->size() == 2);
  CHECK((*seg)[0] == Segment{0, 12});
  CHECK((*seg)[1] == Segment{12, 24});
  CHECK(scores[12] > 0.35);
  for (int i = 1; i < 24; ++i)
    if (i != 12) CHECK(scores[size_t(i)] < 0.2);

  // max_length splits long scenes; the cut stays a boundary.
  SceneCutParams p;
  p.max_length = 5;
  auto split = detect_segments(c.lr, p);
  REQUIRE(split);
  std::set<int> starts;
  int covered = 0;
  for (const auto& s : *split) {
    CHECK(s.length() <= 5);
    CHECK(s.length() >= 1);
    CHECK(s.start == covered);
    covered = s.end;
    starts.insert(s.start);
  }
  CHECK(covered == 24);
  CHECK(starts.count(12) == 1);

  // A single still frame, and errors.
  auto one = detect_segments({c.lr[0]});
  REQUIRE(one);
  CHECK(one->size() == 1);
  p.max_length = 0;
  CHECK_FALSE(detect_segments(c.lr, p));
}

TEST_CASE("tile grid cuts edge tiles short") {
  TileGrid g{32, 100, 70};
  CHECK(g.tiles_x() == 4);
  CHECK(g.tiles_y() == 3);
  TileRect r = g.rect(g.count() - 1);
  CHECK(r.x == 96);
  CHECK(r.y == 64);
  CHECK(r.width == 4);
  CHECK(r.height == 6);
}

TEST_CASE("tile features: flat sky is easy, texture is hard, temporal sees the pan") {
  Clip c = make_clip(256, 256, 8);
  auto seg = detect_segments(c.lr);
  REQUIRE(seg);
  FeatureParams fp;
  fp.tile_size = 16;
  auto feats = compute_tile_features(c.hr, c.lr, *seg, fp);
  REQUIRE(feats);
  CHECK(feats->grid.tiles_x() == 8);
  CHECK(feats->tiles.size() == size_t(8 * 64));
  // Frame 1: sky tile (0,0) vs texture tile (1,3).
  const TileFeatures& sky = feats->at(1, 0);
  const TileFeatures& tex = feats->at(1, 3 * 8 + 1);
  CHECK(sky.bicubic_psnr > tex.bicubic_psnr + 10);
  CHECK(sky.gradient < tex.gradient);
  CHECK(sky.laplacian < tex.laplacian);
  CHECK(sky.temporal < tex.temporal);
  // Mismatched inputs are errors, not crashes.
  std::vector<Frame> short_lr(c.lr.begin(), c.lr.begin() + 3);
  CHECK_FALSE(compute_tile_features(c.hr, short_lr, {}, fp));
  fp.scale = 3;
  CHECK_FALSE(compute_tile_features(c.hr, c.lr, *seg, fp));
}

TEST_CASE("chunking is deterministic and separates sky from texture") {
  Clip c = make_clip(256, 256, 8);
  ChunkingParams p;
  p.tile_size = 16;
  for (ClusterMethod m : {ClusterMethod::kKMeans, ClusterMethod::kPsnrQuantiles}) {
    CAPTURE(int(m));
    p.cluster.method = m;
    auto a = chunk_video(c.hr, c.lr, p);
    auto b = chunk_video(c.hr, c.lr, p);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->routing.chunk_ids == b->routing.chunk_ids);
    CHECK(a->clustering.chunk_ids == b->clustering.chunk_ids);
    CHECK(a->routing.num_chunks == 4);
    CHECK(a->segments.size() == 2);
    // Chunks ordered easy -> hard.
    for (int k = 1; k < a->clustering.num_chunks; ++k)
      CHECK(a->clustering.chunks[size_t(k - 1)].mean_bicubic_psnr >=
            a->clustering.chunks[size_t(k)].mean_bicubic_psnr);
    int64_t total = 0;
    for (auto n : a->chunk_tiles) total += n;
    CHECK(total == int64_t(a->routing.chunk_ids.size()));

    // First scene, LR 128x128 in 16-pixel tiles: sky = LR rows 0..31 (tile rows 0-1; row 1
    // touches the texture's edge, which bicubic feels), moving texture = tile rows 2+ and
    // columns 0-3, text glyphs = columns 4-7.
    std::set<int> sky_top, sky, texture, glyphs;
    for (int f = 0; f < 4; ++f)
      for (int ty = 0; ty < 8; ++ty)
        for (int tx = 0; tx < 8; ++tx) {
          const int id = a->routing.chunk(f, tx, ty);
          if (ty == 0) sky_top.insert(id);
          if (ty < 2)
            sky.insert(id);
          else if (tx < 4)
            texture.insert(id);
          else
            glyphs.insert(id);
        }
    CHECK(sky_top == std::set<int>{0});                         // flat sky: the easiest chunk
    CHECK(glyphs == std::set<int>{a->routing.num_chunks - 1});  // sharp text: the hardest
    // k-means keeps sky and texture apart; the PSNR-only quantile rule may put the easiest
    // texture tiles (30.8 dB) into the top bin with the sky (57 dB) on this clip.
    if (m == ClusterMethod::kKMeans)
      for (int id : sky) CHECK(texture.count(id) == 0);
  }
  // A different seed may change k-means' ids but must still be deterministic.
  p.cluster.method = ClusterMethod::kKMeans;
  p.cluster.seed = 7;
  auto s1 = chunk_video(c.hr, c.lr, p);
  auto s2 = chunk_video(c.hr, c.lr, p);
  REQUIRE(s1);
  REQUIRE(s2);
  CHECK(s1->routing.chunk_ids == s2->routing.chunk_ids);
}

TEST_CASE("clustering merges chunks when the video has too little variety") {
  // A flat grey clip: every tile has the same features -> one chunk.
  std::vector<Frame> hr(3, Frame::blank(128, 64, 100)), lr(3, Frame::blank(64, 32, 100));
  ChunkingParams p;
  p.tile_size = 16;
  p.cluster.chunks = 4;
  for (ClusterMethod m : {ClusterMethod::kKMeans, ClusterMethod::kPsnrQuantiles}) {
    p.cluster.method = m;
    auto r = chunk_video(hr, lr, p);
    REQUIRE(r);
    CHECK(r->routing.num_chunks == 1);
    CHECK(r->chunk_tiles == std::vector<int64_t>{3 * 8});
  }
  p.cluster.chunks = 0;
  CHECK_FALSE(chunk_video(hr, lr, p));
}

TEST_CASE("chunking on codec-decoded LR (x264 round trip)") {
  Clip c = make_clip(256, 256, 8);
  auto enc = encode_h264(c.lr, {25, 1}, X264Config{"veryfast", "", 23});
  REQUIRE(enc);
  auto dec = decode_h264(*enc);
  REQUIRE(dec);
  REQUIRE(dec->size() == c.lr.size());
  ChunkingParams p;
  p.tile_size = 16;
  auto r = chunk_video(c.hr, *dec, p);
  REQUIRE(r);
  CHECK(r->segments.size() == 2);
  CHECK(r->routing.num_chunks >= 3);
  CHECK(r->routing.chunk(1, 0, 0) == 0);  // sky still the easiest chunk
}

TEST_CASE("one MAC count: per path, per routed table, and the static level rule") {
  ModelArch arch = four_paths();  // C32 E32 N4, x2
  CHECK(arch.macs_per_lr_pixel(0) == 4 * 25);  // the 5x5 skip alone
  // head 9w + blocks d*2*w*e*9 + tail 4*9w + skip 100, e = w here.
  CHECK(arch.macs_per_lr_pixel(1) == 9 * 16 + 2 * 16 * 16 * 9 + 4 * 9 * 16 + 100);
  CHECK(arch.macs_per_hr_pixel(1) == doctest::Approx(arch.macs_per_lr_pixel(1) / 4.0));
  // Chunk 2 names a path the model lacks: it counts in neither sum.
  const std::vector<uint8_t> table{0, 3, 9};
  const RoutedMacs r = routed_macs(arch, table, {10, 30, 1000});
  CHECK(r.macs == 10 * arch.macs_per_lr_pixel(0) + 30 * arch.macs_per_lr_pixel(3));
  CHECK(r.weight == 40);
  CHECK(mean_macs_per_lr_pixel(table, {10, 30, 1000}, arch) == doctest::Approx(r.mean()));
  CHECK(routed_macs(arch, table, {}).mean() == 0);
  // A model without routing: level 0 = the richest path, the last = path 0.
  CHECK(static_level_path(4, 0) == 3);
  CHECK(static_level_path(4, 3) == 0);
  CHECK(static_level_path(4, 7) == 0);
  CHECK(static_level_path(4, -1) == 3);
  CHECK(static_level_path(1, 0) == 0);
}

TEST_CASE("path assignment and QoS tables are monotone") {
  ModelArch arch = four_paths();
  for (int k = 1; k <= 8; ++k) {
    CAPTURE(k);
    auto t = assign_paths(k, arch);
    REQUIRE(t);
    REQUIRE(t->size() == size_t(k));
    for (int c = 1; c < k; ++c) CHECK((*t)[size_t(c)] >= (*t)[size_t(c - 1)]);
    CHECK(t->back() == 3);  // the hardest chunk gets the richest path
    if (k > 1) CHECK(t->front() == 0);
    for (int levels : {0, 2, 3, 6}) {
      auto q = qos_level_tables(*t, arch, levels);
      REQUIRE(q);
      CHECK(q->front() == *t);
      if (levels) CHECK(int(q->size()) == levels);
      for (uint8_t p : q->back()) CHECK(p == 0);  // the last level: all on the cheapest
      std::vector<int64_t> tiles(size_t(k), 10);
      for (size_t l = 1; l < q->size(); ++l) {
        for (int c = 0; c < k; ++c) CHECK((*q)[l][size_t(c)] <= (*q)[l - 1][size_t(c)]);
        CHECK(mean_macs_per_lr_pixel((*q)[l], tiles, arch) <=
              mean_macs_per_lr_pixel((*q)[l - 1], tiles, arch));
      }
    }
  }
  CHECK(*assign_paths(4, arch) == std::vector<uint8_t>{0, 1, 2, 3});
  CHECK(*assign_paths(3, arch) == std::vector<uint8_t>{0, 2, 3});
  CHECK(qos_level_tables(*assign_paths(4, arch), arch)->size() == 4);
  // Paths out of MAC order are rejected.
  ModelArch bad = arch;
  std::swap(bad.paths[1], bad.paths[3]);
  CHECK_FALSE(assign_paths(4, bad));
  RoutingMap rm;
  rm.num_chunks = 4;
  REQUIRE(fill_path_tables(rm, arch));
  CHECK(rm.levels() == 4);
}

TEST_CASE("refine picks the cheapest path within tolerance") {
  ModelArch arch = four_paths();
  const double nan = std::nan("");
  std::vector<std::vector<double>> psnr = {
      {40.00, 40.05, 40.08, 40.09},  // flat: path 0 within 0.1 dB of best
      {30.0, 32.0, 33.0, 33.05},     // hard: path 2 within 0.1 dB
      {30.0, 31.0, 32.0, 35.0},      // only the richest
      {nan, 31.0, 31.2, nan},        // unmeasured entries skipped
  };
  auto t = refine_paths(psnr, arch, 0.1);
  REQUIRE(t);
  CHECK(*t == std::vector<uint8_t>{0, 2, 3, 2});
  CHECK(*refine_paths(psnr, arch, 0.0) == std::vector<uint8_t>{3, 3, 3, 2});
  CHECK(*refine_paths(psnr, arch, 10.0) == std::vector<uint8_t>{0, 0, 0, 1});
  CHECK_FALSE(refine_paths({{1.0, 2.0}}, arch, 0.1));
  CHECK_FALSE(refine_paths({{nan, nan, nan, nan}}, arch, 0.1));
}

TEST_CASE("routing smoothing reduces flips and keeps cuts") {
  // Noise on a mid-texture clip makes boundary tiles flicker between chunks.
  Clip c = make_clip(256, 256, 12);
  ChunkingParams p;
  p.tile_size = 16;
  p.smoothing.enabled = false;
  auto raw = chunk_video(c.hr, c.lr, p);
  REQUIRE(raw);
  p.smoothing.enabled = true;
  p.smoothing.margin = 0.5f;
  auto smooth = chunk_video(c.hr, c.lr, p);
  REQUIRE(smooth);
  CHECK(raw->routing.chunk_ids == raw->clustering.chunk_ids);
  CHECK(raw->routing_stats.flips_smoothed == raw->routing_stats.flips_raw);
  const auto& st = smooth->routing_stats;
  CHECK(st.frame_pairs == 10);  // 12 frames, one cut
  CHECK(st.flips_smoothed <= st.flips_raw);
  // A huge margin freezes every tile inside a segment: no flips at all.
  p.smoothing.margin = 1e6f;
  auto frozen = chunk_video(c.hr, c.lr, p);
  REQUIRE(frozen);
  CHECK(frozen->routing_stats.flips_smoothed == 0);
  // ...but the first frame of each segment is the raw assignment.
  const int tiles = frozen->routing.tiles_per_frame();
  for (int f : {0, 6})
    for (int i = 0; i < tiles; ++i)
      CHECK(frozen->routing.chunk_ids[size_t(f * tiles + i)] ==
            frozen->clustering.chunk_ids[size_t(f * tiles + i)]);

  // Hand-made flicker: a tile whose features alternate around a boundary.
  TileFeatureSet fs;
  fs.grid = TileGrid{16, 16, 16};
  fs.frames = 6;
  Clustering cl;
  cl.method = ClusterMethod::kPsnrQuantiles;
  cl.num_chunks = 2;
  cl.space.mean = {30, 0, 0, 0};
  cl.space.inv_std = {1, 0, 0, 0};
  cl.space.weight = {1, 0, 0, 0};
  cl.chunks.resize(2);
  cl.chunks[0].psnr_low = 30;  // easy: PSNR >= 30
  cl.chunks[0].psnr_high = 1e9f;
  cl.chunks[1].psnr_low = -1e9f;
  cl.chunks[1].psnr_high = 30;
  for (float v : {30.1f, 29.9f, 30.1f, 29.9f, 25.0f, 25.0f}) {
    TileFeatures t;
    t.bicubic_psnr = v;
    fs.tiles.push_back(t);
    cl.chunk_ids.push_back(uint8_t(cl.nearest(t)));
  }
  CHECK(cl.chunk_ids == std::vector<uint8_t>{0, 1, 0, 1, 1, 1});
  RoutingStats rs;
  auto rm = build_routing(fs, cl, {{0, 6}}, SmoothingParams{true, 0.5f}, &rs);
  REQUIRE(rm);
  CHECK(rm->chunk_ids == std::vector<uint8_t>{0, 0, 0, 0, 1, 1});  // moves only on a clear change
  CHECK(rs.flips_raw == 3);
  CHECK(rs.flips_smoothed == 1);
}

TEST_CASE("balanced sampler: counts per chunk and frame, determinism") {
  Clip c = make_clip(256, 256, 8);
  ChunkingParams p;
  p.tile_size = 16;
  auto r = chunk_video(c.hr, c.lr, p);
  REQUIRE(r);
  SamplerParams sp;
  sp.patch = 24;
  sp.halo = 4;
  auto s = TrainingSampler::create(c.hr, c.lr, r->routing, sp);
  REQUIRE(s);
  const int k = s->num_chunks();
  TrainingBatch batch;
  s->next_batch(k * 250, batch);
  CHECK(batch.lr_side == 32);
  CHECK(batch.hr_side == 48);
  CHECK(batch.lr.size() == size_t(k * 250) * 32 * 32);
  CHECK(batch.hr.size() == size_t(k * 250) * 48 * 48);
  std::map<int, int> per_chunk;
  std::map<std::pair<int, int>, int> per_chunk_frame;
  for (int i = 0; i < batch.count; ++i) {
    ++per_chunk[batch.chunk[size_t(i)]];
    ++per_chunk_frame[{batch.chunk[size_t(i)], batch.frame[size_t(i)]}];
    // The drawn tile's chunk is the sample's chunk: the core centre lies in such a tile,
    // so at least one tile under the core has that chunk.
    const int f = batch.frame[size_t(i)], x = batch.x[size_t(i)], y = batch.y[size_t(i)];
    bool found = false;
    for (int ty = y / 16; ty <= (y + 23) / 16 && ty < 8; ++ty)
      for (int tx = x / 16; tx <= (x + 23) / 16 && tx < 8; ++tx)
        found |= r->routing.chunk(f, tx, ty) == batch.chunk[size_t(i)];
    CHECK(found);
    CHECK(x >= 0);
    CHECK(x + 24 <= 128);
  }
  CHECK(int(per_chunk.size()) == k);
  for (auto& [chunk, n] : per_chunk) CHECK(n == 250);
  // Frames balanced within a chunk: each frame that holds the chunk is drawn
  // about equally often (uniform over frames, not over tiles).
  for (int chunk = 0; chunk < k; ++chunk) {
    int frames_with = 0, lo = 1 << 30, hi = 0;
    for (int f = 0; f < 8; ++f) {
      auto it = per_chunk_frame.find({chunk, f});
      if (it == per_chunk_frame.end()) continue;
      ++frames_with;
      lo = std::min(lo, it->second);
      hi = std::max(hi, it->second);
    }
    CAPTURE(chunk);
    if (frames_with >= 2) CHECK(hi <= 3 * lo + 10);
  }
  // Same seed, same samples; another seed, other samples.
  auto s2 = TrainingSampler::create(c.hr, c.lr, r->routing, sp);
  TrainingBatch b2;
  s2->next_batch(k * 250, b2);
  CHECK(b2.lr == batch.lr);
  CHECK(b2.chunk == batch.chunk);
  sp.seed = 2;
  auto s3 = TrainingSampler::create(c.hr, c.lr, r->routing, sp);
  s3->next_batch(k * 250, b2);
  CHECK(b2.lr != batch.lr);
  // One chunk only, and a frame range.
  REQUIRE(s->next_batch_for_chunk(k - 1, 20, batch));
  for (int ch : batch.chunk) CHECK(ch == k - 1);
  CHECK_FALSE(s->next_batch_for_chunk(k, 1, batch));
  sp.frame_begin = 4;
  sp.frame_end = 8;
  auto s4 = TrainingSampler::create(c.hr, c.lr, r->routing, sp);
  REQUIRE(s4);
  s4->next_batch(100, batch);
  for (int f : batch.frame) CHECK((f >= 4 && f < 8));
}

TEST_CASE("patch halo at frame borders: mirror, replicate, zero") {
  // LR 8x6 with pixel value 10*y + x; HR 16x12 = 2x.
  Frame lr = Frame::blank(8, 6), hr = Frame::blank(16, 12);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 8; ++x) lr.y[size_t(y * 8 + x)] = uint8_t(10 * y + x);
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 16; ++x) hr.y[size_t(y * 16 + x)] = uint8_t(16 * y + x);
  const int patch = 4, halo = 2, side = patch + 2 * halo;
  std::vector<uint8_t> l(size_t(side * side)), h(size_t(patch * 2 * patch * 2));
  auto at = [&](int row, int col) { return int(l[size_t(row * side + col)]); };

  // Top-left corner: halo rows/cols -2, -1 map to 2, 1 (reflect101).
  extract_patch(lr, hr, 2, 0, 0, patch, halo, BorderMode::kMirror, l.data(), h.data());
  CHECK(at(2, 2) == 0);   // core origin = LR (0,0)
  CHECK(at(0, 0) == 22);  // (-2,-2) -> (2,2)
  CHECK(at(1, 2) == 10);  // (-1, 0) -> (1, 0)
  CHECK(at(2, 1) == 1);   // (0, -1) -> (0, 1)
  CHECK(at(7, 7) == 55);  // (5, 5) inside
  CHECK(h[0] == 0);
  CHECK(h[size_t(7 * 8 + 7)] == 16 * 7 + 7);
  // Bottom-right corner: core at (4, 2) ends at the frame edge; halo beyond it.
  extract_patch(lr, hr, 2, 4, 2, patch, halo, BorderMode::kMirror, l.data(), h.data());
  CHECK(at(2, 2) == 24);
  CHECK(at(5, 5) == 57);  // (5, 7) last pixel
  CHECK(at(6, 6) == 46);  // (6, 8) -> (4, 6)
  CHECK(at(7, 7) == 35);  // (7, 9) -> (3, 5)
  extract_patch(lr, hr, 2, 4, 2, patch, halo, BorderMode::kReplicate, l.data(), h.data());
  CHECK(at(6, 6) == 57);
  CHECK(at(7, 7) == 57);
  CHECK(at(7, 2) == 54);  // (7, 4) -> (5, 4)
  extract_patch(lr, hr, 2, 4, 2, patch, halo, BorderMode::kZero, l.data(), h.data());
  CHECK(at(6, 6) == 0);
  CHECK(at(5, 5) == 57);
  CHECK(at(1, 1) == 13);  // (1, 3) inside
  // A halo wider than the frame still reflects inside it.
  std::vector<uint8_t> big(size_t((patch + 40) * (patch + 40))), hb(h.size());
  extract_patch(lr, hr, 2, 0, 0, patch, 20, BorderMode::kMirror, big.data(), hb.data());
  for (uint8_t v : big) CHECK((v / 10 < 6 && v % 10 < 8));
  // Interior patch equals a plain copy.
  Frame lr2 = synthetic_clip(64, 64, 1)[0];
  Frame hr2 = synthetic_clip(128, 128, 1)[0];
  std::vector<uint8_t> l2(16 * 16), h2(24 * 24);
  extract_patch(lr2, hr2, 2, 10, 20, 12, 2, BorderMode::kMirror, l2.data(), h2.data());
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x)
      CHECK(l2[size_t(y * 16 + x)] == lr2.y[size_t((18 + y) * 64 + 8 + x)]);
  for (int y = 0; y < 24; ++y)
    for (int x = 0; x < 24; ++x)
      CHECK(h2[size_t(y * 24 + x)] == hr2.y[size_t((40 + y) * 128 + 20 + x)]);
}

TEST_CASE("chunk map PNG is written") {
  Clip c = make_clip(256, 128, 4);
  ChunkingParams p;
  p.tile_size = 16;
  auto r = chunk_video(c.hr, c.lr, p);
  REQUIRE(r);
  REQUIRE(fill_path_tables(r->routing, four_paths()));
  const std::string dir = test::temp_dir("chunking");
  const std::string png = dir + "/map.png";
  REQUIRE(write_chunk_map_png(png, c.hr[1], r->routing, 1));
  CHECK(std::filesystem::file_size(png) > 1000);
  CHECK_FALSE(write_chunk_map_png(png, c.hr[1], r->routing, 99));
  CHECK_FALSE(write_chunk_map_png(dir + "/no/such/dir/map.png", c.hr[1], r->routing, 1));
}
