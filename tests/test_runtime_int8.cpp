// int8 runtime (issue 16): every int8 kernel bit-exact against the scalar
// reference (checkasm style, odd shapes, padded buffers with canaries), the
// runtime vs a naive int8 network written from model.h's rules, tiled ==
// whole frame, precision selection, calibration, and int8 vs fp32 on real
// content.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dydca/media.h"
#include "dydca/runtime.h"
#include "kernels.h"  // private kernel table (decoder/runtime/src)
#include "test_util.h"

using namespace dydca;
using dydca::test::random_model;

long test_allocations();  // operator new counter (test_runtime.cpp)

namespace {

std::vector<SimdLevel> all_levels() {
  std::vector<SimdLevel> v = {SimdLevel::kNone};
  for (SimdLevel l : {SimdLevel::kAvx2, SimdLevel::kAvx512})
    if (simd_level_supported(l)) v.push_back(l);
  return v;
}

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

Model with_scales(Model m, const std::vector<uint8_t>& lr, int w, int h) {
  auto act = calibrate_act_scales(m, {LumaView{lr.data(), w, h, w}});
  REQUIRE_MESSAGE(act.has_value(), (act ? std::string() : act.error_message()));
  m.act = *act;
  return m;
}

SrRuntime make_rt(const Model& m, int tile, int threads, SimdLevel level, int gx = 4, int gy = 2,
                  Precision prec = Precision::kInt8) {
  RuntimeOptions o;
  o.tile_size = tile;
  o.threads = threads;
  o.simd = level;
  o.group_x = gx;
  o.group_y = gy;
  o.max_lr_width = 256;
  o.max_lr_height = 256;
  o.precision = prec;
  auto rt = SrRuntime::create(m, o);
  REQUIRE_MESSAGE(rt.has_value(), (rt.has_value() ? std::string() : rt.error_message()));
  return std::move(rt).value();
}

std::vector<uint8_t> run_u8(SrRuntime& rt, const std::vector<uint8_t>& lr, int w, int h, int path) {
  const int s = rt.scale();
  std::vector<uint8_t> hr(size_t(w) * s * h * s, 0xAB);
  const Status st = rt.upscale_luma(lr.data(), w, h, w, hr.data(), w * s, path);
  REQUIRE_MESSAGE(st.is_ok(), st.message());
  return hr;
}

std::vector<float> run_float(SrRuntime& rt, const std::vector<uint8_t>& lr, int w, int h, int path) {
  const int s = rt.scale();
  std::vector<float> hr(size_t(w) * s * h * s, -99.f);
  std::vector<uint8_t> paths(size_t(rt.tiles_x(w)) * rt.tiles_y(h), uint8_t(path));
  const Status st = rt.upscale_luma_float(lr.data(), w, h, w, hr.data(), w * s, paths);
  REQUIRE_MESSAGE(st.is_ok(), st.message());
  return hr;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

double psnr_u8(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double se = 0;
  for (size_t i = 0; i < a.size(); ++i) se += double(int(a[i]) - int(b[i])) * (int(a[i]) - int(b[i]));
  const double mse = se / double(a.size());
  return mse == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / mse);
}

// ---- kernels vs reference ------------------------------------------------------------

struct ConvCase {
  int cs, cin, cout_pad, width, height;
  rt::OutI8 out;
  bool signed_input;
};

// Bytes biased to the extremes (0, 1, 127, 128, 254, 255 are where offsets and
// saturation would show), weights likewise (+-127).
uint8_t random_byte(std::mt19937& rng) {
  const uint32_t r = rng() % 8;
  if (r == 0) return 255;
  if (r == 1) return uint8_t(rng() % 2 ? 0 : 1);
  if (r == 2) return uint8_t(127 + rng() % 2);
  return uint8_t(rng());
}
int8_t random_weight(std::mt19937& rng) {
  const uint32_t r = rng() % 6;
  if (r == 0) return 127;
  if (r == 1) return -127;
  return int8_t(int(rng() % 255) - 127);
}

void check_conv(const rt::KernelTableI8& simd, const ConvCase& c, std::mt19937& rng) {
  const int pad = 3;
  const int bw = c.width + 2 + 2 * pad, bh = c.height + 2 + 2 * pad;
  const ptrdiff_t src_row = ptrdiff_t(bw) * c.cs, dst_row = ptrdiff_t(bw) * c.cout_pad;
  const size_t slack = size_t(rt::kMaxOverread + 4) * 64;
  std::vector<uint8_t> src(size_t(bh) * src_row + slack);
  for (auto& v : src) v = random_byte(rng);
  const int cin4 = (c.cin + 3) / 4, groups = c.cs == 1 ? 3 : 9 * cin4;
  std::vector<int8_t> weight(size_t(groups) * c.cout_pad * 4);
  for (auto& v : weight) v = random_weight(rng);
  if (c.cs == 1)  // the packing's zero 4th byte of the luma plane's groups
    for (size_t i = 3; i < weight.size(); i += 4) weight[i] = 0;
  std::vector<int32_t> wsum(size_t(c.cout_pad), 0), init_raw(size_t(c.cout_pad)),
      init_off(size_t(c.cout_pad));
  for (int g = 0; g < groups; ++g)
    for (int o = 0; o < c.cout_pad; ++o)
      for (int k = 0; k < 4; ++k) wsum[size_t(o)] += weight[(size_t(g) * c.cout_pad + o) * 4 + k];
  for (int o = 0; o < c.cout_pad; ++o) {
    init_raw[size_t(o)] = c.signed_input ? -128 * wsum[size_t(o)] : 0;
    init_off[size_t(o)] = c.signed_input ? 0 : 128 * wsum[size_t(o)];
  }
  // |acc| up to ~ groups * 4 * 128 * 127 / 2: scale so that t spans a few
  // hundred codes (clamping and rounding both exercised).
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> mul(size_t(c.cout_pad)), add(size_t(c.cout_pad));
  const float m0 = 300.0f / (float(groups) * 4 * 128 * 127 * 0.3f);
  for (auto& v : mul) v = m0 * (0.5f + 0.5f * std::fabs(u(rng)));
  for (auto& v : add) v = 100.0f * u(rng);
  std::vector<uint8_t> dst_init(size_t(bh) * dst_row + slack);
  for (auto& v : dst_init) v = random_byte(rng);
  std::vector<uint8_t> dst_ref = dst_init, dst_simd = dst_init;
  auto args = [&](std::vector<uint8_t>& dst) {
    rt::ConvI8Args a;
    a.src = src.data() + pad * src_row + ptrdiff_t(pad) * c.cs;
    a.src_row = src_row;
    a.src_cs = c.cs;
    a.cin4 = cin4;
    a.signed_input = c.signed_input;
    a.dst = dst.data() + (pad + 1) * dst_row + ptrdiff_t(pad + 1) * c.cout_pad;
    a.dst_row = dst_row;
    a.cout_pad = c.cout_pad;
    a.weight = weight.data();
    a.init_raw = init_raw.data();
    a.init_off = init_off.data();
    a.mul = mul.data();
    a.add = add.data();
    a.res_mul = 0.75f;
    a.width = c.width;
    a.height = c.height;
    a.out = c.out;
    return a;
  };
  const rt::KernelTableI8& ref = rt::kernels_i8_for(SimdLevel::kNone);
  const int ci = rt::cs_index(c.cs), co = c.cout_pad / rt::kChannelAlign - 1;
  ref.conv3x3[ci][co](args(dst_ref));
  simd.conv3x3[ci][co](args(dst_simd));
  if (dst_ref != dst_simd) {
    for (size_t i = 0; i < dst_ref.size(); ++i)
      if (dst_ref[i] != dst_simd[i]) {
        const size_t px = i / size_t(c.cout_pad);
        FAIL_CHECK("int8 conv cs=" << c.cs << " cin=" << c.cin << " cout=" << c.cout_pad << " "
                                   << c.width << "x" << c.height << " out=" << int(c.out)
                                   << " signed_in=" << c.signed_input << " pixel " << px % bw
                                   << "," << px / bw << " ch " << i % c.cout_pad << ": ref "
                                   << int(dst_ref[i]) << " simd " << int(dst_simd[i]));
        return;
      }
  }
  // The reference itself wrote nothing outside the rectangle either.
  for (int y = 0; y < bh; ++y)
    for (int x = 0; x < bw; ++x) {
      const bool inside = y >= pad + 1 && y < pad + 1 + c.height && x >= pad + 1 && x < pad + 1 + c.width;
      if (inside) continue;
      const size_t o = size_t(y) * dst_row + size_t(x) * c.cout_pad;
      if (std::memcmp(&dst_ref[o], &dst_init[o], size_t(c.cout_pad)) != 0) {
        FAIL_CHECK("int8 conv wrote outside its rectangle at pixel " << x << "," << y);
        return;
      }
    }
}

}  // namespace

