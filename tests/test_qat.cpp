// int8 (issue 16), training side: the fake quantisation follows model.h's
// rules, the weights are those the int8 blob stores, the LibTorch int8
// forward is the runtime's integer arithmetic (checked against a scalar
// int32 version written here from model.h's comment), calibration gives one
// scale per tensor, QAT keeps int8 close to fp32 and is deterministic and
// resumable.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "dydca/chunking.h"
#include "dydca/container.h"
#include "dydca/media.h"
#include "dydca/metrics.h"
#include "dydca/synthetic.h"
#include "dydca/training.h"
#include "test_util.h"
#include "../training/src/supernet.h"
// doctest after Torch: glog's CHECK would otherwise replace doctest's.
#include <doctest/doctest.h>

using namespace dydca;

namespace {

std::vector<float> values(const torch::Tensor& t) {
  auto c = t.detach().contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

ModelArch qat_arch() {
  ModelArch a;
  a.scale = 2;
  a.channels = 16;
  a.inner = 16;
  a.blocks = 2;
  a.paths = {{0, 0}, {1, 8}, {2, 16}};
  return a;
}

// ---- a scalar int8 network, written from model.h's comment -------------------

int rne_clamp(float v, int lo, int hi) {
  return int(std::clamp(std::nearbyint(v), float(lo), float(hi)));
}

// Codes of one layer on a (w x h) grid, channel-major.
struct Plane {
  int w = 0, h = 0, c = 0;
  std::vector<int> q;
  int at(int ch, int y, int x) const { return q[(size_t(ch) * h + y) * w + x]; }
};

struct QuantWeights {
  std::vector<float> scale;  // per output channel of the full tensor
  std::vector<int> q;        // full tensor [out][in][3][3]
  int in = 0;
};

QuantWeights quantise(const Tensor& t) {
  QuantWeights r;
  const size_t outs = size_t(t.shape[0]), per = t.data.size() / outs;
  r.in = t.shape[1];
  for (size_t o = 0; o < outs; ++o) {
    float m = 0;
    for (size_t i = 0; i < per; ++i) m = std::max(m, std::fabs(t.data[o * per + i]));
    const float s = m > 0 ? m / 127.0f : 1.0f;
    r.scale.push_back(s);
    for (size_t i = 0; i < per; ++i) r.q.push_back(rne_clamp(t.data[o * per + i] / s, -127, 127));
  }
  return r;
}

// Valid 3x3 convolution of codes, requantised by model.h's formula:
// ((acc * s_o) * a_in + bias) [+ residual value], / a_out, rne, clamp.
// Returns the pre-quantisation values (for the tail) when lo == hi == 0.
std::vector<float> requant_conv(const Plane& in, const QuantWeights& W, int outs,
                                const Tensor& bias, float a_in, const Plane* res, float a_res,
                                int res_off, Plane* out, float a_out, int lo, int hi) {
  const int ow = in.w - 2, oh = in.h - 2;
  std::vector<float> vals(size_t(outs) * oh * ow);
  if (out) *out = Plane{ow, oh, outs, std::vector<int>(vals.size())};
  for (int o = 0; o < outs; ++o)
    for (int y = 0; y < oh; ++y)
      for (int x = 0; x < ow; ++x) {
        int32_t acc = 0;
        for (int i = 0; i < in.c; ++i)
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx)
              acc += W.q[((size_t(o) * W.in + i) * 3 + ky) * 3 + kx] * in.at(i, y + ky, x + kx);
        float v = float(acc) * W.scale[size_t(o)] * a_in + bias.data[size_t(o)];
        if (res) v += float(res->at(o, y + res_off, x + res_off)) * a_res;
        const size_t k = (size_t(o) * oh + y) * ow + x;
        vals[k] = v;
        if (out) out->q[k] = rne_clamp(v / a_out, lo, hi);
      }
  return vals;
}

// HR luma in [0,255], before rounding, of path p on an edge-replicated frame.
std::vector<float> scalar_int8_upscale(const Model& m, int p, const std::vector<uint8_t>& lr,
                                       int W, int H) {
  const ModelArch& a = m.arch;
  const PathSpec ps = a.paths[size_t(p)];
  const auto& act = m.act.path[size_t(p)];
  const int s = a.scale, s2 = s * s, R = 2 + 2 * ps.depth;
  const int w = ps.width, e = a.inner_width(w);
  Plane x{W + 2 * R, H + 2 * R, 1, {}};
  for (int y = 0; y < x.h; ++y)
    for (int xx = 0; xx < x.w; ++xx)
      x.q.push_back(lr[size_t(std::clamp(y - R, 0, H - 1)) * W + std::clamp(xx - R, 0, W - 1)]);
  Plane h;
  requant_conv(x, quantise(*m.find("head.weight")), w, *m.find("head.bias"), 1.0f / 255.0f,
               nullptr, 0, 0, &h, act[0], -127, 127);
  float a_h = act[0];
  for (int i = 0; i < ps.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i);
    Plane r, h2;
    requant_conv(h, quantise(*m.find(b + ".conv1.weight")), e, *m.find(b + ".conv1.bias"), a_h,
                 nullptr, 0, 0, &r, act[size_t(1 + 2 * i)], 0, 255);
    requant_conv(r, quantise(*m.find(b + ".conv2.weight")), w, *m.find(b + ".conv2.bias"),
                 act[size_t(1 + 2 * i)], &h, a_h, 2, &h2, act[size_t(2 + 2 * i)], -127, 127);
    h = std::move(h2);
    a_h = act[size_t(2 + 2 * i)];
  }
  auto tail = requant_conv(h, quantise(*m.find("tail.weight")), s2, *m.find("tail.bias"), a_h,
                           nullptr, 0, 0, nullptr, 0, 0, 0);
  REQUIRE(tail.size() == size_t(s2) * W * H);
  const Tensor& kw = *m.find("skip.weight");
  const Tensor& kb = *m.find("skip.bias");
  std::vector<float> out(size_t(W) * s * H * s);
  for (int c = 0; c < s2; ++c)
    for (int y = 0; y < H; ++y)
      for (int xx = 0; xx < W; ++xx) {
        float g = kb.data[size_t(c)];
        for (int ky = 0; ky < 5; ++ky)
          for (int kx = 0; kx < 5; ++kx)
            g += kw.data[size_t(c) * 25 + ky * 5 + kx] *
                 (float(x.at(0, y + R - 2 + ky, xx + R - 2 + kx)) / 255.0f);
        const float v = g + tail[(size_t(c) * H + y) * W + xx];
        out[(size_t(y) * s + c / s) * W * s + size_t(xx) * s + c % s] = v * 255.0f;
      }
  return out;
}

