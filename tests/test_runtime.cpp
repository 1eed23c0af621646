// SR runtime: kernels vs their scalar references (checkasm style), the whole
// runtime vs a naive whole-frame implementation of the network written from
// model.h alone, tiled == whole frame bit for bit, thread invariance, odd
// sizes, routing, bad models.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "dydca/runtime.h"
#include "kernels.h"  // private kernel table (decoder/runtime/src)
#include "test_util.h"

using namespace dydca;
using dydca::test::random_model;

// Counts every operator new of the process, to check that upscaling does not
// allocate once the runtime is planned. (GCC 12 cannot see that this new and
// delete pair up and warns at inlined call sites.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
static std::atomic<long> g_allocations{0};
void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
long test_allocations() { return g_allocations.load(); }  // for test_runtime_int8.cpp
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace {

std::vector<SimdLevel> supported_levels() {
  std::vector<SimdLevel> v;
  for (SimdLevel l : {SimdLevel::kNone, SimdLevel::kAvx2, SimdLevel::kAvx512})
    if (simd_level_supported(l)) v.push_back(l);
  return v;
}

// ---- random models: test::random_model (test_util.h) ----------------------------

std::vector<PathSpec> default_paths() { return {{0, 0}, {1, 16}, {2, 24}, {4, 32}}; }

// Smooth content plus noise and a few hard edges; both extremes present.
std::vector<uint8_t> random_plane(int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(-20, 20);
  std::vector<uint8_t> p(size_t(w) * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      int v = 128 + int(90 * std::sin(0.3 * x + 0.1 * seed) * std::cos(0.2 * y)) + noise(rng);
      if ((x / 7 + y / 5) % 5 == 0) v = (x + y) % 2 ? 255 : 0;
      p[size_t(y) * w + x] = uint8_t(std::clamp(v, 0, 255));
    }
  return p;
}

// ---- naive whole-frame reference of the network (model.h semantics) -----------------

using Planes = std::vector<std::vector<double>>;  // [channel][y*w + x]

// conv kxk "same" with zero padding, weight[:cout, :cin] of a full tensor.
// (naive_network runs it on an edge-replicated canvas wide enough that the
// zeros never reach the frame: model.h's clamped-input borders.)
Planes conv_same(const Planes& in, const Tensor& wt, const Tensor& b, int cout, int w, int h) {
  const int cin = int(in.size()), in_full = wt.shape[1], k = wt.shape[2], r = k / 2;
  Planes out(size_t(cout), std::vector<double>(size_t(w) * h));
  for (int co = 0; co < cout; ++co)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        double acc = b.data[size_t(co)];
        for (int ci = 0; ci < cin; ++ci)
          for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx) {
              const int iy = y + ky - r, ix = x + kx - r;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              acc += double(wt.data[((size_t(co) * in_full + ci) * k + ky) * k + kx]) *
                     in[size_t(ci)][size_t(iy) * w + ix];
            }
        out[size_t(co)][size_t(y) * w + x] = acc;
      }
  return out;
}