namespace {
void int8_conv_exact(const std::vector<SimdLevel>& levels_to_test) {
  std::mt19937 rng(17);
  int checked = 0;
  for (SimdLevel level : levels_to_test) {
    CAPTURE(simd_level_name(level));
    const rt::KernelTableI8& k = rt::kernels_i8_for(level);
    for (int cs : {1, 8, 16, 24, 32, 40, 48, 56, 64})
      for (int cout_pad : {8, 16, 24, 32, 40, 48, 56, 64}) {
        std::vector<int> cins = cs == 1 ? std::vector<int>{1} : std::vector<int>{1, cs / 2 + 1, cs};
        for (int cin : cins)
          for (int width : {1, 2, 3, 5, 13, 24, 25, 37}) {
            const int height = width % 3 + 1;
            if (cs == 1) {  // the head: unsigned luma in, signed out
              check_conv(k, {cs, 1, cout_pad, width, height, rt::OutI8::kSigned, false}, rng);
              ++checked;
              continue;
            }
            // conv1: signed in, unsigned out; conv2: unsigned in, residual;
            // the other pairings too (the kernels do not care).
            for (rt::OutI8 out : {rt::OutI8::kSigned, rt::OutI8::kUnsigned, rt::OutI8::kResidualSigned})
              for (bool signed_in : {false, true}) {
                check_conv(k, {cs, cin, cout_pad, width, height, out, signed_in}, rng);
                ++checked;
              }
          }
      }
  }
  MESSAGE("int8 conv cases checked: " << checked);
}
}  // namespace

