// SIMD kernels as templates over a vector type V (see kernels_avx2.cpp and
// kernels_avx512.cpp, each compiled with its own -m flags). Everything here is
// in an anonymous namespace: each ISA's TU gets private copies, so the linker
// can never pick an AVX-512 instantiation for the AVX2 or scalar path.
//
// Register blocking: a block is P consecutive output pixels of one row times
// all output vectors (cout_pad channels): P x vectors accumulators stay in
// registers over the 9 taps x cin input channels; per (tap, ci) the block
// loads the weight vectors once and P broadcast inputs for P x vectors FMAs.
// Rows are covered by full blocks of P, then masked blocks of PS (the lanes
// past the row end are computed on whatever the buffer holds there and never
// stored). Every pixel sees the same FMA sequence (bias, then taps, then
// channels) whichever block computes it.
#pragma once

#include <immintrin.h>

#include <cstring>

#include "kernels.h"

#if defined(__GNUC__)
#define DYDCA_INLINE inline __attribute__((always_inline))
#else
#define DYDCA_INLINE inline
#endif
// The register blocks must be fully unrolled (accumulators in registers);
// GCC's heuristics stop short of 24 x 1 or 12 x 2 without being told.
#if defined(__clang__)
#define DYDCA_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define DYDCA_UNROLL _Pragma("GCC unroll 32")
#else
#define DYDCA_UNROLL
#endif

namespace dydca::rt {
namespace {

// ---- vector types (each TU sees the ones its -m flags allow) ----------------

struct V128 {  // 4 lanes: the x2 tail has exactly 4 output channels
  using T = __m128;
  static constexpr int N = 4;
  static DYDCA_INLINE T load(const float* p) { return _mm_loadu_ps(p); }
  static DYDCA_INLINE void store(float* p, T v) { _mm_storeu_ps(p, v); }
  static DYDCA_INLINE T bcast(const float* p) { return _mm_broadcast_ss(p); }
  static DYDCA_INLINE T fma(T a, T b, T c) { return _mm_fmadd_ps(a, b, c); }
  static DYDCA_INLINE T add(T a, T b) { return _mm_add_ps(a, b); }
  static DYDCA_INLINE T max(T a, T b) { return _mm_max_ps(a, b); }
  static DYDCA_INLINE T zero() { return _mm_setzero_ps(); }
  // clamp(255 * v) then round half to even (MXCSR default), as quantize_luma;
  // the NV*N results as bytes.
  static DYDCA_INLINE __m128i luma(T v) {
    v = _mm_max_ps(_mm_mul_ps(v, _mm_set1_ps(255.0f)), _mm_setzero_ps());
    return _mm_cvtps_epi32(_mm_min_ps(v, _mm_set1_ps(255.0f)));
  }
  template <int NV>
  static DYDCA_INLINE void pack_luma(uint8_t* dst, const T* v) {
    static_assert(NV == 1, "x2 tail only");
    __m128i i = luma(v[0]);
    i = _mm_packus_epi16(_mm_packus_epi32(i, i), i);
    const int32_t b = _mm_cvtsi128_si32(i);
    std::memcpy(dst, &b, 4);
  }
};

struct V256 {
  using T = __m256;
  static constexpr int N = 8;
  static DYDCA_INLINE T load(const float* p) { return _mm256_loadu_ps(p); }
  static DYDCA_INLINE void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static DYDCA_INLINE T bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static DYDCA_INLINE T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static DYDCA_INLINE T add(T a, T b) { return _mm256_add_ps(a, b); }
  static DYDCA_INLINE T max(T a, T b) { return _mm256_max_ps(a, b); }
  static DYDCA_INLINE T zero() { return _mm256_setzero_ps(); }
  static DYDCA_INLINE __m256i luma(T v) {
    v = _mm256_max_ps(_mm256_mul_ps(v, _mm256_set1_ps(255.0f)), _mm256_setzero_ps());
    return _mm256_cvtps_epi32(_mm256_min_ps(v, _mm256_set1_ps(255.0f)));
  }
  template <int NV>
  static DYDCA_INLINE void pack_luma(uint8_t* dst, const T* v) {
    static_assert(NV == 1 || NV == 2, "tail has <= 16 channels");
    const __m256i a = luma(v[0]), b = NV == 2 ? luma(v[NV - 1]) : a;
    // packus works within 128-bit lanes: [a0-3 b0-3 | a4-7 b4-7] -> reorder qwords.
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
    const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    std::memcpy(dst, &bytes, 8 * NV);
  }
};

#if defined(__AVX512F__)
struct V512 {
  using T = __m512;
  static constexpr int N = 16;
  static DYDCA_INLINE T load(const float* p) { return _mm512_loadu_ps(p); }
  static DYDCA_INLINE void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static DYDCA_INLINE T bcast(const float* p) { return _mm512_set1_ps(*p); }
  static DYDCA_INLINE T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static DYDCA_INLINE T add(T a, T b) { return _mm512_add_ps(a, b); }
  static DYDCA_INLINE T max(T a, T b) { return _mm512_max_ps(a, b); }
  static DYDCA_INLINE T zero() { return _mm512_setzero_ps(); }
  template <int NV>
  static DYDCA_INLINE void pack_luma(uint8_t* dst, const T* v) {
    static_assert(NV == 1, "tail has <= 16 channels");
    T x = _mm512_max_ps(_mm512_mul_ps(v[0], _mm512_set1_ps(255.0f)), _mm512_setzero_ps());
    x = _mm512_min_ps(x, _mm512_set1_ps(255.0f));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(x)));
  }
};
#endif

