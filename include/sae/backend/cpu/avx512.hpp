// Small AVX-512 helpers shared by the CPU kernels; empty without AVX-512.
#pragma once

#include <sae/core/types.hpp>

#if defined(__AVX512F__)
#include <immintrin.h>

namespace sae::ops::detail {

// Mask of the first n of 16 lanes (none for n <= 0, all for n >= 16): the valid lanes of a row's tail.
inline __mmask16 first_lanes(index_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1u);
}

}  // namespace sae::ops::detail
#endif
