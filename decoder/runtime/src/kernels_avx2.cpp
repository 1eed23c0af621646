// AVX2 + FMA kernels (compiled with -mavx2 -mfma). Only called after
// cpu_supports(SimdLevel::kAvx2).
#include <utility>

#include "kernels_simd.h"

namespace dydca::rt {
namespace {

// NV ymm of output channels per block; 16 ymm registers: about 12
// accumulators (P*NV) plus weights and a broadcast.
template <int NV> constexpr int kBlock = NV == 1 ? 12 : NV == 2 ? 6 : NV == 3 ? 4 : 3;
template <int NV> constexpr int kRemainder = NV == 1 ? 4 : NV == 2 ? 2 : 1;

// cout_pad <= 32: one pass. Wider outputs (40..64) would leave room for only
// 1-2 pixels per block (weights reloaded per pixel: load-bound), so they run
// as two passes over the pixels, the first 32 channels then the rest.
template <int CS, int CO>
void conv_split(const ConvArgs& a) {
  constexpr int NV2 = (CO - 32) / 8;
  conv3x3_simd<V256, 4, V256, 0, CS, kBlock<4>, kRemainder<4>, CO>(a);
  ConvArgs b = a;
  b.weight += 32;
  b.bias += 32;
  b.dst += 32;
  conv3x3_simd<V256, NV2, V256, 0, CS, kBlock<NV2>, kRemainder<NV2>, CO>(b);
}

template <int CS, int CO>
constexpr ConvFn conv() {
  constexpr int NV = CO / 8;
  if constexpr (NV <= 4)
    return conv3x3_simd<V256, NV, V256, 0, CS, kBlock<NV>, kRemainder<NV>>;
  else
    return conv_split<CS, CO>;
}

// The tail has 16 padded channels (2 ymm); x2 uses only 4: one xmm (FMAs
// on xmm issue as fast as on ymm, so this doubles the useful lanes).
template <int CS>
void tail(const TailArgs& a) {
  if (a.scale == 1)  // x1 (post-filter): one channel, in an xmm
    tail_rows<V128, CS, 1, 12, 4, 1>(a);
  else if (a.scale == 2)
    tail_rows<V128, CS, 1, 12, 4, 2>(a);
  else if (a.scale == 3)
    tail_rows<V256, CS, 2, 6, 2, 3>(a);
  else
    tail_rows<V256, CS, 2, 6, 2, 4>(a);
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

void init_kernels_avx2(KernelTable& t) {
  t.level = SimdLevel::kAvx2;
  fill_all(t, std::make_index_sequence<8>());
}

}  // namespace dydca::rt
