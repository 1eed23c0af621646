// Experiment (training/README.md, "Temporal context does not pay here"): does
// temporal context (neighbouring decoded LR frames as extra input channels,
// early fusion) buy SR quality at equal steps? Not part of dydca, not built by
// CMake. Build beside a LibTorch install:
//   g++ -O2 -std=c++17 temporal_context.cpp $(torch flags) -o temporal_context
// (or a 3-line CMakeLists with find_package(Torch)). Run:
//   temporal_context HR.y4m LR_DECODED.y4m SCALE T STEPS [C E N FRAMES]
// with DIFF=1 in the environment to feed the neighbours as differences.
#include <torch/torch.h>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>
#include <chrono>
#include <cstdlib>
namespace F = torch::nn::functional;
struct Y4m { int w = 0, h = 0; std::vector<std::vector<uint8_t>> y; };
Y4m read_y4m(const std::string& p, int maxf) {
  Y4m v; std::ifstream f(p, std::ios::binary); std::string hdr; std::getline(f, hdr);
  size_t a = hdr.find(" W"), b = hdr.find(" H");
  v.w = std::stoi(hdr.substr(a + 2)); v.h = std::stoi(hdr.substr(b + 2));
  std::string line;
  while ((int)v.y.size() < maxf && std::getline(f, line)) {
    std::vector<uint8_t> y(size_t(v.w) * v.h); f.read((char*)y.data(), y.size());
    if (!f) break;
    f.ignore(size_t(v.w / 2) * (v.h / 2) * 2);
    v.y.push_back(std::move(y));
  }
  return v;
}
torch::Tensor to_t(const Y4m& v) {
  auto t = torch::empty({(long)v.y.size(), 1, v.h, v.w});
  for (size_t i = 0; i < v.y.size(); ++i)
    t[i][0].copy_(torch::from_blob((void*)v.y[i].data(), {v.h, v.w}, torch::kUInt8).to(torch::kFloat) / 255.0);
  return t;
}
struct NetImpl : torch::nn::Module {
  int s, T; torch::nn::Conv2d head{nullptr}, tail{nullptr};
  std::vector<torch::nn::Conv2d> c1, c2;
  NetImpl(int s_, int T_, int C, int E, int N) : s(s_), T(T_) {
    auto o = [](int i, int oc) { return torch::nn::Conv2dOptions(i, oc, 3).padding(1); };
    head = register_module("head", torch::nn::Conv2d(o(T, C)));
    for (int i = 0; i < N; ++i) {
      c1.push_back(register_module("c1_" + std::to_string(i), torch::nn::Conv2d(o(C, E))));
      c2.push_back(register_module("c2_" + std::to_string(i), torch::nn::Conv2d(o(E, C))));
    }
    tail = register_module("tail", torch::nn::Conv2d(o(C, s * s)));
    torch::NoGradGuard g; tail->weight.zero_(); tail->bias.zero_();
  }
  // x: [B,T,h,w], centre channel T/2
  torch::Tensor forward(const torch::Tensor& x) {
    auto c = x.narrow(1, T / 2, 1);
    auto skip = F::interpolate(c, F::InterpolateFuncOptions().scale_factor(std::vector<double>{double(s), double(s)})
                                     .mode(torch::kBicubic).align_corners(false).recompute_scale_factor(false));
    auto h = torch::relu(head(x));
    for (size_t i = 0; i < c1.size(); ++i) h = h + c2[i](torch::relu(c1[i](h)));
    return skip + F::pixel_shuffle(tail(h), s);
  }
};
TORCH_MODULE(Net);
// stack of T frames around i (clamped), [1,T,h,w] from lr [F,1,h,w]
torch::Tensor stack(const torch::Tensor& lr, int i, int T) {
  std::vector<torch::Tensor> v; int n = lr.size(0);
  static const bool diff = getenv("DIFF") != nullptr;
  for (int d = -(T / 2); d <= T / 2; ++d) {
    auto f = lr[std::clamp(i + d, 0, n - 1)];
    v.push_back(diff && d != 0 ? f - lr[i] : f);
  }
  return torch::cat(v, 0).unsqueeze(0);
}
int main(int argc, char** argv) {
  if (argc < 6) { std::fprintf(stderr, "usage: hr.y4m lr.y4m scale T steps [C E N frames]\n"); return 2; }
  int s = std::stoi(argv[3]), T = std::stoi(argv[4]), steps = std::stoi(argv[5]);
  int C = argc > 6 ? std::stoi(argv[6]) : 16, E = argc > 7 ? std::stoi(argv[7]) : 16, N = argc > 8 ? std::stoi(argv[8]) : 2;
  int maxf = argc > 9 ? std::stoi(argv[9]) : 96;
  torch::set_num_threads(2); torch::manual_seed(1);
  auto hr = to_t(read_y4m(argv[1], maxf)), lr = to_t(read_y4m(argv[2], maxf));
  int n = std::min(hr.size(0), lr.size(0)); hr = hr.narrow(0, 0, n); lr = lr.narrow(0, 0, n);
  const int h = lr.size(2), w = lr.size(3), P = 48, B = 8;
  Net net(s, T, C, E, N);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-3));
  std::mt19937 rng(7);
  auto t0 = std::chrono::steady_clock::now();
  for (int st = 0; st < steps; ++st) {
    double lrate = 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + std::cos(M_PI * st / steps));
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lrate);
    std::vector<torch::Tensor> xs, ys;
    for (int b = 0; b < B; ++b) {
      int i = rng() % n, y = rng() % (h - P), x = rng() % (w - P);
      xs.push_back(stack(lr, i, T).narrow(2, y, P).narrow(3, x, P));
      ys.push_back(hr[i].unsqueeze(0).narrow(2, y * s, P * s).narrow(3, x * s, P * s));
    }
    auto out = net->forward(torch::cat(xs)); auto loss = (out - torch::cat(ys)).abs().mean();
    opt.zero_grad(); loss.backward(); opt.step();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  torch::NoGradGuard g; double mse_sr = 0, mse_bc = 0;
  for (int i = 0; i < n; ++i) {
    auto x = stack(lr, i, T);
    auto o = (net->forward(x).clamp(0, 1) * 255).round();
    auto bc = (F::interpolate(lr[i].unsqueeze(0), F::InterpolateFuncOptions().scale_factor(std::vector<double>{double(s), double(s)}).mode(torch::kBicubic).align_corners(false).recompute_scale_factor(false)).clamp(0, 1) * 255).round();
    auto r = hr[i].unsqueeze(0) * 255;
    o = o.narrow(2, 0, r.size(2)).narrow(3, 0, r.size(3)); bc = bc.narrow(2, 0, r.size(2)).narrow(3, 0, r.size(3));
    mse_sr += (o - r).pow(2).mean().item<double>(); mse_bc += (bc - r).pow(2).mean().item<double>();
  }
  auto ps = [&](double m) { return 10 * std::log10(255.0 * 255 / (m / n)); };
  std::printf("T=%d C%d E%d N%d steps=%d: sr %.3f bicubic %.3f gain %.3f  (%.0f s)\n", T, C, E, N, steps, ps(mse_sr), ps(mse_bc), ps(mse_sr) - ps(mse_bc), secs);
}