DYDCA_CASE_IF("int8 conv kernels are bit-exact against the scalar reference", "avx2",
              simd_level_supported(SimdLevel::kAvx2), "this CPU has no AVX2",
              int8_conv_exact({SimdLevel::kAvx2}))

DYDCA_CASE_IF("int8 conv kernels are bit-exact against the scalar reference", "avx512",
              simd_level_supported(SimdLevel::kAvx512) && rt::cpu_has_vnni(), "this CPU has no AVX-512 VNNI",
              int8_conv_exact({SimdLevel::kAvx512}))

namespace {
void int8_tail_exact(const std::vector<SimdLevel>& levels_to_test) {
  std::mt19937 rng(19);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const rt::KernelTableI8& ref = rt::kernels_i8_for(SimdLevel::kNone);
  int checked = 0;
  for (SimdLevel level : levels_to_test) {
    CAPTURE(simd_level_name(level));
    const rt::KernelTableI8& k = rt::kernels_i8_for(level);
    for (int scale : {1, 2, 3, 4})  // 1: the x1 post-filter
      for (int cs : {8, 16, 24, 32, 40, 48, 56, 64})
        for (int width : {1, 3, 4, 7, 16, 17, 25, 33})
          for (int height : {1, 2, 5}) {
            const int cin = std::max(1, cs - (width % 5));
            const int cin4 = (cin + 3) / 4;
            const int bw = width + 4 + 2, bh = height + 4;
            const size_t slack = size_t(rt::kMaxOverread + 4) * 64;
            std::vector<uint8_t> feat(size_t(bw) * bh * cs + slack);
            for (auto& v : feat) v = random_byte(rng);
            std::vector<float> x(size_t(bw) * bh + slack);
            for (auto& v : x) v = float(rng() % 256) / 255.0f;
            std::vector<int8_t> tw(size_t(9) * cin4 * rt::kTailChannels * 4);
            for (auto& v : tw) v = random_weight(rng);
            std::vector<int32_t> init_raw(rt::kTailChannels), init_off(rt::kTailChannels, 0);
            for (int o = 0; o < rt::kTailChannels; ++o) {
              int32_t s = 0;
              for (int g = 0; g < 9 * cin4; ++g)
                for (int kk = 0; kk < 4; ++kk) s += tw[(size_t(g) * rt::kTailChannels + o) * 4 + kk];
              init_raw[size_t(o)] = -128 * s;
            }
            std::vector<float> mul(rt::kTailChannels), bias(rt::kTailChannels), sw(25 * rt::kTailChannels);
            for (auto& v : mul) v = 0.3f / (float(9 * cin4) * 4 * 127 * 40) * (1 + std::fabs(u(rng)));
            for (auto& v : bias) v = 0.05f * u(rng);
            for (auto& v : sw) v = 0.04f + 0.02f * u(rng);
            const int s = scale, hw = width * s + 3, hh = height * s;
            auto args = [&](uint8_t* hr, float* hrf) {
              rt::TailI8Args a;
              a.feat = feat.data() + size_t(bw) * cs + cs;
              a.feat_row = ptrdiff_t(bw) * cs;
              a.feat_cs = cs;
              a.cin4 = cin4;
              a.tail_weight = tw.data();
              a.init_raw = init_raw.data();
              a.init_off = init_off.data();
              a.mul = mul.data();
              a.bias = bias.data();
              a.x = x.data();
              a.x_row = bw;
              a.skip_weight = sw.data();
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
            CAPTURE(scale);
            CAPTURE(cs);
            CAPTURE(width);
            CAPTURE(height);
            CHECK(r8 == s8);
            CHECK(same_bits(rf, sf));
            size_t mid = 0;  // outputs away from the clamps: the test means something
            for (int y = 0; y < hh; ++y)
              for (int xx = 0; xx < width * s; ++xx) {
                const uint8_t v = r8[size_t(y) * hw + xx];
                mid += v > 0 && v < 255 && v != 77;
              }
            CHECK(mid > size_t(width) * s * hh / 4);
            for (int y = 0; y < hh; ++y)
              for (int xx = width * s; xx < hw; ++xx) CHECK(s8[size_t(y) * hw + xx] == 77);
            ++checked;
          }
  }
  MESSAGE("int8 tail cases checked: " << checked);
}
}  // namespace

DYDCA_CASE_IF("int8 tail kernels are bit-exact against the scalar reference", "avx2",
              simd_level_supported(SimdLevel::kAvx2), "this CPU has no AVX2",
              int8_tail_exact({SimdLevel::kAvx2}))

DYDCA_CASE_IF("int8 tail kernels are bit-exact against the scalar reference", "avx512",
              simd_level_supported(SimdLevel::kAvx512) && rt::cpu_has_vnni(), "this CPU has no AVX-512 VNNI",
              int8_tail_exact({SimdLevel::kAvx512}))

// ---- naive int8 network from model.h's rules ------------------------------------------

namespace {

// Per output channel of the whole tensor: s = max|W[o]| / 127 (1 if zero),
// q = clamp(rne(W / s), -127, 127).
void rule_quantize(const Tensor& t, std::vector<int>* q, std::vector<float>* s) {
  const size_t outs = size_t(t.shape[0]), per = t.data.size() / outs;
  q->resize(t.data.size());
  s->resize(outs);
  for (size_t o = 0; o < outs; ++o) {
    float m = 0;
    for (size_t i = 0; i < per; ++i) m = std::max(m, std::fabs(t.data[o * per + i]));
    (*s)[o] = m > 0 ? m / 127.0f : 1.0f;
    for (size_t i = 0; i < per; ++i)
      (*q)[o * per + i] = int(std::clamp(std::nearbyint(t.data[o * per + i] / (*s)[o]), -127.0f, 127.0f));
  }
}

using Codes = std::vector<std::vector<int>>;  // [channel][y*W + x]

// Integer 3x3 sums of codes, weight[:cout, :cin]; valid where the 3x3 window
// is inside the canvas (borders left 0: never read for the output region).
std::vector<std::vector<int64_t>> conv_int(const Codes& in, const std::vector<int>& q,
                                           const Tensor& t, int cout, int W, int H) {
  const int cin = int(in.size()), in_full = t.shape[1];
  std::vector<std::vector<int64_t>> out(size_t(cout), std::vector<int64_t>(size_t(W) * H, 0));
  for (int co = 0; co < cout; ++co)
    for (int y = 1; y + 1 < H; ++y)
      for (int x = 1; x + 1 < W; ++x) {
        int64_t acc = 0;
        for (int ci = 0; ci < cin; ++ci)
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx)
              acc += int64_t(q[((size_t(co) * in_full + ci) * 3 + ky) * 3 + kx]) *
                     in[size_t(ci)][size_t(y + ky - 1) * W + x + kx - 1];
        out[size_t(co)][size_t(y) * W + x] = acc;
      }
  return out;
}

int requant(int64_t acc, double s_o, double a_in, double a_out, float bias, bool is_signed,
            double res = 0, int q_res = 0) {
  const float m = float(s_o * a_in / a_out), b = float(double(bias) / a_out);
  float t = std::fma(float(acc), m, b);
  if (res != 0) t = std::fma(float(q_res), float(res / a_out), t);
  const float lo = is_signed ? -127.f : 0.f, hi = is_signed ? 127.f : 255.f;
  return int(std::nearbyint(std::clamp(t, lo, hi)));
}

// The int8 network (model.h), HR output before quantisation (float, luma/255).
std::vector<float> naive_int8(const Model& m, int path, const std::vector<uint8_t>& lr, int w, int h) {
  const ModelArch& a = m.arch;
  const PathSpec ps = a.paths[size_t(path)];
  REQUIRE(ps.width > 0);
  const std::vector<float>& act = m.act.path[size_t(path)];
  const int s = a.scale, s2 = s * s, wd = ps.width, e = a.inner_width(wd);
  const int R = 2 + 2 * ps.depth, W = w + 2 * R, H = h + 2 * R;
  Codes x(1, std::vector<int>(size_t(W) * H));
  std::vector<float> xf(size_t(W) * H);
  for (int y = 0; y < H; ++y)
    for (int xx = 0; xx < W; ++xx) {
      const uint8_t v = lr[size_t(std::clamp(y - R, 0, h - 1)) * w + std::clamp(xx - R, 0, w - 1)];
      x[0][size_t(y) * W + xx] = v;
      xf[size_t(y) * W + xx] = float(v) / 255.0f;
    }
  std::vector<int> q;
  std::vector<float> sc;
  auto layer = [&](const Codes& in, const std::string& name, int cout, double a_in, double a_out,
                   bool is_signed, const Codes* residual, double a_res) {
    rule_quantize(*m.find(name + ".weight"), &q, &sc);
    auto acc = conv_int(in, q, *m.find(name + ".weight"), cout, W, H);
    const Tensor& b = *m.find(name + ".bias");
    Codes out(size_t(cout), std::vector<int>(size_t(W) * H, 0));
    for (int c = 0; c < cout; ++c)
      for (size_t i = 0; i < out[size_t(c)].size(); ++i)
        out[size_t(c)][i] = requant(acc[size_t(c)][i], sc[size_t(c)], a_in, a_out, b.data[size_t(c)],
                                    is_signed, residual ? a_res : 0.0,
                                    residual ? (*residual)[size_t(c)][i] : 0);
    return out;
  };
  Codes f = layer(x, "head", wd, 1.0 / 255.0, act[0], true, nullptr, 0);
  for (int i = 0; i < ps.depth; ++i) {
    const std::string p = "blocks." + std::to_string(i);
    Codes r = layer(f, p + ".conv1", e, act[size_t(2 * i)], act[size_t(1 + 2 * i)], false, nullptr, 0);
    f = layer(r, p + ".conv2", wd, act[size_t(1 + 2 * i)], act[size_t(2 + 2 * i)], true, &f,
              act[size_t(2 * i)]);
  }
  rule_quantize(*m.find("tail.weight"), &q, &sc);
  auto acc = conv_int(f, q, *m.find("tail.weight"), s2, W, H);
  const Tensor& tb = *m.find("tail.bias");
  const Tensor& sw = *m.find("skip.weight");
  const Tensor& sb = *m.find("skip.bias");
  const double a_hd = act[size_t(2 * ps.depth)];
  std::vector<float> hr(size_t(w) * s * h * s);
  for (int c = 0; c < s2; ++c)
    for (int y = 0; y < h; ++y)
      for (int xx = 0; xx < w; ++xx) {
        const size_t i = size_t(y + R) * W + xx + R;
        float v = std::fma(float(acc[size_t(c)][i]), float(double(sc[size_t(c)]) * a_hd),
                           tb.data[size_t(c)] + sb.data[size_t(c)]);
        for (int ky = 0; ky < 5; ++ky)
          for (int kx = 0; kx < 5; ++kx)
            v = std::fma(xf[size_t(y + R + ky - 2) * W + xx + R + kx - 2],
                         sw.data[size_t(c) * 25 + size_t(ky * 5 + kx)], v);
        hr[size_t(y * s + c / s) * (w * s) + xx * s + c % s] = v;
      }
  return hr;
}

}  // namespace

