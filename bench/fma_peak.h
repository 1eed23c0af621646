// The machine's measured FP32 FMA peak and the wall / CPU-second clocks the
// speed benches share (dydca_runtime_bench, dydca_torch_runtime_bench).
//
// Why CPU-seconds: the bench machine is shared (other builds, tests). Wall
// time then measures the neighbours; FLOPs per CPU-second of our own threads
// (CLOCK_PROCESS_CPUTIME_ID) measure how well code uses a core while it has
// it, and the peak is measured the same way: `threads` threads each run
// chains of independent FMAs (16 zmm or 12 ymm accumulators, enough to hide
// the FMA latency), best of 3.
#pragma once

#include <time.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "dydca/runtime.h"

namespace dydca::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

inline double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Wall and process CPU seconds of a piece of work.
struct Span {
  Clock::time_point wall0 = Clock::now();
  double cpu0 = cpu_now();
  double wall() const { return seconds_since(wall0); }
  double cpu() const { return cpu_now() - cpu0; }
};

struct Rate {
  double wall = 0;  // GFLOP/s
  double cpu = 0;   // GFLOP per CPU-second (per core while running)
};

#if defined(__x86_64__)
__attribute__((target("avx512f"))) inline double fma_loop_512(long iters) {
  __m512 a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512 b = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-5f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ps(a[i], b, c);
  float s = 0, t[16];
  for (int i = 0; i < 16; ++i) {
    _mm512_storeu_ps(t, a[i]);
    s += t[0];
  }
  return s;
}
__attribute__((target("avx2,fma"))) inline double fma_loop_256(long iters) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(float(i) * 1e-3f);
  const __m256 b = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-5f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], b, c);
  float s = 0, t[8];
  for (int i = 0; i < 12; ++i) {
    _mm256_storeu_ps(t, a[i]);
    s += t[0];
  }
  return s;
}
// Independent vpdpbusd (u8 x s8 -> int32, 4 MACs per lane) on zmm: the int8
// VNNI peak. 16 accumulators.
__attribute__((target("avx512f,avx512vnni"))) inline double vnni_loop_512(long iters) {
  __m512i a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_epi32(i);
  const __m512i b = _mm512_set1_epi8(3), c = _mm512_set1_epi8(-2);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_dpbusd_epi32(a[i], b, c);
  int32_t s = 0, t[16];
  for (int i = 0; i < 16; ++i) {
    _mm512_storeu_si512(t, a[i]);
    s += t[0];
  }
  return s;
}
#endif

// int8 VNNI peak in GOP/s (1 MAC = 2 ops, as the fp32 GFLOP), best of 3; zero
// without AVX-512 VNNI.
inline Rate measure_vnni_peak(int threads) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512vnni")) return {};
  const long iters = 20'000'000;
  const double ops_per_iter = 16 * 16 * 4 * 2;
  Rate best;
  for (int rep = 0; rep < 3; ++rep) {
    volatile double sink = 0;
    Span span;
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i) ts.emplace_back([&] { sink = vnni_loop_512(iters); });
    for (auto& t : ts) t.join();
    const double gop = threads * iters * ops_per_iter / 1e9;
    best.wall = std::max(best.wall, gop / span.wall());
    best.cpu = std::max(best.cpu, gop / span.cpu());
  }
  return best;
#else
  (void)threads;
  return {};
#endif
}

// Independent FMAs of `level` on `threads` threads, best of 3 (zero for the
// scalar level or a level this CPU lacks).
inline Rate measure_peak(SimdLevel level, int threads) {
#if defined(__x86_64__)
  if (level == SimdLevel::kNone || !simd_level_supported(level)) return {};
  const long iters = 20'000'000;
  const double flop_per_iter = level == SimdLevel::kAvx512 ? 16 * 16 * 2 : 12 * 8 * 2;
  Rate best;
  for (int rep = 0; rep < 3; ++rep) {
    volatile double sink = 0;
    Span span;
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i)
      ts.emplace_back(
          [&] { sink = level == SimdLevel::kAvx512 ? fma_loop_512(iters) : fma_loop_256(iters); });
    for (auto& t : ts) t.join();
    const double gflop = threads * iters * flop_per_iter / 1e9;
    best.wall = std::max(best.wall, gflop / span.wall());
    best.cpu = std::max(best.cpu, gflop / span.cpu());
  }
  return best;
#else
  (void)level;
  (void)threads;
  return {};
#endif
}

}  // namespace dydca::bench
