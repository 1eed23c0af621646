// int8 SIMD kernels as templates over an integer vector type I (see
// kernels_int8_avx2.cpp and kernels_int8_avx512.cpp, each compiled with its
// own -m flags; everything is in an anonymous namespace, as kernels_simd.h).
//
// Register blocking as the fp32 kernels: P consecutive output pixels of one
// row x all output vectors stay in int32 accumulators over the weight groups;
// per group the block loads the weight vectors once and broadcasts P input
// dwords (4 input bytes each). The dot product of a broadcast dword with a
// weight vector (4 int8 per int32 lane) is one vpdpbusd with VNNI; AVX2 has no
// exact u8 x s8 instruction (vpmaddubsw saturates 255 * 127 * 2 at int16), so
// its types take b - 128 (xor 0x80, an s8 in -128..127) and use
// vpmaddubsw(|b - 128|, sign(w, b - 128)): |pair| <= 128 * 127 * 2 = 32512,
// exact, then vpmaddwd by ones and vpaddd. The two schemes differ only in the
// constant the accumulators start from (init_raw / init_off), so every level
// computes the same integer, then the same fp32 requantisation.
#pragma once

#include <immintrin.h>

#include <cstring>

#include "kernels_simd.h"

namespace dydca::rt {
namespace {

DYDCA_INLINE int32_t load_dword(const uint8_t* p) {
  int32_t d;
  std::memcpy(&d, p, 4);
  return d;
}

// ---- AVX2 (also SSSE3/SSE4.1 on xmm) ------------------------------------------
#if defined(__AVX2__)
struct A256 {
  using T = __m256i;
  using V = V256;
  using F = __m256;
  static constexpr int N = 8;
  static constexpr bool kRaw = false;
  struct B {
    T s, abs;
  };
  static DYDCA_INLINE B bcast(const uint8_t* p) {
    const T s = _mm256_xor_si256(_mm256_set1_epi32(load_dword(p)), _mm256_set1_epi8(char(0x80)));
    return {s, _mm256_abs_epi8(s)};
  }
  static DYDCA_INLINE T dot(T acc, const B& b, T w) {
    const T prod = _mm256_maddubs_epi16(b.abs, _mm256_sign_epi8(w, b.s));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(prod, _mm256_set1_epi16(1)));
  }
  static DYDCA_INLINE T loadw(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const T*>(p)); }
  static DYDCA_INLINE T loadi(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const T*>(p)); }
  static DYDCA_INLINE F to_float(T a) { return _mm256_cvtepi32_ps(a); }
  static DYDCA_INLINE F loadf(const float* p) { return _mm256_loadu_ps(p); }
  static DYDCA_INLINE F set1f(float v) { return _mm256_set1_ps(v); }
  static DYDCA_INLINE F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static DYDCA_INLINE F clamp(F v, float lo, float hi) {
    return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(lo)), _mm256_set1_ps(hi));
  }
  static DYDCA_INLINE T cvt(F v) { return _mm256_cvtps_epi32(v); }
  static DYDCA_INLINE T add(T a, int v) { return _mm256_add_epi32(a, _mm256_set1_epi32(v)); }
  static DYDCA_INLINE T from_bytes(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  // Lanes hold 0..255.
  static DYDCA_INLINE void store_bytes(uint8_t* p, T q) {
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(w, w));
  }
};

