// AVX-512 kernels (compiled with -mavx512f -mavx512bw -mavx512vl -mfma).
// Only called after cpu_supports(SimdLevel::kAvx512).

// GCC 12 flags _mm512_undefined_ps() (used inside _mm512_max_ps etc.) as
// "may be used uninitialized": a known false positive of the intrinsics.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <utility>

#include "kernels_simd.h"

namespace dydca::rt {
namespace {

// cout_pad = 16*NA + 8*NB channels: NA zmm plus, for 8, 24, 40, 56, one ymm
// (AVX-512VL gives ymm the same 32 registers). P pixels per block keep about
// 24 accumulators in the 32 registers, leaving room for weights and a
// broadcast.
template <int CS, int CO>
constexpr ConvFn conv() {
  constexpr int NA = CO / 16, NB = (CO % 16) / 8, nv = NA + NB;
  constexpr int P = nv == 1 ? 24 : nv == 2 ? 12 : nv == 3 ? 8 : 6;
  return conv3x3_simd<V512, NA, V256, NB, CS, P, 4>;
}

// x2 has 4 output channels: one xmm per pixel (xmm FMAs issue at least as
// fast as zmm ones, with 4 of 4 lanes useful instead of 4 of 16).
template <int CS>
void tail(const TailArgs& a) {
  if (a.scale == 1)  // x1 (post-filter): one channel, in an xmm
    tail_rows<V128, CS, 1, 24, 4, 1>(a);
  else if (a.scale == 2)
    tail_rows<V128, CS, 1, 24, 4, 2>(a);
  else if (a.scale == 3)
    tail_rows<V512, CS, 1, 16, 4, 3>(a);
  else
    tail_rows<V512, CS, 1, 16, 4, 4>(a);
}

template <int CS, size_t... I>
void fill_cs(KernelTable& t, std::index_sequence<I...>) {
  constexpr int row = cs_index(CS);
  ((t.conv3x3[row][I] = conv<CS, 8 * int(I + 1)>()), ...);
  t.tail[row] = tail<CS>;
}

template <size_t... C>
void fill_all(KernelTable& t, std::index_sequence<C...>) {
  fill_cs<1>(t, std::make_index_sequence<8>());
  (fill_cs<8 * int(C + 1)>(t, std::make_index_sequence<8>()), ...);
}

}  // namespace

void init_kernels_avx512(KernelTable& t) {
  t.level = SimdLevel::kAvx512;
  fill_all(t, std::make_index_sequence<8>());
}

}  // namespace dydca::rt
