// The dynamic shared-weight SR network in LibTorch (private to training/).
#pragma once

#include <torch/torch.h>

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

// Keys cubic (a = -0.5) weights of the s*s sub-pixel phases on a 5x5 LR
// neighbourhood, pixel centres aligned as in swscale / align_corners=false.
std::vector<float> bicubic_skip_kernel(int scale);

}  // namespace dydca