struct A128 {
  using T = __m128i;
  using V = V128;
  using F = __m128;
  static constexpr int N = 4;
  static constexpr bool kRaw = false;
  struct B {
    T s, abs;
  };
  static DYDCA_INLINE B bcast(const uint8_t* p) {
    const T s = _mm_xor_si128(_mm_set1_epi32(load_dword(p)), _mm_set1_epi8(char(0x80)));
    return {s, _mm_abs_epi8(s)};
  }
  static DYDCA_INLINE T dot(T acc, const B& b, T w) {
    const T prod = _mm_maddubs_epi16(b.abs, _mm_sign_epi8(w, b.s));
    return _mm_add_epi32(acc, _mm_madd_epi16(prod, _mm_set1_epi16(1)));
  }
  static DYDCA_INLINE T loadw(const int8_t* p) { return _mm_loadu_si128(reinterpret_cast<const T*>(p)); }
  static DYDCA_INLINE T loadi(const int32_t* p) { return _mm_loadu_si128(reinterpret_cast<const T*>(p)); }
  static DYDCA_INLINE F to_float(T a) { return _mm_cvtepi32_ps(a); }
  static DYDCA_INLINE F loadf(const float* p) { return _mm_loadu_ps(p); }
  static DYDCA_INLINE F set1f(float v) { return _mm_set1_ps(v); }
  static DYDCA_INLINE F fma(F a, F b, F c) { return _mm_fmadd_ps(a, b, c); }
  static DYDCA_INLINE F clamp(F v, float lo, float hi) {
    return _mm_min_ps(_mm_max_ps(v, _mm_set1_ps(lo)), _mm_set1_ps(hi));
  }
  static DYDCA_INLINE T cvt(F v) { return _mm_cvtps_epi32(v); }
  static DYDCA_INLINE T add(T a, int v) { return _mm_add_epi32(a, _mm_set1_epi32(v)); }
  static DYDCA_INLINE T from_bytes(const uint8_t* p) {
    return _mm_cvtepu8_epi32(_mm_cvtsi32_si128(load_dword(p)));
  }
  static DYDCA_INLINE void store_bytes(uint8_t* p, T q) {
    const __m128i w = _mm_packus_epi32(q, q);
    const int32_t b = _mm_cvtsi128_si32(_mm_packus_epi16(w, w));
    std::memcpy(p, &b, 4);
  }
};
#endif

// ---- AVX-512 VNNI (zmm, and ymm/xmm through VL) -------------------------------
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
struct I512 {
  using T = __m512i;
  using V = V512;
  using F = __m512;
  static constexpr int N = 16;
  static constexpr bool kRaw = true;
  struct B {
    T v;
  };
  static DYDCA_INLINE B bcast(const uint8_t* p) { return {_mm512_set1_epi32(load_dword(p))}; }
  // Inline asm with the accumulator tied ("+v"): with the intrinsic, GCC 12
  // rotated the 24 accumulators through register copies on every loop trip
  // (vpdpbusd has no commuted form), which halved the kernel's speed.
  static DYDCA_INLINE T dot(T acc, const B& b, T w) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(b.v), "v"(w));
    return acc;
  }
  static DYDCA_INLINE T loadw(const int8_t* p) { return _mm512_loadu_si512(p); }
  static DYDCA_INLINE T loadi(const int32_t* p) { return _mm512_loadu_si512(p); }
  static DYDCA_INLINE F to_float(T a) { return _mm512_cvtepi32_ps(a); }
  static DYDCA_INLINE F loadf(const float* p) { return _mm512_loadu_ps(p); }
  static DYDCA_INLINE F set1f(float v) { return _mm512_set1_ps(v); }
  static DYDCA_INLINE F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static DYDCA_INLINE F clamp(F v, float lo, float hi) {
    return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(lo)), _mm512_set1_ps(hi));
  }
  static DYDCA_INLINE T cvt(F v) { return _mm512_cvtps_epi32(v); }
  static DYDCA_INLINE T add(T a, int v) { return _mm512_add_epi32(a, _mm512_set1_epi32(v)); }
  static DYDCA_INLINE T from_bytes(const uint8_t* p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static DYDCA_INLINE void store_bytes(uint8_t* p, T q) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(q));
  }
};