TEST_CASE("int8 runtime equals the naive int8 network of model.h's rules, every level") {
  struct Arch {
    int scale, C, E, N;
    std::vector<PathSpec> paths;
  };
  const std::vector<Arch> archs = {
      {2, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}},
      {3, 24, 24, 2, {{0, 0}, {1, 12}, {2, 24}}},
      {4, 16, 32, 2, {{0, 0}, {1, 16}, {2, 12}}},  // E != C, widths not multiples of 8
      {1, 8, 8, 2, {{0, 0}, {1, 8}, {2, 8}}},       // the x1 post-filter
  };
  const int w = 37, h = 23;
  const std::vector<uint8_t> lr = random_plane(w, h, 3);
  for (const Arch& a : archs) {
    const Model m = with_scales(random_model(a.scale, a.C, a.E, a.N, a.paths, 5), lr, w, h);
    for (int p = 1; p < int(a.paths.size()); ++p) {
      const std::vector<float> want = naive_int8(m, p, lr, w, h);
      for (SimdLevel level : all_levels()) {
        CAPTURE(a.scale);
        CAPTURE(p);
        CAPTURE(simd_level_name(level));
        SrRuntime rt = make_rt(m, 16, 2, level);
        REQUIRE(rt.precision() == Precision::kInt8);
        CHECK(same_bits(run_float(rt, lr, w, h, p), want));
      }
    }
  }
}

