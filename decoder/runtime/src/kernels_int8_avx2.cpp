// int8 kernels for AVX2 (compiled with -mavx2 -mfma): exact u8/s8 dot products
// through vpmaddubsw on |b - 128| and sign-adjusted weights (see
// kernels_int8_simd.h). Only called after cpu_supports(SimdLevel::kAvx2).
#include <utility>

#include "kernels_int8_simd.h"

namespace dydca::rt {
namespace {

// 16 ymm registers: a broadcast takes two (b - 128 and its absolute value) and
// the vpmaddwd ones one, so blocks are 8 pixels x 1 vector or 4 x 2; wider
// outputs run as passes of 16 channels (then 8).
template <int NV> constexpr int kBlock = NV == 1 ? 8 : 4;
template <int NV> constexpr int kRemainder = NV == 1 ? 4 : 2;

template <int CS, int CO, int OFF>
void conv_pass(const ConvI8Args& a) {
  constexpr int NV = CO - OFF >= 16 ? 2 : 1;
  ConvI8Args b = a;
  b.weight += 4 * OFF;
  b.init_raw += OFF;
  b.init_off += OFF;
  b.mul += OFF;
  b.add += OFF;
  b.dst += OFF;
  conv3x3_i8_simd<A256, NV, A256, 0, CS, kBlock<NV>, kRemainder<NV>, CO>(b);
  if constexpr (OFF + 8 * NV < CO) conv_pass<CS, CO, OFF + 8 * NV>(a);
}

template <int CS, int CO>
void conv(const ConvI8Args& a) {
  conv_pass<CS, CO, 0>(a);
}

template <int CS>
void tail(const TailI8Args& a) {
  if (a.scale == 1)  // x1 (post-filter): one channel, in an xmm
    tail_rows_i8<A128, CS, 1, 8, 4, 1>(a);
  else if (a.scale == 2)
    tail_rows_i8<A128, CS, 1, 8, 4, 2>(a);
  else if (a.scale == 3)
    tail_rows_i8<A256, CS, 2, 4, 2, 3>(a);
  else
    tail_rows_i8<A256, CS, 2, 4, 2, 4>(a);
}

template <int CS, size_t... I>
void fill_cs(KernelTableI8& t, std::index_sequence<I...>) {
  constexpr int row = cs_index(CS);
  ((t.conv3x3[row][I] = conv<CS, 8 * int(I + 1)>), ...);
  if constexpr (CS > 1) t.tail[row] = tail<CS>;
}

template <size_t... C>
void fill_all(KernelTableI8& t, std::index_sequence<C...>) {
  fill_cs<1>(t, std::make_index_sequence<8>());
  (fill_cs<8 * int(C + 1)>(t, std::make_index_sequence<8>()), ...);
}

}  // namespace

void init_kernels_i8_avx2(KernelTableI8& t) {
  t.level = SimdLevel::kAvx2;
  fill_all(t, std::make_index_sequence<8>());
}

}  // namespace dydca::rt
