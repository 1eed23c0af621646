#include "supernet.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <stdexcept>

namespace dydca {

namespace F = torch::nn::functional;

std::vector<float> bicubic_skip_kernel(int s) {
  auto w = [](double t) {
    const double a = -0.5;
    t = std::fabs(t);
    if (t <= 1) return (a + 2) * t * t * t - (a + 3) * t * t + 1;
    if (t < 2) return a * t * t * t - 5 * a * t * t + 8 * a * t - 4 * a;
    return 0.0;
  };
  std::vector<float> k(size_t(s) * s * 25, 0.f);
  for (int py = 0; py < s; ++py)
    for (int px = 0; px < s; ++px) {
      double dy = (py + 0.5) / s - 0.5, dx = (px + 0.5) / s - 0.5;
      for (int ky = 0; ky < 5; ++ky)
        for (int kx = 0; kx < 5; ++kx)
          k[size_t(py * s + px) * 25 + ky * 5 + kx] = float(w(ky - 2 - dy) * w(kx - 2 - dx));
    }
  return k;
}

std::vector<float> lanczos_skip_kernel(int s, int lobes) {
  constexpr double kPi = 3.14159265358979323846;
  auto w = [lobes](double t) {
    t = std::fabs(t);
    if (t < 1e-12) return 1.0;
    if (t >= lobes) return 0.0;
    return lobes * std::sin(kPi * t) * std::sin(kPi * t / lobes) / (kPi * kPi * t * t);
  };
  // Separable, cut to the 5x5 support and renormalised per phase (taps sum
  // to 1: a flat picture stays flat).
  std::vector<float> k(size_t(s) * s * 25, 0.f);
  for (int py = 0; py < s; ++py)
    for (int px = 0; px < s; ++px) {
      const double dy = (py + 0.5) / s - 0.5, dx = (px + 0.5) / s - 0.5;
      double wy[5], wx[5], sy = 0, sx = 0;
      for (int i = 0; i < 5; ++i) {
        wy[i] = w(i - 2 - dy);
        wx[i] = w(i - 2 - dx);
        sy += wy[i];
        sx += wx[i];
      }
      for (int ky = 0; ky < 5; ++ky)
        for (int kx = 0; kx < 5; ++kx)
          k[size_t(py * s + px) * 25 + ky * 5 + kx] = float(wy[ky] / sy * (wx[kx] / sx));
    }
  return k;
}

torch::Tensor SupernetImpl::add(const std::string& name, torch::Tensor t) {
  // LibTorch forbids '.' in parameter names; model.h names use it.
  std::string key = name;
  for (char& c : key)
    if (c == '.') c = '_';
  t = register_parameter(key, t);
  named_.push_back({name, t});
  return t;
}

SupernetImpl::SupernetImpl(const ModelArch& a) : arch(a) {
  const int C = a.channels, E = a.inner, s2 = a.scale * a.scale;
  head_w = add("head.weight", torch::zeros({C, 1, 3, 3}));
  head_b = add("head.bias", torch::zeros({C}));
  for (int i = 0; i < a.blocks; ++i) {
    std::string p = "blocks." + std::to_string(i);
    c1_w.push_back(add(p + ".conv1.weight", torch::zeros({E, C, 3, 3})));
    c1_b.push_back(add(p + ".conv1.bias", torch::zeros({E})));
    c2_w.push_back(add(p + ".conv2.weight", torch::zeros({C, E, 3, 3})));
    c2_b.push_back(add(p + ".conv2.bias", torch::zeros({C})));
  }
  tail_w = add("tail.weight", torch::zeros({s2, C, 3, 3}));
  tail_b = add("tail.bias", torch::zeros({s2}));
  skip_w = add("skip.weight", torch::zeros({s2, 1, 5, 5}));
  skip_b = add("skip.bias", torch::zeros({s2}));
  reset(1);
}

void SupernetImpl::reset(uint64_t seed) {
  torch::NoGradGuard ng;
  // A generator of our own: no global RNG state, so that models built at the
  // same time on several threads (ranks in tests) are each deterministic.
  auto gen = at::detail::createCPUGenerator(seed);
  auto kaiming = [&gen](torch::Tensor& w, double gain) {
    const int64_t fan_in = w.size(1) * w.size(2) * w.size(3);
    const double bound = gain * std::sqrt(3.0 / fan_in);
    w.uniform_(-bound, bound, gen);
  };
  kaiming(head_w, std::sqrt(2.0));
  head_b.zero_();
  for (size_t i = 0; i < c1_w.size(); ++i) {
    kaiming(c1_w[i], std::sqrt(2.0));
    c1_b[i].zero_();
    // Residual branches start small (EDSR-style residual scaling at init).
    kaiming(c2_w[i], 0.1);
    c2_b[i].zero_();
  }
  tail_w.zero_();
  tail_b.zero_();
  auto k = bicubic_skip_kernel(arch.scale);
  skip_w.copy_(torch::from_blob(k.data(), skip_w.sizes(), torch::kFloat32));
  skip_b.zero_();
}

torch::Tensor SupernetImpl::forward(const torch::Tensor& x, const PathSpec& path) {
  const int s = arch.scale;
  const auto mf = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  auto out = F::conv2d(x, skip_w.contiguous(mf), F::Conv2dFuncOptions().bias(skip_b).padding(2));
  if (path.width > 0) {
    const int w = path.width, e = arch.inner_width(path.width);
    auto h = F::conv2d(x, head_w.narrow(0, 0, w).contiguous(mf),
                      F::Conv2dFuncOptions().bias(head_b.narrow(0, 0, w).contiguous()).padding(1));
    for (int i = 0; i < path.depth; ++i) {
      auto r = F::conv2d(h, c1_w[i].narrow(0, 0, e).narrow(1, 0, w).contiguous(mf),
                         F::Conv2dFuncOptions().bias(c1_b[i].narrow(0, 0, e).contiguous()).padding(1));
      r = torch::relu(r);
      r = F::conv2d(r, c2_w[i].narrow(0, 0, w).narrow(1, 0, e).contiguous(mf),
                    F::Conv2dFuncOptions().bias(c2_b[i].narrow(0, 0, w).contiguous()).padding(1));
      h = h + r;
    }
    out = out + F::conv2d(h, tail_w.narrow(1, 0, w).contiguous(mf), F::Conv2dFuncOptions().bias(tail_b).padding(1));
  }
  return torch::pixel_shuffle(out, s);
}

torch::Tensor SupernetImpl::forward_frame(const torch::Tensor& x, int p) {
  const PathSpec& ps = arch.paths.at(size_t(p));
  const int r = ps.width > 0 ? std::max(2, 2 + 2 * ps.depth) : 2, s = arch.scale;
  auto padded = F::pad(x, F::PadFuncOptions({r, r, r, r}).mode(torch::kReplicate));
  return forward(padded, ps).narrow(2, r * s, x.size(2) * s).narrow(3, r * s, x.size(3) * s);
}

namespace quant {

torch::Tensor weight_scales(const torch::Tensor& w) {
  // Division in fp32, as the blob writer's max_abs / 127.0f.
  auto s = w.detach().abs().amax({1, 2, 3}).div(127.0);
  return torch::where(s > 0, s, torch::ones_like(s));
}

torch::Tensor codes(const torch::Tensor& t, double lo, double hi) {
  auto c = t.clamp(lo, hi);
  if (!c.requires_grad()) return c.round();  // torch::round is half to even
  return c + (c.round() - c).detach();
}

torch::Tensor weight_codes(const torch::Tensor& w, const torch::Tensor& scales) {
  return codes(w / scales.view({-1, 1, 1, 1}), -127, 127);
}

torch::Tensor fake_quant_weights(const torch::Tensor& w) {
  auto s = weight_scales(w);
  return weight_codes(w, s) * s.view({-1, 1, 1, 1});
}

torch::Tensor fake_quant(const torch::Tensor& v, float a, double lo, double hi) {
  return codes(v / double(a), lo, hi) * double(a);
}

namespace {
// A deterministic subsample bounds the cost (the tensors are tiles x channels).
torch::Tensor subsample(const torch::Tensor& v) {
  auto flat = v.detach().reshape(-1);
  const int64_t cap = int64_t(1) << 20;
  if (flat.numel() > cap) flat = flat.slice(0, 0, flat.numel(), (flat.numel() + cap - 1) / cap);
  return flat;
}
}  // namespace

float percentile_scale(const torch::Tensor& v, bool is_unsigned, double percentile) {
  torch::NoGradGuard ng;
  auto flat = subsample(v);
  flat = is_unsigned ? flat.clamp_min(0) : flat.abs();
  const int64_t n = flat.numel();
  const int64_t k = std::clamp<int64_t>(int64_t(std::ceil(percentile / 100.0 * double(n))), 1, n);
  const double c = std::get<0>(flat.kthvalue(k)).item<double>();
  return c > 0 ? float(c / (is_unsigned ? 255 : 127)) : 1.0f;
}

float mse_scale(const torch::Tensor& v, bool is_unsigned) {
  torch::NoGradGuard ng;
  auto flat = subsample(v);
  const double m = (is_unsigned ? flat.max() : flat.abs().max()).item<double>();
  if (!(m > 0)) return 1.0f;  // all zero (or all negative before a ReLU): any scale is exact
  const double top = is_unsigned ? 255 : 127, lo = is_unsigned ? 0 : -127;
  const int K = 64;
  float best = float(m / top);
  double best_err = -1;
  for (int k = 0; k < K; ++k) {
    const float a = float(m * std::pow(16.0, -double(k) / (K - 1)) / top);
    const double err = (fake_quant(flat, a, lo, top) - flat).square().mean().item<double>();
    if (best_err < 0 || err < best_err) {
      best_err = err;
      best = a;
    }
  }
  return best;
}

}  // namespace quant

torch::Tensor SupernetImpl::forward_int8(const torch::Tensor& x, int p,
                                         const std::vector<float>& act, bool quant_skip,
                                         const ScaleChooser& choose) {
  const PathSpec& path = arch.paths.at(size_t(p));
  const int s = arch.scale;
  auto sw = quant_skip ? quant::fake_quant_weights(skip_w) : skip_w;
  auto out = F::conv2d(x, sw, F::Conv2dFuncOptions().bias(skip_b).padding(2));
  if (path.width > 0) {
    const size_t needed = size_t(1 + 2 * path.depth);
    if (!choose && act.size() != needed)
      throw std::invalid_argument("forward_int8: path " + std::to_string(p) + " needs " +
                                  std::to_string(needed) + " activation scales");
    const int w = path.width, e = arch.inner_width(path.width);
    auto scale = [&](int k, const torch::Tensor& v, bool is_unsigned) {
      return choose ? choose(k, v.detach(), is_unsigned) : act[size_t(k)];
    };
    // The requantisation input of model.h: ((acc * s_o) * a_in + bias), fp32.
    auto qconv = [](const torch::Tensor& in, const torch::Tensor& wq, const torch::Tensor& so,
                    float a_in, const torch::Tensor& bias) {
      auto acc = F::conv2d(in, wq, F::Conv2dFuncOptions().padding(1));
      return acc.mul(so.view({1, -1, 1, 1})).mul(double(a_in)).add(bias.view({1, -1, 1, 1}));
    };
    auto layer = [&](const torch::Tensor& wt, int outs, int ins) {
      auto so = quant::weight_scales(wt);
      auto wq = quant::weight_codes(wt, so).narrow(0, 0, outs).narrow(1, 0, ins);
      return std::make_pair(wq.contiguous(), so.narrow(0, 0, outs).contiguous());
    };
    const float a_x = 1.0f / 255.0f;
    auto xq = (x.detach() * 255.0).round();  // the 8-bit luma codes
    auto [hw, hs] = layer(head_w, w, 1);
    auto v = qconv(xq, hw, hs, a_x, head_b.narrow(0, 0, w));
    float a_h = scale(0, v, false);
    auto h = quant::codes(v / double(a_h), -127, 127);
    for (int i = 0; i < path.depth; ++i) {
      auto [w1, s1] = layer(c1_w[size_t(i)], e, w);
      v = qconv(h, w1, s1, a_h, c1_b[size_t(i)].narrow(0, 0, e));
      const float a_r = scale(1 + 2 * i, choose ? torch::relu(v) : v, true);
      auto r = quant::codes(v / double(a_r), 0, 255);  // the clamp at 0 is the ReLU
      auto [w2, s2] = layer(c2_w[size_t(i)], w, e);
      v = qconv(r, w2, s2, a_r, c2_b[size_t(i)].narrow(0, 0, w)).add(h.mul(double(a_h)));
      a_h = scale(2 + 2 * i, v, false);
      h = quant::codes(v / double(a_h), -127, 127);
    }
    auto [tw, ts] = layer(tail_w, s * s, w);
    out = out + qconv(h, tw, ts, a_h, tail_b);
  }
  return torch::pixel_shuffle(out, s);
}

torch::Tensor SupernetImpl::forward_frame_int8(const torch::Tensor& x, int p,
                                               const std::vector<float>& act, bool quant_skip) {
  const PathSpec& ps = arch.paths.at(size_t(p));
  const int r = ps.width > 0 ? std::max(2, 2 + 2 * ps.depth) : 2, s = arch.scale;
  auto padded = F::pad(x, F::PadFuncOptions({r, r, r, r}).mode(torch::kReplicate));
  return forward_int8(padded, p, act, quant_skip)
      .narrow(2, r * s, x.size(2) * s)
      .narrow(3, r * s, x.size(3) * s);
}

std::vector<torch::Tensor*> SupernetImpl::conv_weights() {
  std::vector<torch::Tensor*> w{&head_w, &tail_w};
  for (auto& t : c1_w) w.push_back(&t);
  for (auto& t : c2_w) w.push_back(&t);
  return w;
}

Model SupernetImpl::to_model() const {
  Model m;
  m.arch = arch;
  for (const auto& [name, param] : named_) {
    Tensor t;
    t.name = name;
    auto v = param.detach().contiguous().to(torch::kFloat32);
    for (auto d : v.sizes()) t.shape.push_back(int(d));
    t.data.assign(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
    m.tensors.push_back(std::move(t));
  }
  return m;
}

Status SupernetImpl::load_model(const Model& m) {
  torch::NoGradGuard ng;
  for (auto& [name, param] : named_) {
    const Tensor* t = m.find(name);
    if (!t) return Status::error("model has no tensor " + name);
    std::vector<int64_t> shape(t->shape.begin(), t->shape.end());
    if (param.sizes() != torch::IntArrayRef(shape) || int64_t(t->data.size()) != param.numel())
      return Status::error("tensor " + name + " has the wrong shape");
    param.copy_(torch::from_blob(const_cast<float*>(t->data.data()), shape, torch::kFloat32));
  }
  return Status::ok();
}

}  // namespace dydca