TEST_CASE("int8: tiled == whole frame bit for bit, every level, path, size and grouping") {
  const std::vector<PathSpec> paths = {{0, 0}, {1, 16}, {2, 24}, {4, 32}};
  struct Size {
    int w, h;
  };
  for (Size sz : {Size{37, 23}, Size{64, 40}, Size{9, 7}, Size{1, 1}, Size{2, 13}}) {
    const std::vector<uint8_t> lr = random_plane(sz.w, sz.h, uint32_t(sz.w * 100 + sz.h));
    const Model m = with_scales(random_model(2, 32, 32, 4, paths, 9), lr, sz.w, sz.h);
    std::vector<std::vector<uint8_t>> ref8(paths.size());
    for (SimdLevel level : all_levels()) {
      SrRuntime whole = make_rt(m, std::max(sz.w, sz.h), 1, level, 1, 1);
      SrRuntime tiled = make_rt(m, 8, 2, level, 1, 1);
      SrRuntime grouped = make_rt(m, 8, 3, level, 3, 2);
      SrRuntime pixel = make_rt(m, 1, 2, level, 1, 1);
      const bool small = sz.w * sz.h <= 400;
      for (int p = 0; p < int(paths.size()); ++p) {
        CAPTURE(sz.w);
        CAPTURE(sz.h);
        CAPTURE(p);
        CAPTURE(simd_level_name(level));
        const auto wf = run_float(whole, lr, sz.w, sz.h, p);
        const auto w8 = run_u8(whole, lr, sz.w, sz.h, p);
        CHECK(same_bits(wf, run_float(tiled, lr, sz.w, sz.h, p)));
        CHECK(w8 == run_u8(tiled, lr, sz.w, sz.h, p));
        CHECK(w8 == run_u8(grouped, lr, sz.w, sz.h, p));
        if (small) CHECK(w8 == run_u8(pixel, lr, sz.w, sz.h, p));
        // Every level gives the reference's bits.
        if (level == SimdLevel::kNone)
          ref8[size_t(p)] = w8;
        else
          CHECK(w8 == ref8[size_t(p)]);
      }
    }
  }
}