// ---- a tiny real clip ---------------------------------------------------------------

struct Clip {
  std::vector<Frame> hr, lr;
  RoutingMap routing;
};

// 6 frames of cityCC0 (a 192x128 HR crop) when the samples are fetched, else
// a synthetic clip of the same size; x264 CRF 26 at x2.
Clip tiny_clip() {
  Clip c;
  std::vector<Frame> raw;
  const std::string path = test::sample("cityCC0.mpg");
  if (!path.empty()) {
    ReadOptions ro;
    ro.max_frames = 6;
    auto frames = read_all_frames(path, nullptr, ro);
    REQUIRE(frames);
    for (auto& f : *frames) raw.push_back(crop(f, 192, 128));
  } else {
    MESSAGE("cityCC0.mpg not fetched: a synthetic clip instead");
    raw = synthetic_clip(192, 128, 6, 5, /*noise=*/true);
  }
  std::vector<Frame> lr;
  for (auto& f : raw) {
    c.hr.push_back(pad_to_multiple(f, 4));
    lr.push_back(*downscale(c.hr.back(), 2));
  }
  X264Config xc;
  xc.preset = "ultrafast";
  xc.crf = 26;
  auto enc = encode_h264(lr, {25, 1}, xc);
  REQUIRE(enc);
  c.lr = *decode_h264(*enc);
  ChunkingParams cp;
  cp.scale = 2;
  cp.tile_size = 16;
  cp.cluster.chunks = 3;
  auto ch = chunk_video(c.hr, c.lr, cp);
  REQUIRE(ch);
  c.routing = ch->routing;
  REQUIRE(fill_path_tables(c.routing, qat_arch()));
  return c;
}