// Output channels of a pixel: NA vectors of VA (e.g. zmm) then NB vectors of
// VB (e.g. one ymm for the 8 channels left of 24, 40 or 56): the layout is
// 8-channel granular and AVX-512 covers it without padding to 16.
template <class VA, int NA, class VB, int NB>
struct Lanes {
  static constexpr int kA = NA * VA::N;        // channels in VA vectors
  static constexpr int kOut = kA + NB * VB::N;  // = cout_pad
  static constexpr int kNA = NA > 0 ? NA : 1;   // array sizes (no zero-length arrays)
  static constexpr int kNB = NB > 0 ? NB : 1;
};

// CO is the pixel stride of dst and the row stride of the weights: the full
// cout_pad, of which this block computes kOut channels (a caller may split
// wide outputs into groups that fit the registers; see kernels_avx2.cpp).
template <class VA, int NA, class VB, int NB, int CS, int P, int CO>
DYDCA_INLINE void conv_block(const ConvArgs& a, const float* src, float* dst, int npix) {
  using L = Lanes<VA, NA, VB, NB>;
  using TA = typename VA::T;
  using TB = typename VB::T;
  TA acc[P][L::kNA];
  TB accb[P][L::kNB];
  DYDCA_UNROLL
  for (int v = 0; v < NA; ++v) {
    const TA b = VA::load(a.bias + v * VA::N);
    DYDCA_UNROLL
    for (int p = 0; p < P; ++p) acc[p][v] = b;
  }
  DYDCA_UNROLL
  for (int v = 0; v < NB; ++v) {
    const TB b = VB::load(a.bias + L::kA + v * VB::N);
    DYDCA_UNROLL
    for (int p = 0; p < P; ++p) accb[p][v] = b;
  }
  const int cin = a.cin;
  const float* wt = a.weight;
  for (int ky = 0; ky < 3; ++ky) {
    for (int kx = 0; kx < 3; ++kx) {
      const float* s = src + ky * a.src_row + kx * CS;
      for (int ci = 0; ci < cin; ++ci, wt += CO) {
        TA w[L::kNA];
        TB wb[L::kNB];
        DYDCA_UNROLL
        for (int v = 0; v < NA; ++v) w[v] = VA::load(wt + v * VA::N);
        DYDCA_UNROLL
        for (int v = 0; v < NB; ++v) wb[v] = VB::load(wt + L::kA + v * VB::N);
        DYDCA_UNROLL
        for (int p = 0; p < P; ++p) {
          const float* x = s + p * CS + ci;
          if constexpr (NA > 0) {
            const TA b = VA::bcast(x);
            DYDCA_UNROLL
            for (int v = 0; v < NA; ++v) acc[p][v] = VA::fma(b, w[v], acc[p][v]);
          }
          if constexpr (NB > 0) {
            const TB b = VB::bcast(x);
            DYDCA_UNROLL
            for (int v = 0; v < NB; ++v) accb[p][v] = VB::fma(b, wb[v], accb[p][v]);
          }
        }
      }
    }
  }
  switch (a.epilogue) {
    case Epilogue::kNone:
      DYDCA_UNROLL
      for (int p = 0; p < P; ++p)
        if (p < npix) {
          DYDCA_UNROLL
          for (int v = 0; v < NA; ++v) VA::store(dst + p * CO + v * VA::N, acc[p][v]);
          DYDCA_UNROLL
          for (int v = 0; v < NB; ++v) VB::store(dst + p * CO + L::kA + v * VB::N, accb[p][v]);
        }
      break;
    case Epilogue::kRelu:
      DYDCA_UNROLL
      for (int p = 0; p < P; ++p)
        if (p < npix) {
          DYDCA_UNROLL
          for (int v = 0; v < NA; ++v)
            VA::store(dst + p * CO + v * VA::N, VA::max(acc[p][v], VA::zero()));
          DYDCA_UNROLL
          for (int v = 0; v < NB; ++v)
            VB::store(dst + p * CO + L::kA + v * VB::N, VB::max(accb[p][v], VB::zero()));
        }
      break;
    case Epilogue::kResidual:
      DYDCA_UNROLL
      for (int p = 0; p < P; ++p)
        if (p < npix) {
          DYDCA_UNROLL
          for (int v = 0; v < NA; ++v) {
            float* d = dst + p * CO + v * VA::N;
            VA::store(d, VA::add(VA::load(d), acc[p][v]));
          }
          DYDCA_UNROLL
          for (int v = 0; v < NB; ++v) {
            float* d = dst + p * CO + L::kA + v * VB::N;
            VB::store(d, VB::add(VB::load(d), accb[p][v]));
          }
        }
      break;
  }
}

