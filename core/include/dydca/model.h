// The dynamic SR network as data: architecture + named fp32 tensors.
// Shared by training (export), the container (model blob) and the client
// runtime. No libav, no torch.
//
// Network (luma in, luma out; x = Y/255):
//   h0   = head(x)                        conv3x3 1 -> C
//   h_i  = h_{i-1} + conv2(relu(conv1(h_{i-1})))   block i: C -> E -> C, i < N
//   t    = tail(h_N)                      conv3x3 C -> s^2
//   g    = skip(x)                        conv5x5 1 -> s^2 (the cheap global path)
//   Y_hr = clamp(round(255 * pixel_shuffle(t + g, s)))
// All convolutions are stride 1. Borders: the input is clamped at the frame
// edge (x outside the frame = x of the nearest frame pixel, "replicate") and
// every layer is computed wherever it is needed, inside the frame or not:
// the output equals valid convolutions over the edge-replicated input. (Zero
// padding per layer darkened the outermost HR pixels: -3 dB on smooth clips.)
//
// A path (depth d, width w) is a prefix subnetwork sharing the same weights:
// the first w channels of every C-sized tensor, the first e = E*w/C channels
// of every E-sized tensor (weight[:out, :in]), blocks d..N-1 skipped.
// Path (0, 0) is the global path alone: skip conv + pixel shuffle.
//
// Tensor names and shapes ([out, in, kh, kw] for weights):
//   head.weight [C,1,3,3]            head.bias [C]
//   blocks.<i>.conv1.weight [E,C,3,3] blocks.<i>.conv1.bias [E]
//   blocks.<i>.conv2.weight [C,E,3,3] blocks.<i>.conv2.bias [C]
//   tail.weight [s*s,C,3,3]          tail.bias [s*s]
//   skip.weight [s*s,1,5,5]          skip.bias [s*s]
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dydca {

struct PathSpec {
  int depth = 0;  // residual blocks used, 0..N
  int width = 0;  // body channels used, 0..C (0 only with depth 0: global path)
  bool operator==(const PathSpec&) const = default;
};

// ---- architecture limits: one table for every module ----------------------
// The container refuses a model outside them, training refuses to start one,
// and the runtime plans any model inside them (its kernels are sized for 64
// channels): a caller never trains for minutes to fail at SrRuntime::create.
inline constexpr int kMinScale = 1, kMaxScale = 4;
inline constexpr int kMaxChannels = 64;  // C
inline constexpr int kMaxInner = 64;     // E
inline constexpr int kMaxBlocks = 64;    // N
inline constexpr int kMaxPaths = 16;     // routing stores path ids < 16

struct ModelArch {
  int scale = 2;      // 1 (post-filter at the same size), 2, 3 or 4
  int channels = 32;  // C
  int inner = 32;     // E
  int blocks = 4;     // N
  // Ordered cheap -> rich. The QoS levels (which path each content chunk
  // runs at each level) are per-chunk tables and live in RoutingMap.
  std::vector<PathSpec> paths;

  int inner_width(int w) const { return channels ? inner * w / channels : 0; }
  // Multiply-accumulates per LR pixel of path p (all convs incl. the skip).
  int64_t macs_per_lr_pixel(int p) const {
    const PathSpec& ps = paths.at(size_t(p));
    const int64_t s2 = int64_t(scale) * scale, w = ps.width, e = inner_width(ps.width);
    int64_t macs = s2 * 25;  // skip 5x5 1 -> s^2
    if (ps.width == 0) return macs;
    macs += w * 9;                        // head
    macs += int64_t(ps.depth) * 2 * w * e * 9;  // blocks
    macs += s2 * w * 9;                   // tail
    return macs;
  }
  // ... per HR output pixel (what a client pays per displayed pixel).
  double macs_per_hr_pixel(int p) const {
    return double(macs_per_lr_pixel(p)) / (double(scale) * scale);
  }
};

// The one MAC count of a chunk -> path table (RoutingMap::chunk_path[level]):
// chunk c runs path chunk_path[c] on chunk_weight[c] LR pixels (or tiles).
// `macs` sums weight x macs_per_lr_pixel, `weight` the weights counted;
// chunks whose path the model lacks count in neither. The QoS controller's
// cost of a frame per level (weights = the frame's pixels per chunk) and the
// encoder's and `dydca chunks`' mean per LR pixel (weights = tiles) both
// come from here.
struct RoutedMacs {
  int64_t macs = 0;
  int64_t weight = 0;
  double mean() const { return weight > 0 ? double(macs) / double(weight) : 0.0; }
};
inline RoutedMacs routed_macs(const ModelArch& arch, const std::vector<uint8_t>& chunk_path,
                              const std::vector<int64_t>& chunk_weight) {
  RoutedMacs r;
  for (size_t c = 0; c < chunk_path.size() && c < chunk_weight.size(); ++c) {
    if (chunk_path[c] >= arch.paths.size()) continue;
    r.macs += chunk_weight[c] * arch.macs_per_lr_pixel(chunk_path[c]);
    r.weight += chunk_weight[c];
  }
  return r;
}
// Mean MACs per LR pixel of a chunk -> path table, weighted by tile counts.
inline double mean_macs_per_lr_pixel(const std::vector<uint8_t>& chunk_path,
                                     const std::vector<int64_t>& chunk_tiles,
                                     const ModelArch& arch) {
  return routed_macs(arch, chunk_path, chunk_tiles).mean();
}

struct Tensor {
  std::string name;
  std::vector<int> shape;
  std::vector<float> data;  // row-major, size = product(shape)
  // Set by parse_model when the blob stores this tensor as int8 (empty
  // otherwise): the stored codes and per-output-channel scales, with
  // data[i] == int8[i] * int8_scale[i / (size / shape[0])] exactly. The int8
  // runtime uses these codes as they are when they still match `data` and the
  // weight rule below (no second rounding); code that changes `data` may leave
  // them stale: the runtime then quantises `data` by the rule.
  std::vector<int8_t> int8;
  std::vector<float> int8_scale;
};

// int8 execution (issue 16). The int8 runtime and quantisation-aware
// training (training/) share these rules exactly; rne = round half to even.
//   input   x: the 8-bit luma code Y itself (real value Y / 255), unsigned.
//   weights of head, blocks.*.conv1/conv2, tail: per output channel o of the
//           FULL tensor (every input channel, so a path's slice keeps them):
//           s_o = max|W[o]| / 127 (1 when W[o] is all zero),
//           q = clamp(rne(W / s_o), -127, 127). Biases stay fp32.
//   activations, per path p (width > 0), one scale a > 0 per tensor:
//     [0]       h_0     = head(x)                 signed:   q = clamp(rne(v / a), -127, 127)
//     [1 + 2i]  r_i     = relu(conv1(h_i)), i < d  unsigned: q = clamp(rne(v / a), 0, 255)
//     [2 + 2i]  h_{i+1} = h_i + conv2(r_i)         signed:   q = clamp(rne(v / a), -127, 127)
//   (1 + 2*depth scales for a path; none for the global path (0, 0).)
//   tail: int8 conv of the quantised h_d with int32 accumulation, dequantised
//   in fp32; the 5x5 skip and the output rounding stay as in fp32.
// A convolution's output is requantised from its int32 accumulator in fp32
// (acc * s_o * a_in + bias [+ residual], then / a_out, rne, clamp); the
// runtime may fold the multipliers, so a value may differ from the
// training-side fake quantisation by one code at exact ties.
// (The runtime folds them in binary64 and rounds once to fp32:
//  m_o = s_o * a_in / a_out, b_o = bias_o / a_out, r = a_res / a_out, then
//  q = clamp(rne(fma(float(acc), m_o, b_o) [then fma(q_res, r, .)]));
//  see decoder/runtime/README.md.)
// Blob rules (container): each scale finite and in [1e-10, 1e10]; one list per
// model path, of 1 + 2*depth scales (0 for width 0).
struct ActScales {
  std::vector<std::vector<float>> path;  // [path][tensor] as above; empty = fp32 only
  bool empty() const { return path.empty(); }
  bool operator==(const ActScales&) const = default;
};

struct Model {
  ModelArch arch;
  std::vector<Tensor> tensors;
  ActScales act;  // empty: the model runs in fp32 only
  const Tensor* find(const std::string& name) const {
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
};

}  // namespace dydca