struct I256 {
  using T = __m256i;
  using V = V256;
  using F = __m256;
  static constexpr int N = 8;
  static constexpr bool kRaw = true;
  struct B {
    T v;
  };
  static DYDCA_INLINE B bcast(const uint8_t* p) { return {_mm256_set1_epi32(load_dword(p))}; }
  static DYDCA_INLINE T dot(T acc, const B& b, T w) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(b.v), "v"(w));  // see I512::dot
    return acc;
  }
  static DYDCA_INLINE T loadw(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const T*>(p)); }
  static DYDCA_INLINE T loadi(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const T*>(p)); }
  static DYDCA_INLINE F to_float(T a) { return _mm256_cvtepi32_ps(a); }
  static DYDCA_INLINE F loadf(const float* p) { return _mm256_loadu_ps(p); }
  static DYDCA_INLINE F set1f(float v) { return _mm256_set1_ps(v); }
  static DYDCA_INLINE F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static DYDCA_INLINE F clamp(F v, float lo, float hi) {
    return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(lo)), _mm256_set1_ps(hi));
  }
  static DYDCA_INLINE T cvt(F v) { return _mm256_cvtps_epi32(v); }
  static DYDCA_INLINE T add(T a, int v) { return _mm256_add_epi32(a, _mm256_set1_epi32(v)); }
  static DYDCA_INLINE T from_bytes(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static DYDCA_INLINE void store_bytes(uint8_t* p, T q) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm256_cvtepi32_epi8(q));
  }
};

struct I128 {
  using T = __m128i;
  using V = V128;
  using F = __m128;
  static constexpr int N = 4;
  static constexpr bool kRaw = true;
  struct B {
    T v;
  };
  static DYDCA_INLINE B bcast(const uint8_t* p) { return {_mm_set1_epi32(load_dword(p))}; }
  static DYDCA_INLINE T dot(T acc, const B& b, T w) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(b.v), "v"(w));  // see I512::dot
    return acc;
  }
  static DYDCA_INLINE T loadw(const int8_t* p) { return _mm_loadu_si128(reinterpret_cast<const T*>(p)); }
  static DYDCA_INLINE T loadi(const int32_t* p) { return _mm_loadu_si128(reinterpret_cast<const T*>(p)); }
  static DYDCA_INLINE F to_float(T a) { return _mm_cvtepi32_ps(a); }
  static DYDCA_INLINE F loadf(const float* p) { return _mm_loadu_ps(p); }
  static DYDCA_INLINE F set1f(float v) { return _mm_set1_ps(v); }
  static DYDCA_INLINE F fma(F a, F b, F c) { return _mm_fmadd_ps(a, b, c); }
  static DYDCA_INLINE F clamp(F v, float lo, float hi) {
    return _mm_min_ps(_mm_max_ps(v, _mm_set1_ps(lo)), _mm_set1_ps(hi));
  }
  static DYDCA_INLINE T cvt(F v) { return _mm_cvtps_epi32(v); }
  static DYDCA_INLINE T add(T a, int v) { return _mm_add_epi32(a, _mm_set1_epi32(v)); }
  static DYDCA_INLINE T from_bytes(const uint8_t* p) {
    return _mm_cvtepu8_epi32(_mm_cvtsi32_si128(load_dword(p)));
  }
  static DYDCA_INLINE void store_bytes(uint8_t* p, T q) {
    const int32_t b = _mm_cvtsi128_si32(_mm_cvtepi32_epi8(q));
    std::memcpy(p, &b, 4);
  }
};
#endif

// Requantises one vector of N output channels (c0 ..) of one pixel into d.
template <class I>
DYDCA_INLINE void requant_vec(const ConvI8Args& a, typename I::T acc, int c0, uint8_t* d) {
  auto t = I::fma(I::to_float(acc), I::loadf(a.mul + c0), I::loadf(a.add + c0));
  if (a.out == OutI8::kUnsigned) {
    I::store_bytes(d, I::cvt(I::clamp(t, 0.0f, 255.0f)));
    return;
  }
  if (a.out == OutI8::kResidualSigned) {
    const auto r = I::to_float(I::add(I::from_bytes(d), -128));
    t = I::fma(r, I::set1f(a.res_mul), t);
  }
  I::store_bytes(d, I::add(I::cvt(I::clamp(t, -127.0f, 127.0f)), 128));
}

template <class I>
DYDCA_INLINE typename I::T init_acc(const int32_t* init_raw, const int32_t* init_off, int c0) {
  return I::loadi((I::kRaw ? init_raw : init_off) + c0);
}