// HR output in luma/255 units (before quantisation), (w*s) x (h*s).
std::vector<double> naive_network(const Model& m, int path, const std::vector<uint8_t>& lr, int w,
                                  int h) {
  const ModelArch& a = m.arch;
  const PathSpec ps = a.paths[size_t(path)];
  const int s = a.scale, s2 = s * s, wd = ps.width, e = a.inner_width(wd);
  const int R = wd > 0 ? 2 + 2 * ps.depth : 2;  // receptive radius
  const int W = w + 2 * R, H = h + 2 * R;      // the canvas
  Planes x(1, std::vector<double>(size_t(W) * H));
  for (int y = 0; y < H; ++y)
    for (int xx = 0; xx < W; ++xx)
      x[0][size_t(y) * W + xx] =
          double(float(lr[size_t(std::clamp(y - R, 0, h - 1)) * w + std::clamp(xx - R, 0, w - 1)]) / 255.0f);
  Planes out = conv_same(x, *m.find("skip.weight"), *m.find("skip.bias"), s2, W, H);
  if (wd > 0) {
    Planes f = conv_same(x, *m.find("head.weight"), *m.find("head.bias"), wd, W, H);
    for (int i = 0; i < ps.depth; ++i) {
      const std::string p = "blocks." + std::to_string(i) + ".";
      Planes t = conv_same(f, *m.find(p + "conv1.weight"), *m.find(p + "conv1.bias"), e, W, H);
      for (auto& c : t)
        for (auto& v : c) v = std::max(v, 0.0);
      Planes r = conv_same(t, *m.find(p + "conv2.weight"), *m.find(p + "conv2.bias"), wd, W, H);
      for (size_t c = 0; c < f.size(); ++c)
        for (size_t j = 0; j < f[c].size(); ++j) f[c][j] += r[c][j];
    }
    Planes t = conv_same(f, *m.find("tail.weight"), *m.find("tail.bias"), s2, W, H);
    for (size_t c = 0; c < out.size(); ++c)
      for (size_t j = 0; j < out[c].size(); ++j) out[c][j] += t[c][j];
  }
  std::vector<double> hr(size_t(w) * s * h * s);
  for (int c = 0; c < s2; ++c)
    for (int y = 0; y < h; ++y)
      for (int xx = 0; xx < w; ++xx)
        hr[size_t(y * s + c / s) * (w * s) + xx * s + c % s] =
            out[size_t(c)][size_t(y + R) * W + xx + R];
  return hr;
}

SrRuntime make_runtime(const Model& m, int tile, int threads, SimdLevel level, int gx = 4,
                       int gy = 2) {
  RuntimeOptions o;
  o.tile_size = tile;
  o.threads = threads;
  o.simd = level;
  o.group_x = gx;
  o.group_y = gy;
  o.max_lr_width = 256;
  o.max_lr_height = 256;
  auto rt = SrRuntime::create(m, o);
  REQUIRE_MESSAGE(rt.has_value(), (rt.has_value() ? std::string() : rt.error_message()));
  return std::move(rt).value();
}

// Whole frame in one job: tile and arena cover the frame.
SrRuntime whole_frame_runtime(const Model& m, int w, int h, SimdLevel level) {
  return make_runtime(m, std::max(w, h), 1, level, 1, 1);
}

std::vector<uint8_t> run_u8(SrRuntime& rt, const std::vector<uint8_t>& lr, int w, int h,
                            const std::vector<uint8_t>& paths) {
  const int s = rt.scale();
  std::vector<uint8_t> hr(size_t(w) * s * h * s, 0xAB);
  const Status st = rt.upscale_luma(lr.data(), w, h, w, hr.data(), w * s, paths);
  REQUIRE_MESSAGE(st.is_ok(), st.message());
  return hr;
}

std::vector<float> run_float(SrRuntime& rt, const std::vector<uint8_t>& lr, int w, int h,
                             const std::vector<uint8_t>& paths) {
  const int s = rt.scale();
  std::vector<float> hr(size_t(w) * s * h * s, -99.f);
  const Status st = rt.upscale_luma_float(lr.data(), w, h, w, hr.data(), w * s, paths);
  REQUIRE_MESSAGE(st.is_ok(), st.message());
  return hr;
}

