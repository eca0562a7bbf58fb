// SIMD packets for the CPU kernels: Eigen's packet layer at the widest vector the build targets
// (AVX-512, AVX, SSE2, NEON, or a plain scalar), plus the one operation it does not give exactly:
// the square root. Eigen's psqrt trades 1-2 bits for speed under EIGEN_FAST_MATH (its default),
// so exact_sqrt uses each ISA's IEEE square root, lane by lane std::sqrt where there is none.
#pragma once

#include <sae/core/types.hpp>

#include <cmath>

#if defined(EIGEN_VECTORIZE_SSE2) || defined(EIGEN_VECTORIZE_AVX) || defined(EIGEN_VECTORIZE_AVX512)
#include <immintrin.h>
#endif
#if defined(EIGEN_VECTORIZE_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace sae::simd {

// GCC notes that a vector type's attributes do not take part in template arguments; Eigen's own
// packet code is written the same way and silences it likewise.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
#endif
template <class Scalar>
using Packet = typename Eigen::internal::packet_traits<Scalar>::type;
template <class Scalar>
inline constexpr index_t kLanes = Eigen::internal::unpacket_traits<Packet<Scalar>>::size;  // scalars per packet

// Any packet without a native square root below (and plain scalars): lane by lane.
template <class P>
P exact_sqrt(const P& x) {
  using Scalar = typename Eigen::internal::unpacket_traits<P>::type;
  constexpr int lanes = Eigen::internal::unpacket_traits<P>::size;
  Scalar lane[lanes];
  Eigen::internal::pstoreu(lane, x);
  for (Scalar& s : lane) s = std::sqrt(s);
  return Eigen::internal::ploadu<P>(lane);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
inline float exact_sqrt(float x) { return std::sqrt(x); }
inline double exact_sqrt(double x) { return std::sqrt(x); }
#if defined(EIGEN_VECTORIZE_SSE2)
inline __m128 exact_sqrt(__m128 x) { return _mm_sqrt_ps(x); }
inline __m128d exact_sqrt(__m128d x) { return _mm_sqrt_pd(x); }
#endif
#if defined(EIGEN_VECTORIZE_AVX)
inline __m256 exact_sqrt(__m256 x) { return _mm256_sqrt_ps(x); }
inline __m256d exact_sqrt(__m256d x) { return _mm256_sqrt_pd(x); }
#endif
#if defined(EIGEN_VECTORIZE_AVX512)
inline __m512 exact_sqrt(__m512 x) { return _mm512_sqrt_ps(x); }
inline __m512d exact_sqrt(__m512d x) { return _mm512_sqrt_pd(x); }
#endif
#if defined(EIGEN_VECTORIZE_NEON) && defined(__aarch64__)
inline float32x4_t exact_sqrt(float32x4_t x) { return vsqrtq_f32(x); }
inline float64x2_t exact_sqrt(float64x2_t x) { return vsqrtq_f64(x); }
#endif

}  // namespace sae::simd