// Level-0 PSNR-Y over the whole frames, every tile on its chunk's path,
// through LibTorch in fp32 or (int8) as the int8 runtime computes it.
double level0_psnr(const Model& m, const Clip& c, bool int8) {
  const RoutingMap& r = c.routing;
  const int s = m.arch.scale;
  double sse = 0, n = 0;
  for (size_t f = 0; f < c.hr.size(); ++f) {
    const Frame& L = c.lr[f];
    const Frame& Hf = c.hr[f];
    std::vector<std::vector<uint8_t>> outs(m.arch.paths.size());
    for (int ty = 0; ty < r.tiles_y(); ++ty)
      for (int tx = 0; tx < r.tiles_x(); ++tx) {
        const int p = r.chunk_path[0][r.chunk(int(f), tx, ty)];
        if (outs[size_t(p)].empty()) {
          auto y = int8 ? reference_upscale_int8_u8(m, p, L.y.data(), L.width, L.height, 2)
                        : reference_upscale_u8(m, p, L.y.data(), L.width, L.height, 2);
          REQUIRE(y);
          outs[size_t(p)] = std::move(*y);
        }
        const auto& o = outs[size_t(p)];
        const int x0 = tx * r.tile_size * s, y0 = ty * r.tile_size * s;
        const int x1 = std::min(Hf.width, x0 + r.tile_size * s);
        const int y1 = std::min(Hf.height, y0 + r.tile_size * s);
        for (int y = y0; y < y1; ++y)
          for (int x = x0; x < x1; ++x) {
            const double d = double(o[size_t(y) * Hf.width + x]) - Hf.y[size_t(y) * Hf.width + x];
            sse += d * d;
            n += 1;
          }
      }
  }
  return psnr_from_mse(sse / n);
}

TrainConfig qat_config(int steps) {
  TrainConfig cfg;
  cfg.arch = qat_arch();
  cfg.steps = steps;
  cfg.batch = 8;
  cfg.patch = 16;
  cfg.seed = 3;
  return cfg;
}

void check_scale_counts(const Model& m) {
  REQUIRE(m.act.path.size() == m.arch.paths.size());
  for (size_t p = 0; p < m.arch.paths.size(); ++p) {
    const PathSpec& ps = m.arch.paths[p];
    CAPTURE(p);
    CHECK(m.act.path[p].size() == (ps.width > 0 ? size_t(1 + 2 * ps.depth) : 0u));
    for (float a : m.act.path[p]) CHECK((std::isfinite(a) && a > 0));
  }
}

}  // namespace

TEST_CASE("int8 fake quantisation follows model.h's rules (hand-computed)") {
  // Weights, per output channel of the full tensor: s_o = max|W[o]| / 127.
  const float u = 1.0f / 128;  // max 127/128 -> s = 1/128 exactly
  auto w = torch::tensor({127 * u, 0.5f * u, 1.5f * u, -2.5f * u,  // ties go to even
                          0.f, 0.f, 0.f, 0.f,                      // all zero: s = 1
                          -0.25f, 0.25f, 0.f, 0.1f * 0.25f / 127})
               .reshape({3, 1, 2, 2});
  auto s = quant::weight_scales(w);
  CHECK(values(s) == std::vector<float>{u, 1.f, 0.25f / 127});
  CHECK(values(quant::weight_codes(w, s)) ==
        std::vector<float>{127, 0, 2, -2, 0, 0, 0, 0, -127, 127, 0, 0});
  // The slice of a path keeps the full tensor's scales.
  auto wide = torch::zeros({1, 4, 3, 3});
  wide[0][3][1][1] = 1.27f;
  wide[0][0][0][0] = 0.5f;
  CHECK(quant::weight_scales(wide).item<float>() == doctest::Approx(0.01f));
  CHECK(values(quant::weight_codes(wide, quant::weight_scales(wide)))[0] == 50);
  // Activations: signed -127..127, unsigned (after ReLU) 0..255, rne.
  auto v = torch::tensor({0.125f, 0.375f, -0.375f, 0.625f, 100.f, -100.f, 0.3f});
  CHECK(values(quant::fake_quant(v, 0.25f, -127, 127)) ==
        std::vector<float>{0, 0.5f, -0.5f, 0.5f, 31.75f, -31.75f, 0.25f});
  auto r = torch::tensor({-1.f, 70.f, 0.625f, 63.75f});
  CHECK(values(quant::fake_quant(r, 0.25f, 0, 255)) == std::vector<float>{0, 63.75f, 0.5f, 63.75f});
  // Straight-through gradient: 1 inside the clamp range, 0 outside.
  auto g = v.clone().requires_grad_(true);
  quant::fake_quant(g, 0.25f, -127, 127).sum().backward();
  CHECK(values(g.grad()) == std::vector<float>{1, 1, 1, 1, 0, 0, 1});
  auto gr = r.clone().requires_grad_(true);
  quant::fake_quant(gr, 0.25f, 0, 255).sum().backward();
  CHECK(values(gr.grad()) == std::vector<float>{0, 0, 1, 1});
  // MSE calibration: a tensor of codes exactly on a grid is kept at its max.
  CHECK(quant::mse_scale(torch::tensor({-127.f, 3.f, 64.f}) * 0.5f, false) == 0.5f);
  CHECK(quant::mse_scale(torch::zeros({4}), true) == 1.0f);
  // Percentiles of |v| (unsigned: of max(v, 0)).
  auto ramp = -torch::arange(1, 101, torch::kFloat32);
  CHECK(quant::percentile_scale(ramp, false, 100) == doctest::Approx(100.0 / 127));
  CHECK(quant::percentile_scale(ramp, false, 99) == doctest::Approx(99.0 / 127));
  CHECK(quant::percentile_scale(-ramp, true, 50) == doctest::Approx(50.0 / 255));
  CHECK(quant::percentile_scale(ramp, true, 100) == 1.0f);  // nothing above 0
}