std::vector<uint8_t> uniform(const SrRuntime& rt, int w, int h, int path) {
  return std::vector<uint8_t>(size_t(rt.tiles_x(w)) * rt.tiles_y(h), uint8_t(path));
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

// ---- kernels vs reference (checkasm style) ----------------------------------------------

namespace {

struct ConvCase {
  int cs, cin, cout_pad, width, height;
  rt::Epilogue epi;
};

// Runs one conv in padded buffers: random input everywhere (incl. the slack a
// masked block may read), a canary-filled output; checks values against the
// reference and that nothing outside the output rectangle was written.
void check_conv(const rt::KernelTable& simd, const ConvCase& c, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const int pad = 3;  // output rectangle offset inside the dst buffer (pixels)
  const int bw = c.width + 2 + 2 * pad, bh = c.height + 2 + 2 * pad;
  const ptrdiff_t src_row = ptrdiff_t(bw) * c.cs, dst_row = ptrdiff_t(bw) * c.cout_pad;
  const size_t slack = size_t(rt::kMaxOverread + 4) * 64;
  std::vector<float> src(size_t(bh) * src_row + slack);
  for (auto& v : src) v = u(rng);
  std::vector<float> weight(size_t(9) * c.cin * c.cout_pad), bias(size_t(c.cout_pad));
  for (auto& v : weight) v = u(rng);
  for (auto& v : bias) v = u(rng);
  std::vector<float> dst_init(size_t(bh) * dst_row + slack);
  for (auto& v : dst_init) v = u(rng);  // residual input (and canaries elsewhere)
  std::vector<float> dst_ref = dst_init, dst_simd = dst_init;
  auto args = [&](std::vector<float>& dst) {
    rt::ConvArgs a;
    a.src = src.data() + (pad) * src_row + ptrdiff_t(pad) * c.cs;  // (x0-1, y0-1) = (pad, pad)
    a.src_row = src_row;
    a.src_cs = c.cs;
    a.cin = c.cin;
    a.dst = dst.data() + (pad + 1) * dst_row + ptrdiff_t(pad + 1) * c.cout_pad;
    a.dst_row = dst_row;
    a.cout_pad = c.cout_pad;
    a.weight = weight.data();
    a.bias = bias.data();
    a.width = c.width;
    a.height = c.height;
    a.epilogue = c.epi;
    return a;
  };
  const rt::KernelTable& ref = rt::kernels_for(SimdLevel::kNone);
  const int ci = rt::cs_index(c.cs), co = c.cout_pad / rt::kChannelAlign - 1;
  ref.conv3x3[ci][co](args(dst_ref));
  simd.conv3x3[ci][co](args(dst_simd));
  int bad = 0;
  for (size_t i = 0; i < dst_ref.size() && bad < 5; ++i) {
    const float r = dst_ref[i], s = dst_simd[i];
    const float tol = 1e-5f * std::max(1.0f, std::fabs(r)) * std::sqrt(float(9 * c.cin));
    if (!(std::fabs(r - s) <= tol)) {
      ++bad;
      const size_t px = i / size_t(c.cout_pad);
      FAIL_CHECK("conv cs=" << c.cs << " cin=" << c.cin << " cout=" << c.cout_pad << " "
                            << c.width << "x" << c.height << " epi=" << int(c.epi) << " at float "
                            << i << " (pixel " << px % bw << "," << px / bw << " ch "
                            << i % c.cout_pad << "): ref " << r << " simd " << s);
    }
  }
  // Nothing outside the rectangle changed (identical to the initial canaries).
  for (int y = 0; y < bh; ++y)
    for (int x = 0; x < bw; ++x) {
      const bool inside = y >= pad + 1 && y < pad + 1 + c.height && x >= pad + 1 && x < pad + 1 + c.width;
      if (inside) continue;
      const size_t o = size_t(y) * dst_row + size_t(x) * c.cout_pad;
      if (std::memcmp(&dst_simd[o], &dst_init[o], sizeof(float) * c.cout_pad) != 0) {
        FAIL_CHECK("conv wrote outside its rectangle at pixel " << x << "," << y);
        return;
      }
    }
}

}  // namespace

namespace {
void conv_kernels_match(const std::vector<SimdLevel>& levels_to_test) {
  std::mt19937 rng(7);
  int checked = 0;
  for (SimdLevel level : levels_to_test) {
    if (level == SimdLevel::kNone) continue;
    CAPTURE(simd_level_name(level));
    const rt::KernelTable& k = rt::kernels_for(level);
    for (int cs : {1, 8, 16, 24, 32, 40, 48, 56, 64})
      for (int cout_pad : {8, 16, 24, 32, 40, 48, 56, 64}) {
        std::vector<int> cins = cs == 1 ? std::vector<int>{1} : std::vector<int>{1, cs / 2 + 1, cs};
        for (int cin : cins)
          for (int width : {1, 2, 3, 5, 13, 24, 25, 37})
            for (rt::Epilogue epi : {rt::Epilogue::kNone, rt::Epilogue::kRelu, rt::Epilogue::kResidual}) {
              const int height = width % 3 + 1;
              check_conv(k, {cs, std::max(cin, 1), cout_pad, width, height, epi}, rng);
              ++checked;
            }
      }
  }
  MESSAGE("conv cases checked: " << checked);
}
}  // namespace

DYDCA_CASE_IF("conv3x3 kernels match the scalar reference", "avx2",
              simd_level_supported(SimdLevel::kAvx2), "this CPU has no AVX2",
              conv_kernels_match({SimdLevel::kAvx2}))

DYDCA_CASE_IF("conv3x3 kernels match the scalar reference", "avx512",
              simd_level_supported(SimdLevel::kAvx512), "this CPU has no AVX-512",
              conv_kernels_match({SimdLevel::kAvx512}))

namespace {
void tail_kernels_match(const std::vector<SimdLevel>& levels_to_test) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const rt::KernelTable& ref = rt::kernels_for(SimdLevel::kNone);
  for (SimdLevel level : levels_to_test) {
    if (level == SimdLevel::kNone) continue;
    CAPTURE(simd_level_name(level));
    const rt::KernelTable& k = rt::kernels_for(level);
    for (int scale : {1, 2, 3, 4})
      for (int cs : {1, 8, 16, 24, 32, 48, 64})
        for (int width : {1, 3, 4, 7, 16, 17, 33})
          for (int height : {1, 2, 5}) {
            const int cin = cs == 1 ? 0 : cs - (width % 3);
            const int bw = width + 4 + 2, bh = height + 4;
            const size_t slack = size_t(rt::kMaxOverread + 4) * 64;
            std::vector<float> feat(size_t(bw) * bh * cs + slack), x(size_t(bw) * bh + slack);
            // Features of moderate size, x in [0, 1], tail small: outputs
            // spread over [0, 1] so that quantisation is exercised.
            for (auto& v : feat) v = u(rng);
            for (auto& v : x) v = 0.5f + 0.5f * u(rng);
            std::vector<float> tw(size_t(9) * std::max(cin, 1) * rt::kTailChannels), sw(25 * rt::kTailChannels), b(rt::kTailChannels);
            for (auto& v : tw) v = 0.01f * u(rng);
            for (auto& v : sw) v = 0.04f + 0.02f * u(rng);
            for (auto& v : b) v = 0.05f * u(rng);
            const int s = scale, hw = width * s + 3, hh = height * s;
            auto args = [&](uint8_t* hr, float* hrf) {
              rt::TailArgs a;
              a.feat = feat.data() + size_t(bw) * cs + cs;  // (x0-1, y0-1) with x0 = y0 = 2
              a.feat_row = ptrdiff_t(bw) * cs;
              a.feat_cs = cs == 1 ? 8 : cs;
              a.cin = cin;
              a.tail_weight = tw.data();
              a.x = x.data();
              a.x_row = bw;
              a.skip_weight = sw.data();
              a.bias = b.data();
              a.scale = s;
              a.width = width;
              a.height = height;
              a.hr = hr;
              a.hr_stride = hw;
              a.hr_float = hrf;
              a.hr_float_stride = hw;
              return a;
            };
            std::vector<uint8_t> r8(size_t(hw) * hh, 77), s8(size_t(hw) * hh, 77);
            std::vector<float> rf(size_t(hw) * hh, -5.f), sf(size_t(hw) * hh, -5.f);
            ref.tail[rt::cs_index(cs)](args(r8.data(), nullptr));
            k.tail[rt::cs_index(cs)](args(s8.data(), nullptr));
            ref.tail[rt::cs_index(cs)](args(nullptr, rf.data()));
            k.tail[rt::cs_index(cs)](args(nullptr, sf.data()));
            int off_by_one = 0;
            bool ok = true;
            for (size_t i = 0; i < r8.size() && ok; ++i) {
              const int d = std::abs(int(r8[i]) - int(s8[i]));
              off_by_one += d == 1;
              if (d > 1 || std::fabs(rf[i] - sf[i]) > 1e-5f * std::max(1.f, std::fabs(rf[i]))) {
                ok = false;
                FAIL_CHECK("tail s=" << s << " cs=" << cs << " cin=" << cin << " " << width << "x"
                                     << height << " at " << i << ": u8 " << int(r8[i]) << "/"
                                     << int(s8[i]) << " float " << rf[i] << "/" << sf[i]);
              }
            }
            // 8-bit differs only where the float differs around a .5 boundary.
            CHECK(off_by_one <= int(r8.size() / 100) + 1);
            // The 3 columns past the HR rectangle are untouched.
            for (int y = 0; y < hh; ++y)
              for (int xx = width * s; xx < hw; ++xx) {
                CHECK(s8[size_t(y) * hw + xx] == 77);
                CHECK(sf[size_t(y) * hw + xx] == -5.f);
              }
          }
  }
}
}  // namespace

