// The encoder GEMM on the CPU, pre = x W_enc^T + b_enc ([B, D] x [D, F] -> [B, F]), the one dense
// product of a training step.
//
// With AVX-512 and float, our own kernel runs: W_enc is repacked on every call into panels of 48
// latents, so an 8 x 48 tile of `pre` accumulates in 24 registers while one x word per row is
// broadcast. A "word" is one float (fp32), or a pair of neighbouring inputs rounded to bfloat16
// (bf16: vdpbf16ps multiplies both pairs into a float accumulator, twice the FLOPs per
// instruction of a float FMA). Each element of `pre` is summed by one thread in a fixed order, so
// results are bitwise the same at any thread count. Repacking is one pass over W_enc per call,
// which training needs anyway (W_enc changes every step). Without AVX-512, or for double, Eigen's
// GEMM runs instead (fp32 only).
#pragma once

#include <sae/config.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/bfloat16.hpp>
#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/model/encoder_precision.hpp>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#define SAE_AVX512_ENCODER_GEMM 1
#else
#define SAE_AVX512_ENCODER_GEMM 0
#endif
#if SAE_AVX512_ENCODER_GEMM && defined(__AVX512BF16__)
#define SAE_BF16_ENCODER_GEMM 1
#else
#define SAE_BF16_ENCODER_GEMM 0
#endif

namespace sae {

// Whether EncoderPrecision::bf16 can run in this build: it needs AVX512-BF16 at compile time
// (e.g. -march=native on a CPU that has it; SAE_NATIVE_ARCH does this for our programs).
inline constexpr bool bf16_encoder_available = SAE_BF16_ENCODER_GEMM == 1;

namespace ops {

// Buffers reused across calls: packed weight panels, the padded bias, x as bf16 words.
struct EncoderGemmScratch {
  std::vector<std::uint32_t> panels;
  std::vector<float> bias;
  std::vector<std::uint32_t> x_words;
};

#if SAE_AVX512_ENCODER_GEMM
namespace detail {

constexpr index_t kPanelLatents = 48;  // three 16-float vectors
constexpr index_t kTileRows = 8;       // 8 x 3 accumulators + 3 weight vectors fit the 32 registers
constexpr index_t kDepthBlock = 1024;  // words per pass: an 8-row tile of x (32 KiB) stays in L1
constexpr index_t kRowBlock = 64;      // rows per work item; they share one panel slice in L2
constexpr index_t kPackWords = 256;    // words per packing work item

inline __mmask16 first_lanes(index_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1u);
}

// 16 words of a float row starting at word q0; lanes past the row's end are 0.
template <bool Bf16>
inline __m512i row_words(const float* row, index_t d, index_t q0) {
  if constexpr (Bf16) {
#if SAE_BF16_ENCODER_GEMM
    const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(d - 2 * q0), row + std::min(2 * q0, d));
    const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(d - 2 * q0 - 16), row + std::min(2 * q0 + 16, d));
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // bf16 of row[2 q0 .. 2 q0 + 31], in order
#else
    return _mm512_setzero_si512();
#endif
  } else {
    return _mm512_castps_si512(_mm512_maskz_loadu_ps(first_lanes(d - q0), row + std::min(q0, d)));
  }
}

// Transposes a 16 x 16 block of 32-bit words held as 16 row vectors, in place.
inline void transpose16(__m512i (&r)[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  // Now r[4i + m]'s 128-bit lane L holds column 4L + m of rows 4i .. 4i + 3.
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int m = 0; m < 4; ++m) {
    const __m512i ab_even = _mm512_shuffle_i32x4(r[m], r[4 + m], 0x88), ab_odd = _mm512_shuffle_i32x4(r[m], r[4 + m], 0xdd);
    const __m512i cd_even = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0x88);
    const __m512i cd_odd = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0xdd);
    t[m] = _mm512_shuffle_i32x4(ab_even, cd_even, 0x88);
    t[8 + m] = _mm512_shuffle_i32x4(ab_even, cd_even, 0xdd);
    t[4 + m] = _mm512_shuffle_i32x4(ab_odd, cd_odd, 0x88);
    t[12 + m] = _mm512_shuffle_i32x4(ab_odd, cd_odd, 0xdd);
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// panels[p][q][c] = word q of W row p * 48 + c (0 past the last row or word): 16 x 16 blocks of
// words, read along rows and written along the panel.
template <bool Bf16>
void pack_panels(const Matrix<float>& w, index_t words_padded, std::vector<std::uint32_t>& panels) {
  const index_t f = w.rows(), d = w.cols();
  const index_t count = (f + kPanelLatents - 1) / kPanelLatents;
  panels.resize(static_cast<std::size_t>(count * words_padded * kPanelLatents));
  const index_t chunks = (words_padded + kPackWords - 1) / kPackWords;  // work items: panel x word chunk
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t item = 0; item < count * chunks; ++item) {
    const index_t p = item / chunks, q_begin = item % chunks * kPackWords;
    std::uint32_t* panel = panels.data() + p * words_padded * kPanelLatents;
    for (index_t q0 = q_begin; q0 < std::min(words_padded, q_begin + kPackWords); q0 += 16)
      for (index_t c0 = 0; c0 < kPanelLatents; c0 += 16) {
        __m512i block[16];
        for (index_t c = 0; c < 16; ++c) {
          const index_t j = p * kPanelLatents + c0 + c;
          block[c] = j < f ? row_words<Bf16>(w.row(j).data(), d, q0) : _mm512_setzero_si512();
        }
        transpose16(block);
        for (index_t t = 0; t < 16; ++t) _mm512_storeu_si512(panel + (q0 + t) * kPanelLatents + c0, block[t]);
      }
  }
}