// Output channels: NA vectors of IA then NB of IB (AVX-512: zmm + one ymm for
// 8, 24, 40, 56 channels). CO = cout_pad = the weight row and dst pixel stride.
template <class IA, int NA, class IB, int NB, int CS, int P, int CO>
DYDCA_INLINE void conv_block_i8(const ConvI8Args& a, const uint8_t* src, uint8_t* dst, int npix) {
  constexpr int kA = NA * IA::N;
  constexpr int kNA = NA > 0 ? NA : 1, kNB = NB > 0 ? NB : 1;
  using TA = typename IA::T;
  using TB = typename IB::T;
  TA acc[P][kNA];
  TB accb[P][kNB];
  DYDCA_UNROLL
  for (int v = 0; v < NA; ++v) {
    const TA b = init_acc<IA>(a.init_raw, a.init_off, v * IA::N);
    DYDCA_UNROLL
    for (int p = 0; p < P; ++p) acc[p][v] = b;
  }
  DYDCA_UNROLL
  for (int v = 0; v < NB; ++v) {
    const TB b = init_acc<IB>(a.init_raw, a.init_off, kA + v * IB::N);
    DYDCA_UNROLL
    for (int p = 0; p < P; ++p) accb[p][v] = b;
  }
  const int8_t* wt = a.weight;
  // Groups in the packed order: the luma plane has one group per row ky (the
  // dword of pixel p starts at its x - 1), features one per (ky, kx, c4).
  constexpr int KX = CS == 1 ? 1 : 3, STEP = CS;
  const int c4n = CS == 1 ? 1 : a.cin4;
  for (int ky = 0; ky < 3; ++ky)
    for (int kx = 0; kx < KX; ++kx)
      for (int c4 = 0; c4 < c4n; ++c4, wt += 4 * CO) {
        const uint8_t* s = src + ky * a.src_row + kx * CS + 4 * c4;
        TA w[kNA];
        TB wb[kNB];
        DYDCA_UNROLL
        for (int v = 0; v < NA; ++v) w[v] = IA::loadw(wt + 4 * v * IA::N);
        DYDCA_UNROLL
        for (int v = 0; v < NB; ++v) wb[v] = IB::loadw(wt + 4 * (kA + v * IB::N));
        DYDCA_UNROLL
        for (int p = 0; p < P; ++p) {
          if constexpr (NA > 0) {
            const typename IA::B b = IA::bcast(s + p * STEP);
            DYDCA_UNROLL
            for (int v = 0; v < NA; ++v) acc[p][v] = IA::dot(acc[p][v], b, w[v]);
          }
          if constexpr (NB > 0) {
            const typename IB::B b = IB::bcast(s + p * STEP);
            DYDCA_UNROLL
            for (int v = 0; v < NB; ++v) accb[p][v] = IB::dot(accb[p][v], b, wb[v]);
          }
        }
      }
  DYDCA_UNROLL
  for (int p = 0; p < P; ++p)
    if (p < npix) {
      DYDCA_UNROLL
      for (int v = 0; v < NA; ++v) requant_vec<IA>(a, acc[p][v], v * IA::N, dst + p * CO + v * IA::N);
      DYDCA_UNROLL
      for (int v = 0; v < NB; ++v)
        requant_vec<IB>(a, accb[p][v], kA + v * IB::N, dst + p * CO + kA + v * IB::N);
    }
}

template <class IA, int NA, class IB, int NB, int CS, int P, int PS, int CO = NA * IA::N + NB * IB::N>
void conv3x3_i8_simd(const ConvI8Args& a) {
  static_assert(PS + 3 <= kMaxOverread, "remainder block reads past the slack");
  for (int y = 0; y < a.height; ++y) {
    const uint8_t* srow = a.src + y * a.src_row;
    uint8_t* drow = a.dst + y * a.dst_row;
    int x = 0;
    for (; x + P <= a.width; x += P)
      conv_block_i8<IA, NA, IB, NB, CS, P, CO>(a, srow + x * CS, drow + x * CO, P);
    for (; x < a.width; x += PS) {
      const int n = a.width - x;
      conv_block_i8<IA, NA, IB, NB, CS, PS, CO>(a, srow + x * CS, drow + x * CO, n < PS ? n : PS);
    }
  }
}