DYDCA_CASE_IF("tail kernels match the scalar reference", "avx2",
              simd_level_supported(SimdLevel::kAvx2), "this CPU has no AVX2",
              tail_kernels_match({SimdLevel::kAvx2}))

DYDCA_CASE_IF("tail kernels match the scalar reference", "avx512",
              simd_level_supported(SimdLevel::kAvx512), "this CPU has no AVX-512",
              tail_kernels_match({SimdLevel::kAvx512}))

// ---- the runtime vs the naive network -----------------------------------------------------

TEST_CASE("runtime matches the naive whole-frame network (every path, scales 1/2/3/4)") {
  struct Arch {
    int scale, C, E, N;
    std::vector<PathSpec> paths;
  };
  const std::vector<Arch> archs = {
      {2, 32, 32, 4, default_paths()},
      {3, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}},
      {4, 16, 32, 2, {{0, 0}, {1, 16}, {2, 12}}},  // E != C, widths not multiples of 16
      {1, 8, 8, 2, {{0, 0}, {1, 8}, {2, 8}}},       // the x1 post-filter
  };
  const int w = 37, h = 23;
  const std::vector<uint8_t> lr = random_plane(w, h, 3);
  for (const Arch& a : archs) {
    const Model m = random_model(a.scale, a.C, a.E, a.N, a.paths, 5);
    for (SimdLevel level : supported_levels()) {
      SrRuntime rt = make_runtime(m, 16, 2, level);
      for (int p = 0; p < int(a.paths.size()); ++p) {
        CAPTURE(a.scale);
        CAPTURE(p);
        CAPTURE(simd_level_name(level));
        const std::vector<double> ref = naive_network(m, p, lr, w, h);
        const auto paths = uniform(rt, w, h, p);
        const std::vector<float> f = run_float(rt, lr, w, h, paths);
        const std::vector<uint8_t> u8 = run_u8(rt, lr, w, h, paths);
        double max_err = 0;
        size_t same = 0, clamped = 0;
        for (size_t i = 0; i < ref.size(); ++i) {
          max_err = std::max(max_err, std::fabs(ref[i] - double(f[i])));
          const double q = std::clamp(std::nearbyint(ref[i] * 255.0), 0.0, 255.0);
          same += u8[i] == uint8_t(q);
          clamped += q == 0.0 || q == 255.0;
        }
        CHECK(max_err <= 1e-4);
        CHECK(double(same) >= 0.999 * double(ref.size()));
        CHECK(clamped < ref.size() / 2);  // the test means something
      }
    }
  }
}

