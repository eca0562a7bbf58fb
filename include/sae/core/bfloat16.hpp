// bfloat16 (the top 16 bits of an IEEE binary32) <-> float in portable code. Rounding is to
// nearest, ties to even — the rounding of AVX512-BF16's vcvtne2ps2bf16 — and NaN stays NaN.
#pragma once

#include <cstdint>
#include <cstring>

namespace sae {

inline std::uint16_t float_to_bf16(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

inline float bf16_to_float(std::uint16_t h) {
  const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace sae