TEST_CASE("precision: auto, explicit int8/fp32, errors, memory, the blob's int8 codes") {
  const std::vector<uint8_t> lr = random_plane(40, 30, 1);
  const Model plain = random_model(2, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 4);
  const Model scaled = with_scales(plain, lr, 40, 30);
  const SimdLevel best = best_simd_level();
  CHECK(std::string(precision_name(Precision::kInt8)) == "int8");
  CHECK(*parse_precision("fp32") == Precision::kFp32);
  CHECK(*parse_precision("auto") == Precision::kAuto);
  CHECK_FALSE(parse_precision("int4"));
  {
    SrRuntime rt = make_rt(plain, 32, 1, best, 4, 4, Precision::kAuto);
    CHECK(rt.precision() == Precision::kFp32);  // no scales
  }
  {
    SrRuntime rt = make_rt(scaled, 32, 1, best, 4, 4, Precision::kAuto);
    if (best != SimdLevel::kNone)
      CHECK(rt.precision() == Precision::kInt8);
    else
      MESSAGE("SKIPPED: no AVX2: auto stays fp32");
  }
  {
    SrRuntime rt = make_rt(scaled, 32, 1, SimdLevel::kNone, 4, 4, Precision::kAuto);
    CHECK(rt.precision() == Precision::kFp32);  // --simd none: auto keeps fp32
    SrRuntime r8 = make_rt(scaled, 32, 1, SimdLevel::kNone, 4, 4, Precision::kInt8);
    CHECK(r8.precision() == Precision::kInt8);
    SrRuntime f = make_rt(scaled, 32, 1, best, 4, 4, Precision::kFp32);
    SrRuntime i = make_rt(scaled, 32, 1, best, 4, 4, Precision::kInt8);
    CHECK(f.precision() == Precision::kFp32);
    MESSAGE("memory_bytes fp32 " << f.memory_bytes() << ", int8 " << i.memory_bytes());
    CHECK(i.memory_bytes() * 2 < f.memory_bytes());
  }
  RuntimeOptions o;
  o.precision = Precision::kInt8;
  auto bad = SrRuntime::create(plain, o);
  REQUIRE_FALSE(bad);
  CHECK(bad.error_message().find("int8 activation scales") != std::string::npos);
  Model wrong = scaled;
  wrong.act.path[2].pop_back();
  auto bad2 = SrRuntime::create(wrong, o);
  REQUIRE_FALSE(bad2);
  CHECK(bad2.error_message().find("path 2 has 4") != std::string::npos);

  // Weights that are exactly int8 codes times the rule's scale (what an int8
  // blob gives): with or without the stored codes, the same output.
  Model coded = scaled;
  for (Tensor& t : coded.tensors) {
    if (t.shape.size() < 2 || t.name == "skip.weight") continue;
    const size_t outs = size_t(t.shape[0]), per = t.data.size() / outs;
    t.int8.resize(t.data.size());
    t.int8_scale.resize(outs);
    for (size_t oc = 0; oc < outs; ++oc) {
      float mx = 0;
      for (size_t k = 0; k < per; ++k) mx = std::max(mx, std::fabs(t.data[oc * per + k]));
      t.int8_scale[oc] = mx / 127.0f;
      for (size_t k = 0; k < per; ++k) {
        t.int8[oc * per + k] = int8_t(std::nearbyint(t.data[oc * per + k] / t.int8_scale[oc]));
        t.data[oc * per + k] = float(t.int8[oc * per + k]) * t.int8_scale[oc];
      }
    }
  }
  Model uncoded = coded;
  for (Tensor& t : uncoded.tensors) {
    t.int8.clear();
    t.int8_scale.clear();
  }
  SrRuntime a = make_rt(coded, 32, 1, best);
  SrRuntime b = make_rt(uncoded, 32, 1, best);
  CHECK(run_u8(a, lr, 40, 30, 2) == run_u8(b, lr, 40, 30, 2));
}