TEST_CASE("tiled output is bit-identical to the whole-frame run, every path and level") {
  for (int scale : {2, 1}) {  // x1: the post-filter
    CAPTURE(scale);
    const Model m = random_model(scale, 32, 32, 4, default_paths(), 9);
    struct Size { int w, h; };
    for (Size sz : {Size{37, 23}, Size{64, 40}, Size{9, 7}, Size{1, 1}, Size{2, 13}}) {
      const std::vector<uint8_t> lr = random_plane(sz.w, sz.h, uint32_t(sz.w * 100 + sz.h));
      for (SimdLevel level : supported_levels()) {
        SrRuntime whole = whole_frame_runtime(m, sz.w, sz.h, level);
        SrRuntime tiled = make_runtime(m, 8, 2, level, 1, 1);
        SrRuntime grouped = make_runtime(m, 8, 2, level, 3, 2);
        SrRuntime pixel = make_runtime(m, 1, 2, level, 1, 1);  // 1-pixel tiles
        const bool small = sz.w * sz.h <= 400;
        for (int p = 0; p < 4; ++p) {
          CAPTURE(sz.w);
          CAPTURE(sz.h);
          CAPTURE(p);
          CAPTURE(simd_level_name(level));
          const auto wf = run_float(whole, lr, sz.w, sz.h, uniform(whole, sz.w, sz.h, p));
          const auto w8 = run_u8(whole, lr, sz.w, sz.h, uniform(whole, sz.w, sz.h, p));
          CHECK(same_bits(wf, run_float(tiled, lr, sz.w, sz.h, uniform(tiled, sz.w, sz.h, p))));
          CHECK(w8 == run_u8(tiled, lr, sz.w, sz.h, uniform(tiled, sz.w, sz.h, p)));
          CHECK(w8 == run_u8(grouped, lr, sz.w, sz.h, uniform(grouped, sz.w, sz.h, p)));
          if (small) CHECK(w8 == run_u8(pixel, lr, sz.w, sz.h, uniform(pixel, sz.w, sz.h, p)));
        }
      }
    }
  }
}

