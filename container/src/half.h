// IEEE 754 binary16 <-> binary32, round to nearest even (portable; no F16C
// needed: conversion runs once per model load, not per pixel).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace dydca::blob {

inline uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs_bits = x & 0x7fffffffu;
  if (abs_bits >= 0x7f800000u)  // inf or nan (nan keeps a quiet payload bit)
    return uint16_t(sign | 0x7c00u | (abs_bits > 0x7f800000u ? 0x200u : 0u));
  if (abs_bits >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (abs_bits < 0x38800000u) {  // below 2^-14: half subnormal (or zero)
    float a;
    std::memcpy(&a, &abs_bits, 4);
    // a * 2^24 is exact; nearbyint rounds half to even in the default mode.
    // A result of 0x400 is the smallest normal half, encoded the same way.
    return uint16_t(sign | uint32_t(std::nearbyint(a * 16777216.0f)));
  }
  const uint32_t exponent = (abs_bits >> 23) - 127 + 15;
  const uint32_t mantissa = abs_bits & 0x7fffffu;
  uint32_t h = (exponent << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry bumps the exponent: right
  return uint16_t(sign | h);
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    const float v = float(mantissa) * (1.0f / 16777216.0f);  // mantissa * 2^-24
    return sign ? -v : v;
  }
  uint32_t bits = exponent == 31 ? (sign | 0x7f800000u | (mantissa << 13))
                                 : (sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace dydca::blob
