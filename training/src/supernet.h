// The dynamic shared-weight SR network in LibTorch (private to training/).
#pragma once

#include <torch/torch.h>

#include <functional>

#include "dydca/model.h"
#include "dydca/status.h"

namespace dydca {

struct SupernetImpl : torch::nn::Module {
  explicit SupernetImpl(const ModelArch& arch);

  // x: [B,1,H,W] LR luma in [0,1]; returns [B,1,H*s,W*s] (not clamped).
  torch::Tensor forward(const torch::Tensor& x, const PathSpec& path);
  // Path p of arch.paths.
  torch::Tensor forward(const torch::Tensor& x, int p) { return forward(x, arch.paths.at(p)); }
  // Whole frames: x is edge-replicated by the receptive radius first, so
  // that every layer sees the clamped-input border of model.h (training
  // tiles get the same from the sampler's replicate halo).
  torch::Tensor forward_frame(const torch::Tensor& x, int p);

  // int8 forward of path p as the int8 runtime computes it (model.h, ActScales):
  // integer codes run through fp32 convolutions, which sum them exactly while
  // |accumulator| < 2^24 (always for C, E <= 32; worst case C = 64 or E = 64),
  // then acc * s_o * a_in + bias [+ residual], / a_out, round half to even,
  // clamp, in that order. Gradients pass straight through inside the clamp
  // range (STE), so the same function fine-tunes (QAT) and is the reference.
  // act: the path's 1 + 2*depth scales (model.h order). With `choose`
  // (calibration), scale k is instead asked for, given tensor k before its
  // quantisation (ReLU applied) with every tensor before it quantised.
  // quant_skip: the 5x5 skip's weights as the int8 blob stores them (per
  // output channel, like the others); its arithmetic stays fp32.
  using ScaleChooser = std::function<float(int k, const torch::Tensor& v, bool is_unsigned)>;
  torch::Tensor forward_int8(const torch::Tensor& x, int p, const std::vector<float>& act,
                             bool quant_skip, const ScaleChooser& choose = {});
  torch::Tensor forward_frame_int8(const torch::Tensor& x, int p, const std::vector<float>& act,
                                   bool quant_skip);

  // Skip = bicubic interpolation kernel, tail = 0, body Kaiming-uniform.
  void reset(uint64_t seed);

  // head, blocks' conv1/conv2 and tail weights (not the skip).
  std::vector<torch::Tensor*> conv_weights();

  Model to_model() const;
  Status load_model(const Model& m);

  ModelArch arch;
  bool channels_last = false;
  torch::Tensor head_w, head_b, tail_w, tail_b, skip_w, skip_b;
  std::vector<torch::Tensor> c1_w, c1_b, c2_w, c2_b;

 private:
  torch::Tensor add(const std::string& name, torch::Tensor t);
  std::vector<std::pair<std::string, torch::Tensor>> named_;  // model.h names, in order
};
TORCH_MODULE(Supernet);

// int8 fake quantisation (model.h, ActScales), shared by forward_int8 and the tests.
namespace quant {
// Per output channel of the full tensor: max|W[o]| / 127, 1 where W[o] is all zero.
torch::Tensor weight_scales(const torch::Tensor& w);
// clamp(rne(t), lo, hi); the gradient is 1 inside [lo, hi] and 0 outside (STE).
torch::Tensor codes(const torch::Tensor& t, double lo, double hi);
// Integer-valued weight codes clamp(rne(W / s_o), -127, 127), STE.
torch::Tensor weight_codes(const torch::Tensor& w, const torch::Tensor& scales);
// The dequantised weights codes * s_o: what the int8 model blob stores and reads back.
torch::Tensor fake_quant_weights(const torch::Tensor& w);
// Activation fake quantisation: clamp(rne(v / a), lo, hi) * a, STE.
torch::Tensor fake_quant(const torch::Tensor& v, float a, double lo, double hi);
// The activation scale that minimises the mean squared quantisation error of
// v over a geometric grid of clipping ranges from max|v| down to max|v| / 16
// (unsigned: max v, codes 0..255; signed: codes -127..127).
float mse_scale(const torch::Tensor& v, bool is_unsigned);
// The scale whose range ends at the given percentile of |v| (100: max|v|).
float percentile_scale(const torch::Tensor& v, bool is_unsigned, double percentile);
}  // namespace quant

// Keys cubic (a = -0.5) weights of the s*s sub-pixel phases on a 5x5 LR
// neighbourhood, pixel centres aligned as in swscale / align_corners=false.
std::vector<float> bicubic_skip_kernel(int scale);

}  // namespace dydca