TEST_CASE("mixed per-tile paths: each tile equals its path's whole-frame output") {
  const int w = 70, h = 45, s = 3, tile = 16;
  const Model m = random_model(s, 32, 32, 4, default_paths(), 21);
  const std::vector<uint8_t> lr = random_plane(w, h, 4);
  for (SimdLevel level : supported_levels()) {
    CAPTURE(simd_level_name(level));
    SrRuntime whole = whole_frame_runtime(m, w, h, level);
    std::vector<std::vector<uint8_t>> per_path;
    for (int p = 0; p < 4; ++p) per_path.push_back(run_u8(whole, lr, w, h, uniform(whole, w, h, p)));
    for (auto [gx, gy] : {std::pair{1, 1}, std::pair{4, 2}, std::pair{2, 3}}) {
      SrRuntime rt = make_runtime(m, tile, 2, level, gx, gy);
      const int ntx = rt.tiles_x(w), nty = rt.tiles_y(h);
      std::mt19937 rng(uint32_t(gx * 10 + gy));
      std::vector<uint8_t> paths(size_t(ntx) * nty);
      for (auto& p : paths) p = uint8_t(rng() % 4);
      paths[0] = paths[1] = paths[size_t(ntx)] = paths[size_t(ntx) + 1] = 3;  // one uniform group
      const auto out = run_u8(rt, lr, w, h, paths);
      size_t mismatches = 0;
      for (int y = 0; y < h * s; ++y)
        for (int x = 0; x < w * s; ++x) {
          const int p = paths[size_t(y / s / tile) * ntx + size_t(x / s / tile)];
          mismatches += out[size_t(y) * w * s + x] != per_path[size_t(p)][size_t(y) * w * s + x];
        }
      CHECK(mismatches == 0);
    }
  }
}

