// The encoder GEMM on the CPU, pre = x W_enc^T + b_enc ([B, D] x [D, F] -> [B, F]), the one dense
// product of a training step.
//
// With AVX-512 and float, our own kernel runs on W_enc packed into panels of 48 latents, so an
// 8 x 48 tile of `pre` accumulates in 24 registers while one x word per row is broadcast. A "word"
// is one float (fp32), or a pair of neighbouring inputs rounded to bfloat16 (bf16: vdpbf16ps
// multiplies both pairs into a float accumulator, twice the FLOPs per instruction of a float FMA).
// Each element of `pre` is summed by one thread in a fixed order, so results are bitwise the same
// at any thread count. The packed W_enc comes from the caller when it is fresh (the TopK model's,
// repacked inside Adam's pass) or is packed here, one pass over W_enc. Without AVX-512, or for
// double, Eigen's GEMM runs instead (fp32 only).
#pragma once

#include <sae/backend/cpu/avx512.hpp>
#include <sae/config.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/bfloat16.hpp>
#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/model/encoder_precision.hpp>
#include <sae/model/row_hooks.hpp>

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

// W_enc in the kernel's panel layout for one precision. `fresh` says it matches W_enc as it is now:
// the TopK model keeps one that the optimizer repacks block by block right after updating the rows
// (model/row_hooks.hpp), which spares the GEMM its own pass over W_enc.
struct PackedEncoder {
  EncoderPrecision precision = EncoderPrecision::fp32;
  index_t latents = 0, dim = 0, words_padded = 0;
  std::vector<std::uint32_t> panels;
  bool fresh = false;
};

// Buffers reused across calls: packed weights (when none is supplied), the padded bias, x as bf16 words.
struct EncoderGemmScratch {
  PackedEncoder packed;
  std::vector<float> bias;
  std::vector<std::uint32_t> x_words;
};

// Whether encoder_preactivations packs W_enc for our kernel for this scalar type in this build.
template <class Scalar>
inline constexpr bool packs_encoder = SAE_AVX512_ENCODER_GEMM == 1 && std::is_same_v<Scalar, float>;

// Sizes `packed` for W_enc [f, d] in `precision` (allocates once; the contents are stale).
inline void shape_packed_encoder(PackedEncoder& packed, index_t f, index_t d, EncoderPrecision precision) {
  const index_t words = precision == EncoderPrecision::bf16 ? (d + 1) / 2 : d;
  packed.precision = precision;
  packed.latents = f;
  packed.dim = d;
  packed.words_padded = (words + 15) / 16 * 16;
  packed.panels.resize(static_cast<std::size_t>((f + kRowBlock - 1) / kRowBlock * packed.words_padded * kRowBlock));
  packed.fresh = false;
}