TEST_CASE("the weight fake quantisation is what the int8 model blob stores") {
  Model m = test::random_model(3, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 5);
  auto blob = serialize_model(m, ModelBlobOptions{WeightFormat::kInt8, 3});
  REQUIRE(blob);
  auto back = parse_model(blob->data(), blob->size());
  REQUIRE(back);
  int checked = 0;
  for (const Tensor& t : m.tensors) {
    if (t.shape.size() != 4) continue;
    CAPTURE(t.name);
    std::vector<int64_t> shape(t.shape.begin(), t.shape.end());
    auto fq = quant::fake_quant_weights(
        torch::from_blob(const_cast<float*>(t.data.data()), shape, torch::kFloat32));
    CHECK(values(fq) == back->find(t.name)->data);  // bit for bit: rounded once, the same way
    ++checked;
  }
  CHECK(checked == 7);
}

TEST_CASE("the LibTorch int8 forward is the runtime's integer arithmetic") {
  for (int scale : {2, 3}) {
    CAPTURE(scale);
    Model m = test::random_model(scale, 16, 16, 2, {{0, 0}, {1, 8}, {2, 16}}, 7);
    m.act.path = {{}, {0.02f, 0.01f, 0.03f}, {0.02f, 0.01f, 0.03f, 0.012f, 0.035f}};
    const int W = 23, H = 17;  // odd sizes: borders on every side
    auto frame = synthetic_clip(W + 1, H + 1, 1, 4)[0];
    std::vector<uint8_t> lr(size_t(W) * H);
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) lr[size_t(y) * W + x] = frame.y[size_t(y) * frame.width + x];
    for (int p = 1; p < 3; ++p) {
      CAPTURE(p);
      auto ref = reference_upscale_int8(m, p, lr.data(), W, H, 2);
      REQUIRE(ref);
      auto ours = scalar_int8_upscale(m, p, lr, W, H);
      REQUIRE(ours.size() == ref->size());
      double max_err = 0;
      for (size_t i = 0; i < ours.size(); ++i)
        max_err = std::max(max_err, std::fabs(double(ours[i]) - (*ref)[i]));
      // Same codes everywhere; only the fp32 skip sums in another order.
      MESSAGE("x" << scale << " path " << p << ": max |scalar int8 - LibTorch int8| = " << max_err
                  << " (of 255)");
      CHECK(max_err < 1e-3);
      // And int8 is near the fp32 network (the scales fit these activations).
      auto fp = reference_upscale(m, p, lr.data(), W, H, 2);
      REQUIRE(fp);
      double d = 0;
      for (size_t i = 0; i < ours.size(); ++i) d = std::max(d, std::fabs(double((*fp)[i]) - (*ref)[i]));
      CHECK(d < 8.0);
    }
    Model bad = m;
    bad.act.path[2].pop_back();
    CHECK_FALSE(reference_upscale_int8(bad, 2, lr.data(), W, H, 1));
    bad.act.path.clear();
    CHECK_FALSE(reference_upscale_int8(bad, 1, lr.data(), W, H, 1));
  }
}