TEST_CASE("output does not depend on the thread count") {
  const int w = 96, h = 50;
  const Model m = random_model(4, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 33);
  const std::vector<uint8_t> lr = random_plane(w, h, 8);
  for (SimdLevel level : supported_levels()) {
    std::vector<uint8_t> paths;
    std::vector<uint8_t> first;
    for (int threads : {1, 2, 3, 5}) {
      SrRuntime rt = make_runtime(m, 16, threads, level, 2, 1);
      if (paths.empty()) {
        paths.resize(size_t(rt.tiles_x(w)) * rt.tiles_y(h));
        for (size_t i = 0; i < paths.size(); ++i) paths[i] = uint8_t((i * 7) % 3);
      }
      // Several frames through the same runtime (arenas reused).
      for (int rep = 0; rep < 3; ++rep) {
        const auto out = run_u8(rt, lr, w, h, paths);
        if (first.empty()) first = out;
        CHECK(out == first);
      }
    }
  }
}

TEST_CASE("SIMD levels agree with the scalar path to float rounding") {
  const int w = 41, h = 29;
  const Model m = random_model(2, 32, 32, 4, default_paths(), 44);
  const std::vector<uint8_t> lr = random_plane(w, h, 12);
  SrRuntime ref = make_runtime(m, 32, 1, SimdLevel::kNone);
  for (SimdLevel level : supported_levels()) {
    SrRuntime rt = make_runtime(m, 32, 2, level);
    for (int p = 0; p < 4; ++p) {
      const auto a = run_float(ref, lr, w, h, uniform(ref, w, h, p));
      const auto b = run_float(rt, lr, w, h, uniform(rt, w, h, p));
      float err = 0;
      for (size_t i = 0; i < a.size(); ++i) err = std::max(err, std::fabs(a[i] - b[i]));
      CHECK(err < 1e-5f);
    }
  }
}

TEST_CASE("routing map overload") {
  const int w = 50, h = 34, tile = 16;
  const Model m = random_model(2, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 55);
  SrRuntime rt = make_runtime(m, tile, 2, best_simd_level());
  RoutingMap r;
  r.tile_size = tile;
  r.lr_width = w;
  r.lr_height = h;
  r.frames = 2;
  r.num_chunks = 3;
  r.chunk_path = {{2, 1, 0}, {1, 0, 0}};
  r.chunk_ids.resize(size_t(r.tiles_per_frame()) * 2);
  for (size_t i = 0; i < r.chunk_ids.size(); ++i) r.chunk_ids[i] = uint8_t(i % 3);
  const std::vector<uint8_t> lr = random_plane(w, h, 1);
  for (int frame = 0; frame < 2; ++frame)
    for (int level = 0; level < 2; ++level) {
      std::vector<uint8_t> paths;
      REQUIRE(rt.routing_tile_paths(r, frame, level, &paths).is_ok());
      for (int i = 0; i < r.tiles_per_frame(); ++i)
        CHECK(paths[size_t(i)] == r.chunk_path[size_t(level)][r.chunk_ids[size_t(frame) * r.tiles_per_frame() + i]]);
      std::vector<uint8_t> hr(size_t(w) * 2 * h * 2);
      REQUIRE(rt.upscale_luma(lr.data(), w, h, w, hr.data(), w * 2, r, frame, level).is_ok());
      CHECK(hr == run_u8(rt, lr, w, h, paths));
    }
  CHECK_FALSE(rt.upscale_luma(lr.data(), w, h, w, nullptr, w * 2, r, 0, 0).is_ok());
  std::vector<uint8_t> hr(size_t(w) * 2 * h * 2);
  CHECK_FALSE(rt.upscale_luma(lr.data(), w, h, w, hr.data(), w * 2, r, 2, 0).is_ok());  // frame
  CHECK_FALSE(rt.upscale_luma(lr.data(), w, h, w, hr.data(), w * 2, r, 0, 2).is_ok());  // level
  CHECK_FALSE(rt.upscale_luma(lr.data(), w, h - 1, w, hr.data(), w * 2, r, 0, 0).is_ok());
  RoutingMap bad = r;
  bad.chunk_path[0][1] = 9;
  CHECK_FALSE(rt.upscale_luma(lr.data(), w, h, w, hr.data(), w * 2, bad, 0, 0).is_ok());
  // Bad direct calls.
  CHECK_FALSE(rt.upscale_luma(lr.data(), w, h, w, hr.data(), w * 2, 3).is_ok());
  CHECK_FALSE(rt.upscale_luma(lr.data(), w, h, w, hr.data(), w * 2 - 1, 0).is_ok());
  CHECK_FALSE(rt.upscale_luma(lr.data(), w, h, w, hr.data(), w * 2, std::vector<uint8_t>(3, 0)).is_ok());
}