// x rows as bf16 words, `words` per row.
inline void pack_rows_bf16(const Matrix<float>& x, index_t words, std::vector<std::uint32_t>& out) {
  out.resize(static_cast<std::size_t>(x.rows() * words));
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t i = 0; i < x.rows(); ++i)
    for (index_t q0 = 0; q0 < words; q0 += 16)
      _mm512_mask_storeu_epi32(out.data() + i * words + q0, first_lanes(words - q0),
                               row_words<true>(x.row(i).data(), x.cols(), q0));
}

// out[r, 0:48] = init[r] + sum over `depth` words of x[r] . panel, for M rows. Lanes past the last
// latent are masked off. x is float (fp32) or bf16 words (bf16).
template <int M, bool Bf16, class X>
inline void tile(const X* x, index_t ldx, const std::uint32_t* panel, index_t depth, float* out, index_t ldo,
                 const float* init, index_t init_ld, const __mmask16 (&mask)[3]) {
  __m512 acc[M][3];
  for (int r = 0; r < M; ++r)
    for (int v = 0; v < 3; ++v) acc[r][v] = _mm512_maskz_loadu_ps(mask[v], init + r * init_ld + 16 * v);
  for (index_t q = 0; q < depth; ++q) {
    const std::uint32_t* wq = panel + q * kPanelLatents;
    const __m512i w0 = _mm512_loadu_si512(wq), w1 = _mm512_loadu_si512(wq + 16), w2 = _mm512_loadu_si512(wq + 32);
    for (int r = 0; r < M; ++r) {
      if constexpr (Bf16) {
#if SAE_BF16_ENCODER_GEMM
        const __m512bh b = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[r * ldx + q]));
        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], b, (__m512bh)w0);
        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], b, (__m512bh)w1);
        acc[r][2] = _mm512_dpbf16_ps(acc[r][2], b, (__m512bh)w2);
#endif
      } else {
        const __m512 b = _mm512_set1_ps(x[r * ldx + q]);
        acc[r][0] = _mm512_fmadd_ps(b, _mm512_castsi512_ps(w0), acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(b, _mm512_castsi512_ps(w1), acc[r][1]);
        acc[r][2] = _mm512_fmadd_ps(b, _mm512_castsi512_ps(w2), acc[r][2]);
      }
    }
  }
  for (int r = 0; r < M; ++r)
    for (int v = 0; v < 3; ++v) _mm512_mask_storeu_ps(out + r * ldo + 16 * v, mask[v], acc[r][v]);
}

template <bool Bf16, class X>
void tile_rows(index_t m, const X* x, index_t ldx, const std::uint32_t* panel, index_t depth, float* out, index_t ldo,
               const float* init, index_t init_ld, const __mmask16 (&mask)[3]) {
  switch (m) {
    case 8: tile<8, Bf16>(x, ldx, panel, depth, out, ldo, init, init_ld, mask); break;
    case 7: tile<7, Bf16>(x, ldx, panel, depth, out, ldo, init, init_ld, mask); break;
    case 6: tile<6, Bf16>(x, ldx, panel, depth, out, ldo, init, init_ld, mask); break;
    case 5: tile<5, Bf16>(x, ldx, panel, depth, out, ldo, init, init_ld, mask); break;
    case 4: tile<4, Bf16>(x, ldx, panel, depth, out, ldo, init, init_ld, mask); break;
    case 3: tile<3, Bf16>(x, ldx, panel, depth, out, ldo, init, init_ld, mask); break;
    case 2: tile<2, Bf16>(x, ldx, panel, depth, out, ldo, init, init_ld, mask); break;
    default: tile<1, Bf16>(x, ldx, panel, depth, out, ldo, init, init_ld, mask); break;
  }
}

