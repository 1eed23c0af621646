// Scalar reference of the int8 kernels (contracts in kernels.h): plain loops
// over the real codes (no byte offsets), then the shared requantisation. Also
// the `--simd none --precision int8` path, so keep them obvious.
#include "kernels.h"

namespace dydca::rt {
namespace {

// Code of a stored byte: unsigned as is, signed with its +128 offset removed.
inline int code(uint8_t b, bool is_signed) { return is_signed ? int(b) - 128 : int(b); }

void conv3x3_i8_ref(const ConvI8Args& a) {
  const bool out_signed = a.out != OutI8::kUnsigned;
  for (int y = 0; y < a.height; ++y) {
    for (int x = 0; x < a.width; ++x) {
      uint8_t* out = a.dst + y * a.dst_row + ptrdiff_t(x) * a.cout_pad;
      for (int co = 0; co < a.cout_pad; ++co) {
        int32_t acc = 0;
        const int8_t* w = a.weight + 4 * co;  // group 0
        if (a.src_cs == 1) {
          for (int ky = 0; ky < 3; ++ky, w += 4 * a.cout_pad) {
            const uint8_t* in = a.src + (y + ky) * a.src_row + x;
            for (int k = 0; k < 4; ++k) acc += int32_t(w[k]) * code(in[k], a.signed_input);
          }
        } else {
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
              const uint8_t* in = a.src + (y + ky) * a.src_row + ptrdiff_t(x + kx) * a.src_cs;
              for (int c4 = 0; c4 < a.cin4; ++c4, w += 4 * a.cout_pad)
                for (int k = 0; k < 4; ++k)
                  acc += int32_t(w[k]) * code(in[4 * c4 + k], a.signed_input);
            }
        }
        float t = requant_value(acc, a.mul[co], a.add[co]);
        if (a.out == OutI8::kResidualSigned)
          t = std::fma(float(code(out[co], true)), a.res_mul, t);
        out[co] = requant_store(t, out_signed);
      }
    }
  }
}

void tail_i8_ref(const TailI8Args& a) {
  const int s = a.scale, s2 = s * s;
  for (int y = 0; y < a.height; ++y) {
    for (int x = 0; x < a.width; ++x) {
      for (int c = 0; c < s2; ++c) {
        int32_t acc = 0;
        const int8_t* w = a.tail_weight + 4 * c;
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx) {
            const uint8_t* in = a.feat + (y + ky) * a.feat_row + ptrdiff_t(x + kx) * a.feat_cs;
            for (int c4 = 0; c4 < a.cin4; ++c4, w += 4 * kTailChannels)
              for (int k = 0; k < 4; ++k) acc += int32_t(w[k]) * code(in[4 * c4 + k], true);
          }
        float v = requant_value(acc, a.mul[c], a.bias[c]);
        for (int ky = 0; ky < 5; ++ky)
          for (int kx = 0; kx < 5; ++kx)
            v = std::fma(a.x[(y + ky) * a.x_row + x + kx],
                         a.skip_weight[(ky * 5 + kx) * kTailChannels + c], v);
        const int i = c / s, j = c % s;
        if (a.hr_float)
          a.hr_float[(y * s + i) * a.hr_float_stride + x * s + j] = v;
        else
          a.hr[(y * s + i) * a.hr_stride + x * s + j] = quantize_luma(v);
      }
    }
  }
}

}  // namespace

void init_kernels_i8_ref(KernelTableI8& t) {
  t.level = SimdLevel::kNone;
  for (auto& row : t.conv3x3)
    for (auto& f : row) f = conv3x3_i8_ref;
  for (auto& f : t.tail) f = tail_i8_ref;
}

}  // namespace dydca::rt
