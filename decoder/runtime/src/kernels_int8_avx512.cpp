// int8 kernels for AVX-512 VNNI (compiled with -mavx512f -mavx512bw
// -mavx512vl -mavx512vnni -mfma): vpdpbusd on the stored bytes. Only called
// after cpu_supports(SimdLevel::kAvx512) and cpu_has_vnni().
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <utility>

#include "kernels_int8_simd.h"

namespace dydca::rt {
namespace {

// cout_pad = 16*NA + 8*NB: NA zmm plus one ymm for 8, 24, 40, 56; P pixels
// keep about 24 accumulators of the 32 registers (as the fp32 kernels).
template <int CS, int CO>
constexpr ConvI8Fn conv() {
  constexpr int NA = CO / 16, NB = (CO % 16) / 8, nv = NA + NB;
  constexpr int P = nv == 1 ? 24 : nv == 2 ? 12 : nv == 3 ? 8 : 6;
  return conv3x3_i8_simd<I512, NA, I256, NB, CS, P, 4>;
}

// x2: 4 output channels = one xmm per pixel; x3, x4: one zmm.
template <int CS>
void tail(const TailI8Args& a) {
  if (a.scale == 1)  // x1 (post-filter): one channel, in an xmm
    tail_rows_i8<I128, CS, 1, 24, 4, 1>(a);
  else if (a.scale == 2)
    tail_rows_i8<I128, CS, 1, 24, 4, 2>(a);
  else if (a.scale == 3)
    tail_rows_i8<I512, CS, 1, 16, 4, 3>(a);
  else
    tail_rows_i8<I512, CS, 1, 16, 4, 4>(a);
}

template <int CS, size_t... I>
void fill_cs(KernelTableI8& t, std::index_sequence<I...>) {
  constexpr int row = cs_index(CS);
  ((t.conv3x3[row][I] = conv<CS, 8 * int(I + 1)>()), ...);
  if constexpr (CS > 1) t.tail[row] = tail<CS>;
}

template <size_t... C>
void fill_all(KernelTableI8& t, std::index_sequence<C...>) {
  fill_cs<1>(t, std::make_index_sequence<8>());
  (fill_cs<8 * int(C + 1)>(t, std::make_index_sequence<8>()), ...);
}

}  // namespace

void init_kernels_i8_avx512(KernelTableI8& t) {
  t.level = SimdLevel::kAvx512;
  fill_all(t, std::make_index_sequence<8>());
}

}  // namespace dydca::rt