TEST_CASE("bad models and options give clear errors") {
  const Model good = random_model(2, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 1);
  auto expect_error = [](const Model& m, const std::string& needle, RuntimeOptions o = {}) {
    o.threads = 1;
    auto rt = SrRuntime::create(m, o);
    REQUIRE_FALSE(rt.has_value());
    CHECK_MESSAGE(rt.error_message().find(needle) != std::string::npos, rt.error_message());
  };
  {
    Model m = good;
    for (auto& t : m.tensors)
      if (t.name == "blocks.1.conv1.weight") t.shape = {16, 8, 3, 3};
    expect_error(m, "blocks.1.conv1.weight");
  }
  {
    Model m = good;
    m.tensors.erase(std::remove_if(m.tensors.begin(), m.tensors.end(),
                                   [](const Tensor& t) { return t.name == "skip.bias"; }),
                    m.tensors.end());
    expect_error(m, "skip.bias");
  }
  {
    Model m = good;
    m.tensors[0].data.pop_back();
    expect_error(m, "head.weight");
  }
  {
    Model m = good;
    m.arch.paths.push_back({3, 16});
    expect_error(m, "path 3");
  }
  {
    Model m = good;
    m.arch.scale = 3;  // tail/skip tensors are for x2
    expect_error(m, "tail.weight");
  }
  {
    Model m = good;
    m.arch.scale = 5;
    expect_error(m, "scale");
  }
  {
    Model m = random_model(2, 80, 16, 1, {{1, 80}}, 1);
    expect_error(m, "1..64");
  }
  RuntimeOptions o;
  o.tile_size = 0;
  expect_error(good, "tile size", o);
  CHECK(parse_simd_level("avx512").value() == SimdLevel::kAvx512);
  CHECK_FALSE(parse_simd_level("auto").value().has_value());
  CHECK_FALSE(parse_simd_level("sse9").has_value());
}

TEST_CASE("no allocation per frame after the first") {
  const int w = 200, h = 120;
  const Model m = random_model(3, 32, 32, 4, default_paths(), 77);
  const std::vector<uint8_t> lr = random_plane(w, h, 2);
  RuntimeOptions o;
  o.threads = 2;
  o.max_lr_width = w;
  o.max_lr_height = h;
  auto rt = SrRuntime::create(m, o);
  REQUIRE(rt.has_value());
  std::vector<uint8_t> hr(size_t(w) * 3 * h * 3);
  std::vector<uint8_t> paths(size_t(rt->tiles_x(w)) * rt->tiles_y(h));
  std::vector<float> hrf(hr.size());
  for (size_t i = 0; i < paths.size(); ++i) paths[i] = uint8_t(i * 5 % 4);
  REQUIRE(rt->upscale_luma(lr.data(), w, h, w, hr.data(), w * 3, paths).is_ok());
  REQUIRE(rt->upscale_luma(lr.data(), w, h, w, hr.data(), w * 3, 2).is_ok());
  const long before = g_allocations.load();
  CHECK(before > 0);  // the counter sees the planning
  for (int frame = 0; frame < 3; ++frame) {
    CHECK(rt->upscale_luma(lr.data(), w, h, w, hr.data(), w * 3, paths).is_ok());
    CHECK(rt->upscale_luma(lr.data(), w, h, w, hr.data(), w * 3, frame % 4).is_ok());
    CHECK(rt->upscale_luma_float(lr.data(), w, h, w, hrf.data(), w * 3, paths).is_ok());
  }
  CHECK(g_allocations.load() == before);
}