// pre ([rows, f]) = x words . packed panels + bias.
template <bool Bf16, class X>
void multiply_panels(const X* x, index_t ldx, index_t rows, index_t words, index_t words_padded, index_t f,
                     const EncoderGemmScratch& s, float* pre) {
  const index_t panels = (f + kPanelLatents - 1) / kPanelLatents;
  const index_t row_blocks = (rows + kRowBlock - 1) / kRowBlock;
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t item = 0; item < panels * row_blocks; ++item) {
    const index_t p = item / row_blocks, rb = item % row_blocks;  // neighbouring items share a panel
    const __mmask16 mask[3] = {first_lanes(f - p * kPanelLatents), first_lanes(f - p * kPanelLatents - 16),
                               first_lanes(f - p * kPanelLatents - 32)};
    const std::uint32_t* panel = s.panels.data() + p * words_padded * kPanelLatents;
    const index_t row_end = std::min(rows, (rb + 1) * kRowBlock);
    for (index_t q0 = 0; q0 < words; q0 += kDepthBlock) {
      const index_t depth = std::min(kDepthBlock, words - q0);
      for (index_t i = rb * kRowBlock; i < row_end; i += kTileRows) {
        float* out = pre + i * f + p * kPanelLatents;
        const bool first = q0 == 0;
        tile_rows<Bf16>(std::min(kTileRows, row_end - i), x + i * ldx + q0, ldx, panel + q0 * kPanelLatents, depth,
                        out, f, first ? s.bias.data() + p * kPanelLatents : out, first ? 0 : f, mask);
      }
    }
  }
}

}  // namespace detail
#endif  // SAE_AVX512_ENCODER_GEMM

// pre = x * w_enc^T + b_enc in the asked precision (bf16 needs bf16_encoder_available and float).
template <class Scalar>
void encoder_preactivations(cpu, const Matrix<Scalar>& x, const Matrix<Scalar>& w_enc, const Vector<Scalar>& b_enc,
                            Matrix<Scalar>& pre, EncoderPrecision precision, EncoderGemmScratch& scratch) {
  const bool bf16 = precision == EncoderPrecision::bf16;
  sae::detail::require(!bf16 || (bf16_encoder_available && std::is_same_v<Scalar, float>), "encoder_preactivations()",
                       "the bf16 encoder GEMM needs float and a build with AVX512-BF16 (-march=native on a CPU "
                       "that has it)");
  pre.resize(x.rows(), w_enc.rows());
#if SAE_AVX512_ENCODER_GEMM
  if constexpr (std::is_same_v<Scalar, float>) {
    const index_t f = w_enc.rows(), d = w_enc.cols();
    const index_t words = bf16 ? (d + 1) / 2 : d, words_padded = (words + 15) / 16 * 16;
    const index_t panels = (f + detail::kPanelLatents - 1) / detail::kPanelLatents;
    scratch.bias.assign(static_cast<std::size_t>(panels * detail::kPanelLatents), 0.0f);
    std::copy(b_enc.data(), b_enc.data() + f, scratch.bias.begin());
    if (x.rows() == 0 || f == 0) return;
    if (bf16) {
      detail::pack_panels<true>(w_enc, words_padded, scratch.panels);
      detail::pack_rows_bf16(x, words, scratch.x_words);
      detail::multiply_panels<true>(scratch.x_words.data(), words, x.rows(), words, words_padded, f, scratch, pre.data());
    } else {
      detail::pack_panels<false>(w_enc, words_padded, scratch.panels);
      detail::multiply_panels<false>(x.data(), d, x.rows(), words, words_padded, f, scratch, pre.data());
    }
    return;
  }
#endif
  (void)scratch;
  pre.noalias() = x * w_enc.transpose();
  pre.rowwise() += b_enc.transpose();
}

// fp32, with scratch of its own (one-off products; training reuses a workspace's scratch).
template <class Scalar>
void encoder_preactivations(cpu, const Matrix<Scalar>& x, const Matrix<Scalar>& w_enc, const Vector<Scalar>& b_enc,
                            Matrix<Scalar>& pre) {
  EncoderGemmScratch scratch;
  encoder_preactivations(cpu{}, x, w_enc, b_enc, pre, EncoderPrecision::fp32, scratch);
}

}  // namespace ops
}  // namespace sae