TEST_CASE("int8: no allocation per frame, any thread count gives the same bits") {
  const std::vector<uint8_t> lr = random_plane(70, 45, 8);
  const Model m = with_scales(random_model(2, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 8), lr, 70, 45);
  const SimdLevel best = best_simd_level();
  SrRuntime one = make_rt(m, 16, 1, best);
  const auto want = run_u8(one, lr, 70, 45, 2);
  for (int threads : {2, 3, 5}) {
    SrRuntime rt = make_rt(m, 16, threads, best);
    CHECK(run_u8(rt, lr, 70, 45, 2) == want);
  }
  // (the operator new counter of test_runtime.cpp covers the process)
  std::vector<uint8_t> hr(size_t(70) * 2 * 45 * 2);
  std::vector<uint8_t> paths(size_t(one.tiles_x(70)) * one.tiles_y(45));
  for (size_t i = 0; i < paths.size(); ++i) paths[i] = uint8_t(i % 3);
  REQUIRE(one.upscale_luma(lr.data(), 70, 45, 70, hr.data(), 140, paths));
  const long before = test_allocations();
  for (int i = 0; i < 5; ++i) {
    REQUIRE(one.upscale_luma(lr.data(), 70, 45, 70, hr.data(), 140, paths));
    REQUIRE(one.upscale_luma(lr.data(), 70, 45, 70, hr.data(), 140, 2));
  }
  CHECK(test_allocations() == before);
}