TEST_CASE("QAT: scales exported per path, int8 within a bound of fp32, deterministic") {
  Clip c = tiny_clip();
  TrainConfig cfg = qat_config(400);
  TrainReport fp_rep;
  auto fp = train_dynamic(c.hr, c.lr, c.routing, cfg, &fp_rep);
  REQUIRE(fp);
  CHECK(fp->act.empty());  // qat off: fp32 only, as before
  auto ptq = *fp;
  auto scales = calibrate_act_scales(*fp, c.hr, c.lr, c.routing, cfg);
  REQUIRE(scales);
  ptq.act = *scales;
  check_scale_counts(ptq);

  cfg.qat = true;
  TrainReport rep;
  auto q = train_dynamic(c.hr, c.lr, c.routing, cfg, &rep);
  REQUIRE(q);
  check_scale_counts(*q);
  CHECK(rep.qat_steps == 60);
  const double bic = [&] {
    QualityAccumulator acc(false);
    for (size_t i = 0; i < c.hr.size(); ++i)
      REQUIRE(acc.add(c.hr[i], *resize(c.lr[i], c.hr[i].width, c.hr[i].height, ScaleFilter::kBicubic)));
    return acc.result().psnr_y;
  }();
  const double a = level0_psnr(*fp, c, false), b = level0_psnr(ptq, c, true);
  const double q32 = level0_psnr(*q, c, false), q8 = level0_psnr(*q, c, true);
  MESSAGE("level 0 PSNR-Y: bicubic " << bic << ", fp32 " << a << ", post-training int8 " << b
                                     << ", QAT int8 " << q8 << " (its fp32 weights " << q32
                                     << "); held-out at QAT start " << rep.holdout_psnr_fp32_at_qat
                                     << " fp32 / " << rep.holdout_psnr_int8_at_qat << " int8, after "
                                     << rep.holdout_psnr_after);
  CHECK(a > bic + 0.1);
  CHECK(q8 > a - 0.05);  // the target, on this tiny clip
  CHECK(q8 > b - 0.01);
  // Deterministic for a seed: same weights, same scales.
  auto q2 = train_dynamic(c.hr, c.lr, c.routing, cfg);
  REQUIRE(q2);
  CHECK(q2->act == q->act);
  for (size_t i = 0; i < q->tensors.size(); ++i) CHECK(q2->tensors[i].data == q->tensors[i].data);
  // qat_fraction 0: no QAT step, post-training scales still exported.
  cfg.qat_fraction = 0;
  cfg.steps = 20;
  TrainReport r0;
  auto z = train_dynamic(c.hr, c.lr, c.routing, cfg, &r0);
  REQUIRE(z);
  CHECK(r0.qat_steps == 0);
  check_scale_counts(*z);
}

TEST_CASE("QAT: a run stopped during QAT resumes to the same result") {
  Clip c = tiny_clip();
  std::string ck = std::string(DYDCA_BINARY_DIR) + "/test-tmp-qat.ckpt";
  std::remove(ck.c_str());
  TrainConfig cfg = qat_config(24);
  cfg.batch = 4;
  cfg.qat = true;
  cfg.qat_fraction = 0.5;  // QAT from step 12
  cfg.calib_tiles = 16;
  auto straight = train_dynamic(c.hr, c.lr, c.routing, cfg);
  REQUIRE(straight);
  cfg.checkpoint = ck;
  cfg.checkpoint_every = 4;
  TrainReport r1;
  auto part = train_dynamic(c.hr, c.lr, c.routing, cfg, &r1,
                            [](const Progress& p) { return p.done < 18; });
  REQUIRE(part);
  CHECK(r1.stopped_early);
  TrainReport r2;
  auto resumed = train_dynamic(c.hr, c.lr, c.routing, cfg, &r2);
  REQUIRE(resumed);
  CHECK(r2.resumed);
  CHECK(resumed->act == straight->act);
  double md = 0;
  for (size_t i = 0; i < straight->tensors.size(); ++i)
    for (size_t k = 0; k < straight->tensors[i].data.size(); ++k)
      md = std::max(md, double(std::fabs(straight->tensors[i].data[k] - resumed->tensors[i].data[k])));
  CHECK(md < 1e-5);
  std::remove(ck.c_str());
}