template <class VA, int NA, class VB, int NB, int CS, int P, int PS,
          int CO = Lanes<VA, NA, VB, NB>::kOut>
void conv3x3_simd(const ConvArgs& a) {
  static_assert(PS + 2 <= kMaxOverread, "remainder block reads past the slack");
  for (int y = 0; y < a.height; ++y) {
    const float* srow = a.src + y * a.src_row;
    float* drow = a.dst + y * a.dst_row;
    int x = 0;
    for (; x + P <= a.width; x += P)
      conv_block<VA, NA, VB, NB, CS, P, CO>(a, srow + x * CS, drow + x * CO, P);
    for (; x < a.width; x += PS) {
      const int n = a.width - x;
      conv_block<VA, NA, VB, NB, CS, PS, CO>(a, srow + x * CS, drow + x * CO, n < PS ? n : PS);
    }
  }
}

// Tail: NV vectors cover the S*S output channels (weights padded to 16).
template <class V, int CS, int NV, int P, int S>
DYDCA_INLINE void tail_block(const TailArgs& a, int x0, int y, int npix) {
  using T = typename V::T;
  T acc[P][NV];
  DYDCA_UNROLL
  for (int v = 0; v < NV; ++v) {
    const T b = V::load(a.bias + v * V::N);
    DYDCA_UNROLL
    for (int p = 0; p < P; ++p) acc[p][v] = b;
  }
  if constexpr (CS > 1) {
    const float* wt = a.tail_weight;
    const float* src = a.feat + y * a.feat_row + x0 * CS;
    for (int ky = 0; ky < 3; ++ky) {
      for (int kx = 0; kx < 3; ++kx) {
        const float* s = src + ky * a.feat_row + kx * CS;
        for (int ci = 0; ci < a.cin; ++ci, wt += kTailChannels) {
          T w[NV];
          DYDCA_UNROLL
          for (int v = 0; v < NV; ++v) w[v] = V::load(wt + v * V::N);
          DYDCA_UNROLL
          for (int p = 0; p < P; ++p) {
            const T b = V::bcast(s + p * CS + ci);
            DYDCA_UNROLL
            for (int v = 0; v < NV; ++v) acc[p][v] = V::fma(b, w[v], acc[p][v]);
          }
        }
      }
    }
  }
  const float* xs = a.x + y * a.x_row + x0;
  for (int ky = 0; ky < 5; ++ky) {
    for (int kx = 0; kx < 5; ++kx) {
      const float* wt = a.skip_weight + (ky * 5 + kx) * kTailChannels;
      T w[NV];
      DYDCA_UNROLL
      for (int v = 0; v < NV; ++v) w[v] = V::load(wt + v * V::N);
      const float* s = xs + ky * a.x_row + kx;
      DYDCA_UNROLL
      for (int p = 0; p < P; ++p) {
        const T b = V::bcast(s + p);
        DYDCA_UNROLL
        for (int v = 0; v < NV; ++v) acc[p][v] = V::fma(b, w[v], acc[p][v]);
      }
    }
  }
  if (a.hr_float) {
    alignas(64) float out[P][NV * V::N];
    DYDCA_UNROLL
    for (int p = 0; p < P; ++p)
      DYDCA_UNROLL
      for (int v = 0; v < NV; ++v) V::store(&out[p][v * V::N], acc[p][v]);
    for (int p = 0; p < npix; ++p)
      for (int c = 0; c < S * S; ++c)
        a.hr_float[(y * S + c / S) * a.hr_float_stride + (x0 + p) * S + c % S] = out[p][c];
    return;
  }
  // Pixel shuffle: pixel p's channels i*S .. i*S+S-1 are S adjacent bytes of
  // HR row i, so each (pixel, row) is one S-byte copy.
  alignas(64) uint8_t out[P][NV * V::N];
  DYDCA_UNROLL
  for (int p = 0; p < P; ++p) V::template pack_luma<NV>(out[p], acc[p]);
  uint8_t* rows[S];
  for (int i = 0; i < S; ++i) rows[i] = a.hr + (y * S + i) * a.hr_stride + x0 * S;
  for (int p = 0; p < npix; ++p)
    DYDCA_UNROLL
    for (int i = 0; i < S; ++i) std::memcpy(rows[i] + p * S, &out[p][i * S], S);
}

template <class V, int CS, int NV, int P, int PS, int S>
void tail_rows(const TailArgs& a) {
  for (int y = 0; y < a.height; ++y) {
    int x = 0;
    for (; x + P <= a.width; x += P) tail_block<V, CS, NV, P, S>(a, x, y, P);
    for (; x < a.width; x += PS) {
      const int n = a.width - x;
      tail_block<V, CS, NV, PS, S>(a, x, y, n < PS ? n : PS);
    }
  }
}

}  // namespace
}  // namespace dydca::rt
