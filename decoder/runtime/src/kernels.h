// Private: the kernel table of the SR runtime (dav1d style). Each op has a
// plain scalar reference (kernels_ref.cpp) and SIMD versions installed by
// run-time CPU detection (kernels_avx2.cpp, kernels_avx512.cpp). Tests call
// every entry of every level and compare it with the reference.
//
// Activation layout: NHWC with the channel count padded to a multiple of 8
// (kChannelAlign): pixel (x, y) channel c of a buffer is at
// base[y * row + x * cs + c], cs = padded channel count (1 for the input
// plane). Padded channels hold zeros (their weights and biases are zero).
// Packed 3x3 weights: [tap = ky*3+kx][ci][co_pad] (co_pad = output cs), so the
// output channels of one (tap, ci) are one contiguous vector.
#pragma once

#include <cstddef>
#include <cmath>
#include <cstdint>

#include "dydca/runtime.h"

namespace dydca::rt {

inline constexpr int kChannelAlign = 8;
inline constexpr int kMaxChannels = 64;
// The tail's s*s <= 16 output channels are padded to 16.
inline constexpr int kTailChannels = 16;
// Input channel strides supported by the kernels: 1 (luma plane), 8, 16, .., 64.
inline constexpr int kNumCs = 1 + kMaxChannels / kChannelAlign;
// (constexpr: the ISA TUs only evaluate them at compile time, so no copy
// compiled with -mavx512f can be emitted for the linker to share.)
constexpr int cs_index(int cs) { return cs == 1 ? 0 : cs / kChannelAlign; }  // 1,8,..,64 -> 0..8
constexpr int round_up_channels(int c) {
  return (c + kChannelAlign - 1) / kChannelAlign * kChannelAlign;
}

// Largest number of pixels any kernel computes past the end of a row (its
// blocks are masked, not shortened): buffers keep this much slack so those
// reads stay inside the allocation. The lanes are discarded.
inline constexpr int kMaxOverread = 32;

enum class Epilogue : uint8_t {
  kNone,      // dst = conv
  kRelu,      // dst = max(conv, 0)
  kResidual,  // dst = dst + conv (in place on the block input)
};

// One 3x3 "same" convolution over an output rectangle. Every output pixel is
// bias, then + w*x over taps (ky, kx) then input channels, in that order (the
// SIMD kernels keep this order so that a pixel's value never depends on where
// the rectangle starts or on how it is blocked).
struct ConvArgs {
  const float* src = nullptr;  // input pixel (out_x0 - 1, out_y0 - 1), channel 0
  ptrdiff_t src_row = 0;       // floats between input rows
  int src_cs = 0;              // floats between input pixels: 1, 8, 16, .., 64
  int cin = 0;                 // input channels used (<= src_cs)
  float* dst = nullptr;        // output pixel (out_x0, out_y0)
  ptrdiff_t dst_row = 0;
  int cout_pad = 0;            // output channels incl. padding = dst pixel stride: 8..64
  const float* weight = nullptr;  // [9][cin][cout_pad]
  const float* bias = nullptr;    // [cout_pad]
  int width = 0, height = 0;      // output rectangle
  Epilogue epilogue = Epilogue::kNone;
};
using ConvFn = void (*)(const ConvArgs&);

// The fused end of the network for an output rectangle of LR pixels:
//   v = bias + tail3x3(features) + skip5x5(x)        (s*s channels, padded to 16)
//   HR[(y*s + i), (x*s + j)] = clamp(round(255 * v[i*s + j]))   (pixel shuffle)
// or, with hr_float set, the float v itself (luma / 255, for oracle tests).
struct TailArgs {
  const float* feat = nullptr;  // features pixel (x0 - 1, y0 - 1); unused when cin == 0
  ptrdiff_t feat_row = 0;
  int feat_cs = 8;              // 8..64
  int cin = 0;                  // 0 = global path only
  const float* tail_weight = nullptr;  // [9][cin][kTailChannels]
  const float* x = nullptr;            // input plane pixel (x0 - 2, y0 - 2), 1 channel
  ptrdiff_t x_row = 0;
  const float* skip_weight = nullptr;  // [25][kTailChannels]
  const float* bias = nullptr;         // [kTailChannels] = tail.bias + skip.bias
  int scale = 2;
  int width = 0, height = 0;           // LR output rectangle
  uint8_t* hr = nullptr;               // HR pixel (x0*s, y0*s) ...
  ptrdiff_t hr_stride = 0;
  float* hr_float = nullptr;           // ... or this (stride in floats), when set
  ptrdiff_t hr_float_stride = 0;
};
using TailFn = void (*)(const TailArgs&);

struct KernelTable {
  SimdLevel level = SimdLevel::kNone;
  // conv3x3[cs_index(src_cs)][cout_pad / 8 - 1]
  ConvFn conv3x3[kNumCs][kMaxChannels / kChannelAlign] = {};
  // tail[cs_index(feat_cs)] (index 0 is used when cin == 0)
  TailFn tail[kNumCs] = {};
};

// Fills `t` with the level's kernels (reference entries where a level has no
// specialisation). The caller checks that the CPU supports the level.
void init_kernels_ref(KernelTable& t);
void init_kernels_avx2(KernelTable& t);
void init_kernels_avx512(KernelTable& t);
// The table for a level; level must be supported (see cpu_supports).
const KernelTable& kernels_for(SimdLevel level);
bool cpu_supports(SimdLevel level);

// ---- int8 (issue 16; rules in model.h, ActScales) -----------------------------
//
// Activations are bytes, NHWC with the same channel padding as fp32. A byte b
// holds an unsigned code q = b (the luma plane, ReLU outputs) or a signed code
// q = b - 128 (head and block outputs, q in -127..127). Padded channels have
// zero weights, so their bytes never matter.
//
// Packed int8 weights: [g][cout_pad][4]: group g holds, per output channel, 4
// consecutive int8 weights that multiply 4 consecutive input bytes (one
// vpdpbusd lane). For src_cs >= 8: g = tap * cin4 + c4, bytes = input
// channels 4*c4 .. 4*c4+3 (zero beyond cin). For the luma plane (src_cs = 1):
// g = ky (3 groups), bytes = kx 0, 1, 2 and a zero: pixel x reads the 4 bytes
// at x - 1 .. x + 2 of row ky.
//
// Every kernel computes the exact integer sum over the real codes
//   acc = sum_g sum_k w[g][o][k] * q(byte)
// (SIMD kernels start from an init that cancels their byte offset: init_raw
// for kernels that multiply the bytes as they are, init_off for kernels that
// multiply b - 128; both are exact), then the requantisation below in fp32,
// in this order and with fused multiply-adds, so every level gives the same
// bits as the reference.
enum class OutI8 : uint8_t {
  kSigned,          // head: q = clamp(rne(t), -127, 127), stored q + 128
  kUnsigned,        // conv1 + ReLU: q = clamp(rne(t), 0, 255), stored q
  kResidualSigned,  // conv2: t = fma(q_res, res_mul, t) with q_res = dst byte - 128
                    // (in place on the block input), then as kSigned
};

struct ConvI8Args {
  const uint8_t* src = nullptr;  // input pixel (out_x0 - 1, out_y0 - 1), channel 0
  ptrdiff_t src_row = 0;         // bytes between input rows
  int src_cs = 0;                // bytes between input pixels: 1 (luma plane), 8, .., 64
  int cin4 = 0;                  // ceil(cin / 4) (src_cs >= 8)
  bool signed_input = false;     // the input bytes are q + 128
  uint8_t* dst = nullptr;        // output pixel (out_x0, out_y0)
  ptrdiff_t dst_row = 0;
  int cout_pad = 0;              // 8..64 = dst pixel stride
  const int8_t* weight = nullptr;     // [groups][cout_pad][4]
  const int32_t* init_raw = nullptr;  // [cout_pad] -128 * sum(w) for signed inputs, else 0
  const int32_t* init_off = nullptr;  // [cout_pad] 128 * sum(w) for unsigned inputs, else 0
  const float* mul = nullptr;         // [cout_pad] s_o * a_in / a_out
  const float* add = nullptr;         // [cout_pad] bias_o / a_out
  float res_mul = 0;                  // a_res / a_out
  int width = 0, height = 0;
  OutI8 out = OutI8::kSigned;
};
using ConvI8Fn = void (*)(const ConvI8Args&);

// The int8 tail: acc = int8 conv of the signed features (as above), then
//   v = fma(float(acc), mul[c], bias[c]), then the skip taps in fp32
//   (v = fma(x, skip_w, v), ky then kx), then the pixel shuffle and
//   quantize_luma (or the float v) exactly as TailArgs.
struct TailI8Args {
  const uint8_t* feat = nullptr;  // features pixel (x0 - 1, y0 - 1), signed bytes
  ptrdiff_t feat_row = 0;
  int feat_cs = 8;                // 8..64
  int cin4 = 0;
  const int8_t* tail_weight = nullptr;  // [9 * cin4][kTailChannels][4]
  const int32_t* init_raw = nullptr;    // [kTailChannels]
  const int32_t* init_off = nullptr;    // [kTailChannels]
  const float* mul = nullptr;           // [kTailChannels] s_o * a_in
  const float* bias = nullptr;          // [kTailChannels] tail.bias + skip.bias
  const float* x = nullptr;             // float input plane pixel (x0 - 2, y0 - 2)
  ptrdiff_t x_row = 0;
  const float* skip_weight = nullptr;   // [25][kTailChannels]
  int scale = 2;
  int width = 0, height = 0;
  uint8_t* hr = nullptr;
  ptrdiff_t hr_stride = 0;
  float* hr_float = nullptr;
  ptrdiff_t hr_float_stride = 0;
};
using TailI8Fn = void (*)(const TailI8Args&);

struct KernelTableI8 {
  SimdLevel level = SimdLevel::kNone;
  // conv3x3[cs_index(src_cs)][cout_pad / 8 - 1]
  ConvI8Fn conv3x3[kNumCs][kMaxChannels / kChannelAlign] = {};
  TailI8Fn tail[kNumCs] = {};  // [cs_index(feat_cs)], index 0 unused
};

void init_kernels_i8_ref(KernelTableI8& t);
void init_kernels_i8_avx2(KernelTableI8& t);
// AVX-512 F/BW/VL + VNNI; on an AVX-512 CPU without VNNI the kAvx512 int8
// table is the AVX2 one (see kernels_i8_for).
void init_kernels_i8_avx512(KernelTableI8& t);
const KernelTableI8& kernels_i8_for(SimdLevel level);
bool cpu_has_vnni();

// The requantisation every int8 conv kernel performs, as scalar code (the
// SIMD kernels do the same operations on vectors).
inline float requant_value(int32_t acc, float mul, float add) {
  return std::fma(float(acc), mul, add);
}
inline uint8_t requant_store(float t, bool is_signed) {
  const float lo = is_signed ? -127.0f : 0.0f, hi = is_signed ? 127.0f : 255.0f;
  t = t > lo ? t : lo;  // NaN -> lo, as max_ps(t, lo)
  t = t < hi ? t : hi;
  const int q = int(std::nearbyint(t));
  return uint8_t(is_signed ? q + 128 : q);
}

// Quantisation shared by every tail kernel: 255 * v, clamped to 0..255
// first (NaN -> 0), then rounded half to even like torch.round and the SIMD
// converts (nearbyint in the default rounding mode).
inline uint8_t quantize_luma(float v01) {
  float v = v01 * 255.0f;
  v = v > 0.0f ? v : 0.0f;
  v = v < 255.0f ? v : 255.0f;
  return static_cast<uint8_t>(std::nearbyint(v));
}

}  // namespace dydca::rt
