// Scalar reference kernels: the plainest loops that implement the contracts
// in kernels.h. They are also the `--simd none` path, so keep them obvious.
#include "kernels.h"

namespace dydca::rt {
namespace {

void conv3x3_ref(const ConvArgs& a) {
  for (int y = 0; y < a.height; ++y) {
    for (int x = 0; x < a.width; ++x) {
      float* out = a.dst + y * a.dst_row + ptrdiff_t(x) * a.cout_pad;
      for (int co = 0; co < a.cout_pad; ++co) {
        float acc = a.bias[co];
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx) {
            const float* in = a.src + (y + ky) * a.src_row + ptrdiff_t(x + kx) * a.src_cs;
            const float* w = a.weight + ptrdiff_t(ky * 3 + kx) * a.cin * a.cout_pad + co;
            for (int ci = 0; ci < a.cin; ++ci) acc += in[ci] * w[ptrdiff_t(ci) * a.cout_pad];
          }
        switch (a.epilogue) {
          case Epilogue::kNone: out[co] = acc; break;
          case Epilogue::kRelu: out[co] = acc > 0.0f ? acc : 0.0f; break;
          case Epilogue::kResidual: out[co] = out[co] + acc; break;
        }
      }
    }
  }
}

void tail_ref(const TailArgs& a) {
  const int s = a.scale, s2 = s * s;
  for (int y = 0; y < a.height; ++y) {
    for (int x = 0; x < a.width; ++x) {
      for (int c = 0; c < s2; ++c) {
        float acc = a.bias[c];
        // The global path alone (cin 0) has no features: feat is null, and
        // null + offset is undefined even when nothing is read.
        for (int ky = 0; ky < 3 && a.cin > 0; ++ky)
          for (int kx = 0; kx < 3; ++kx) {
            const float* in = a.feat + (y + ky) * a.feat_row + ptrdiff_t(x + kx) * a.feat_cs;
            const float* w = a.tail_weight + ptrdiff_t(ky * 3 + kx) * a.cin * kTailChannels + c;
            for (int ci = 0; ci < a.cin; ++ci) acc += in[ci] * w[ci * kTailChannels];
          }
        for (int ky = 0; ky < 5; ++ky)
          for (int kx = 0; kx < 5; ++kx)
            acc += a.x[(y + ky) * a.x_row + x + kx] * a.skip_weight[(ky * 5 + kx) * kTailChannels + c];
        const int i = c / s, j = c % s;
        if (a.hr_float)
          a.hr_float[(y * s + i) * a.hr_float_stride + x * s + j] = acc;
        else
          a.hr[(y * s + i) * a.hr_stride + x * s + j] = quantize_luma(acc);
      }
    }
  }
}

}  // namespace

void init_kernels_ref(KernelTable& t) {
  t.level = SimdLevel::kNone;
  for (auto& row : t.conv3x3)
    for (auto& f : row) f = conv3x3_ref;
  for (auto& f : t.tail) f = tail_ref;
}

}  // namespace dydca::rt