#if SAE_AVX512_ENCODER_GEMM
namespace detail {

constexpr index_t kPanelLatents = kRowBlock;  // 48: three 16-float vectors, one optimizer block
static_assert(kPanelLatents == 48, "the register tile is 8 rows x 3 vectors of 16 latents");
constexpr index_t kTileRows = 8;       // 8 x 3 accumulators + 3 weight vectors fit the 32 registers
constexpr index_t kDepthBlock = 1024;  // words per pass: an 8-row tile of x (32 KiB) stays in L1
constexpr index_t kRowsPerItem = 64;   // rows of x per work item; they share one panel slice in L2
constexpr index_t kPackWords = 256;    // words per packing work item

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

// GCC 12's unpack intrinsics start from a deliberately undefined vector, which -Wuninitialized
// reports once they are inlined here; the result does not depend on it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
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
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// panels[p][q][c] = word q of W row p * 48 + c (0 past the last row or word) for words
// [q_begin, q_end) of panel p: 16 x 16 blocks of words, read along rows, written along the panel.
template <bool Bf16>
void pack_panel_words(const Matrix<float>& w, index_t p, index_t q_begin, index_t q_end, PackedEncoder& out) {
  const index_t f = w.rows(), d = w.cols();
  std::uint32_t* panel = out.panels.data() + p * out.words_padded * kPanelLatents;
  for (index_t q0 = q_begin; q0 < q_end; q0 += 16)
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

// All panels, in parallel over (panel, word chunk).
template <bool Bf16>
void pack_panels(const Matrix<float>& w, PackedEncoder& out) {
  const index_t count = (w.rows() + kPanelLatents - 1) / kPanelLatents;
  const index_t chunks = (out.words_padded + kPackWords - 1) / kPackWords;
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t item = 0; item < count * chunks; ++item) {
    const index_t p = item / chunks, q_begin = item % chunks * kPackWords;
    pack_panel_words<Bf16>(w, p, q_begin, std::min(out.words_padded, q_begin + kPackWords), out);
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

// pre ([rows, f]) = x words . packed panels + bias (padded to whole panels).
template <bool Bf16, class X>
void multiply_panels(const X* x, index_t ldx, index_t rows, index_t words, const PackedEncoder& packed,
                     const float* bias, float* pre) {
  const index_t f = packed.latents, words_padded = packed.words_padded;
  const index_t panels = (f + kPanelLatents - 1) / kPanelLatents;
  const index_t row_blocks = (rows + kRowsPerItem - 1) / kRowsPerItem;
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t item = 0; item < panels * row_blocks; ++item) {
    const index_t p = item / row_blocks, rb = item % row_blocks;  // neighbouring items share a panel
    const __mmask16 mask[3] = {first_lanes(f - p * kPanelLatents), first_lanes(f - p * kPanelLatents - 16),
                               first_lanes(f - p * kPanelLatents - 32)};
    const std::uint32_t* panel = packed.panels.data() + p * words_padded * kPanelLatents;
    const index_t row_end = std::min(rows, (rb + 1) * kRowsPerItem);
    for (index_t q0 = 0; q0 < words; q0 += kDepthBlock) {
      const index_t depth = std::min(kDepthBlock, words - q0);
      for (index_t i = rb * kRowsPerItem; i < row_end; i += kTileRows) {
        float* out = pre + i * f + p * kPanelLatents;
        const bool first = q0 == 0;
        tile_rows<Bf16>(std::min(kTileRows, row_end - i), x + i * ldx + q0, ldx, panel + q0 * kPanelLatents, depth,
                        out, f, first ? bias + p * kPanelLatents : out, first ? 0 : f, mask);
      }
    }
  }
}

}  // namespace detail
#endif  // SAE_AVX512_ENCODER_GEMM

// Repacks rows [begin, end) of W_enc — whole panels: begin % kRowBlock == 0 — into `packed` (sized
// by shape_packed_encoder), on the calling thread: the optimizer's after-block hook. A no-op in a
// build without the AVX-512 kernel.
inline void pack_encoder_rows([[maybe_unused]] const Matrix<float>& w, [[maybe_unused]] index_t begin,
                              [[maybe_unused]] index_t end, [[maybe_unused]] PackedEncoder& packed) {
#if SAE_AVX512_ENCODER_GEMM
  for (index_t p = begin / detail::kPanelLatents; p * detail::kPanelLatents < end; ++p) {
    if (packed.precision == EncoderPrecision::bf16) {
#if SAE_BF16_ENCODER_GEMM
      detail::pack_panel_words<true>(w, p, 0, packed.words_padded, packed);
#endif
    } else {
      detail::pack_panel_words<false>(w, p, 0, packed.words_padded, packed);
    }
  }
#endif
}

// pre = x * w_enc^T + b_enc in the asked precision (bf16 needs bf16_encoder_available and float).
// `packed`, when fresh for this W_enc and precision, replaces packing W_enc into the scratch.
template <class Scalar>
void encoder_preactivations(cpu, const Matrix<Scalar>& x, const Matrix<Scalar>& w_enc, const Vector<Scalar>& b_enc,
                            Matrix<Scalar>& pre, EncoderPrecision precision, EncoderGemmScratch& scratch,
                            const PackedEncoder* packed = nullptr) {
  const bool bf16 = precision == EncoderPrecision::bf16;
  sae::detail::require(!bf16 || (bf16_encoder_available && std::is_same_v<Scalar, float>), "encoder_preactivations()",
                       "the bf16 encoder GEMM needs float and a build with AVX512-BF16 (-march=native on a CPU "
                       "that has it)");
  pre.resize(x.rows(), w_enc.rows());
#if SAE_AVX512_ENCODER_GEMM
  if constexpr (std::is_same_v<Scalar, float>) {
    const index_t f = w_enc.rows(), d = w_enc.cols();
    const index_t words = bf16 ? (d + 1) / 2 : d;
    const index_t panels = (f + detail::kPanelLatents - 1) / detail::kPanelLatents;
    scratch.bias.assign(static_cast<std::size_t>(panels * detail::kPanelLatents), 0.0f);
    std::copy(b_enc.data(), b_enc.data() + f, scratch.bias.begin());
    if (x.rows() == 0 || f == 0) return;
    const bool reuse = packed && packed->fresh && packed->precision == precision && packed->latents == f &&
                       packed->dim == d;
    if (!reuse) {
      shape_packed_encoder(scratch.packed, f, d, precision);
      if (bf16) detail::pack_panels<true>(w_enc, scratch.packed);
      else detail::pack_panels<false>(w_enc, scratch.packed);
    }
    const PackedEncoder& w = reuse ? *packed : scratch.packed;
    if (bf16) {
      detail::pack_rows_bf16(x, words, scratch.x_words);
      detail::multiply_panels<true>(scratch.x_words.data(), words, x.rows(), words, w, scratch.bias.data(), pre.data());
    } else {
      detail::multiply_panels<false>(x.data(), d, x.rows(), words, w, scratch.bias.data(), pre.data());
    }
    return;
  }
#endif
  (void)scratch;
  (void)packed;
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