// int8 tail: NV vectors of I cover the S*S channels (weights padded to 16).
template <class I, int CS, int NV, int P, int S>
DYDCA_INLINE void tail_block_i8(const TailI8Args& a, int x0, int y, int npix) {
  using V = typename I::V;
  using T = typename I::T;
  using F = typename V::T;
  T acc[P][NV];
  DYDCA_UNROLL
  for (int v = 0; v < NV; ++v) {
    const T b = init_acc<I>(a.init_raw, a.init_off, v * I::N);
    DYDCA_UNROLL
    for (int p = 0; p < P; ++p) acc[p][v] = b;
  }
  const int8_t* wt = a.tail_weight;
  const uint8_t* src = a.feat + y * a.feat_row + x0 * CS;
  for (int ky = 0; ky < 3; ++ky)
    for (int kx = 0; kx < 3; ++kx) {
      const uint8_t* s = src + ky * a.feat_row + kx * CS;
      for (int c4 = 0; c4 < a.cin4; ++c4, wt += 4 * kTailChannels) {
        T w[NV];
        DYDCA_UNROLL
        for (int v = 0; v < NV; ++v) w[v] = I::loadw(wt + 4 * v * I::N);
        DYDCA_UNROLL
        for (int p = 0; p < P; ++p) {
          const typename I::B b = I::bcast(s + p * CS + 4 * c4);
          DYDCA_UNROLL
          for (int v = 0; v < NV; ++v) acc[p][v] = I::dot(acc[p][v], b, w[v]);
        }
      }
    }
  F f[P][NV];
  DYDCA_UNROLL
  for (int v = 0; v < NV; ++v) {
    const F m = V::load(a.mul + v * V::N), b = V::load(a.bias + v * V::N);
    DYDCA_UNROLL
    for (int p = 0; p < P; ++p) f[p][v] = V::fma(I::to_float(acc[p][v]), m, b);
  }
  const float* xs = a.x + y * a.x_row + x0;
  for (int ky = 0; ky < 5; ++ky) {
    for (int kx = 0; kx < 5; ++kx) {
      const float* wk = a.skip_weight + (ky * 5 + kx) * kTailChannels;
      F w[NV];
      DYDCA_UNROLL
      for (int v = 0; v < NV; ++v) w[v] = V::load(wk + v * V::N);
      const float* s = xs + ky * a.x_row + kx;
      DYDCA_UNROLL
      for (int p = 0; p < P; ++p) {
        const F b = V::bcast(s + p);
        DYDCA_UNROLL
        for (int v = 0; v < NV; ++v) f[p][v] = V::fma(b, w[v], f[p][v]);
      }
    }
  }
  if (a.hr_float) {
    alignas(64) float out[P][NV * V::N];
    DYDCA_UNROLL
    for (int p = 0; p < P; ++p)
      DYDCA_UNROLL
      for (int v = 0; v < NV; ++v) V::store(&out[p][v * V::N], f[p][v]);
    for (int p = 0; p < npix; ++p)
      for (int c = 0; c < S * S; ++c)
        a.hr_float[(y * S + c / S) * a.hr_float_stride + (x0 + p) * S + c % S] = out[p][c];
    return;
  }
  alignas(64) uint8_t out[P][NV * V::N];
  DYDCA_UNROLL
  for (int p = 0; p < P; ++p) V::template pack_luma<NV>(out[p], f[p]);
  uint8_t* rows[S];
  for (int i = 0; i < S; ++i) rows[i] = a.hr + (y * S + i) * a.hr_stride + x0 * S;
  for (int p = 0; p < npix; ++p)
    DYDCA_UNROLL
    for (int i = 0; i < S; ++i) std::memcpy(rows[i] + p * S, &out[p][i * S], S);
}

template <class I, int CS, int NV, int P, int PS, int S>
void tail_rows_i8(const TailI8Args& a) {
  for (int y = 0; y < a.height; ++y) {
    int x = 0;
    for (; x + P <= a.width; x += P) tail_block_i8<I, CS, NV, P, S>(a, x, y, P);
    for (; x < a.width; x += PS) {
      const int n = a.width - x;
      tail_block_i8<I, CS, NV, PS, S>(a, x, y, n < PS ? n : PS);
    }
  }
}

}  // namespace
}  // namespace dydca::rt