TEST_CASE("int8 vs fp32 on real content: PSNR bound, calibration [samples]") {
  const std::string clip = test::sample("phone1080.mp4");
  if (clip.empty()) DYDCA_SKIP("phone1080.mp4 not fetched (samples/fetch.sh)");
  auto reader = VideoReader::open(clip, 1);
  REQUIRE_MESSAGE(reader.has_value(), (reader ? std::string() : reader.error_message()));
  // Two LR frames (area 1/2 of 1080p luma, 960x540) a second apart.
  std::vector<std::vector<uint8_t>> frames;
  int w = 0, h = 0;
  Frame fr;
  for (int i = 0; i < 31 && frames.size() < 2; ++i) {
    auto got = reader->read(fr);
    REQUIRE_MESSAGE(got.has_value(), (got ? std::string() : got.error_message()));
    if (!*got) break;
    if (i % 30 != 0) continue;
    auto lr = downscale(fr, 2);
    REQUIRE(lr.has_value());
    w = lr->width;
    h = lr->height;
    frames.push_back(lr->y);
  }
  REQUIRE(frames.size() == 2);
  const Model m0 = random_model(2, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 21);
  auto act = calibrate_act_scales(m0, {LumaView{frames[0].data(), w, h, w}});
  REQUIRE(act.has_value());
  Model m = m0;
  m.act = *act;
  for (size_t p = 0; p < m.act.path.size(); ++p) {
    std::string s;
    for (float v : m.act.path[p]) s.append(" ").append(std::to_string(v));  // (operator+ trips GCC 12's -Wrestrict)
    MESSAGE("path " << p << " scales:" << s);
  }
  SrRuntime f32 = make_rt(m, 32, 2, best_simd_level(), 4, 4, Precision::kFp32);
  SrRuntime i8 = make_rt(m, 32, 2, best_simd_level(), 4, 4, Precision::kInt8);
  // Frame 1 was not seen by the calibration.
  for (int p = 1; p < 3; ++p) {
    const double db = psnr_u8(run_u8(f32, frames[1], w, h, p), run_u8(i8, frames[1], w, h, p));
    MESSAGE("path " << p << ": int8 vs fp32 output PSNR " << db << " dB");
    CHECK(db >= 45.0);
  }
}
