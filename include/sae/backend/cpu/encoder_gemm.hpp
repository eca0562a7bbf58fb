// The encoder GEMM on the CPU, pre = x W_enc^T + b_enc ([B, D] x [D, F] -> [B, F]), the one dense
// product of a training step.
//
// For float, our own kernel runs on every CPU. It is written once on Eigen's packet layer (the
// widest SIMD vector the build targets: 16 floats with AVX-512, 8 with AVX/AVX2, 4 with SSE2 or
// NEON), so each ISA gets the same code at its own width. W_enc is packed into panels of 48
// latents; an M-row x V-vector tile of `pre` accumulates in registers while one x word per row is
// broadcast (8 x 3 vectors where there are 32 vector registers, 6 x 2 or 3 x 4 with 16). A "word"
// is one float (fp32), or a pair of neighbouring inputs rounded to bfloat16 (bf16, AVX512-BF16
// only: vdpbf16ps multiplies both pairs into a float accumulator, twice the FLOPs per instruction
// of a float FMA). Each element of `pre` is summed by one thread in a fixed order, so results are
// bitwise the same at any thread count on a given build. The packed W_enc comes from the caller
// when it is fresh (the TopK model's, repacked inside Adam's pass) or is packed here, one pass over
// W_enc. For double, Eigen's GEMM runs instead (in fp32 arithmetic only: bf16 needs float).
#pragma once

#include <sae/config.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/bfloat16.hpp>
#include <sae/core/error.hpp>
#include <sae/core/packet.hpp>
#include <sae/core/types.hpp>
#include <sae/core/encoder_precision.hpp>
#include <sae/core/row_hooks.hpp>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512BF16__) && defined(EIGEN_VECTORIZE_AVX512)
#include <immintrin.h>
#define SAE_BF16_ENCODER_GEMM 1
#else
#define SAE_BF16_ENCODER_GEMM 0
#endif

namespace sae {

// Whether EncoderPrecision::bf16 can run in this build: it needs AVX512-BF16 at compile time
// (e.g. -march=native on a CPU that has it; SAE_NATIVE_ARCH does this for our programs).
inline constexpr bool bf16_encoder_available = SAE_BF16_ENCODER_GEMM == 1;

namespace ops {

// W_enc in the kernel's panel layout for one precision: panel p holds word q of latent p * 48 + c
// at [q][c] (bf16 words are bit patterns). `fresh` says it matches W_enc as it is now: the TopK
// model keeps one that the optimizer repacks block by block right after updating the rows
// (core/row_hooks.hpp), which spares the GEMM its own pass over W_enc.
struct PackedEncoder {
  EncoderPrecision precision = EncoderPrecision::fp32;
  index_t latents = 0, dim = 0, words_padded = 0;
  std::vector<float> panels;
  bool fresh = false;
};

// Buffers reused across calls: packed weights (when none is supplied), the padded bias, x as bf16 words.
struct EncoderGemmScratch {
  PackedEncoder packed;
  std::vector<float> bias;
  std::vector<std::uint32_t> x_words;
};

// Whether encoder_preactivations packs W_enc for our kernel for this scalar type.
template <class Scalar>
inline constexpr bool packs_encoder = std::is_same_v<Scalar, float>;

namespace detail {

// (PacketBlock<Packet, ...> draws the same GCC note as in core/packet.hpp.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
#endif
using Packet = simd::Packet<float>;
constexpr index_t kLanes = simd::kLanes<float>;  // floats per vector
constexpr index_t kPanelLatents = kRowBlock;  // 48: one optimizer block
#if defined(EIGEN_VECTORIZE_AVX512) || defined(__aarch64__)
constexpr int kVectorRegisters = 32;
#else
constexpr int kVectorRegisters = 16;
#endif
#if defined(EIGEN_VECTORIZE_FMA)
constexpr bool kFusedMultiplyAdd = true;
#else
constexpr bool kFusedMultiplyAdd = false;
#endif
// The register tile: kTileRows x kTileVectors accumulators plus the tile's weight vectors and one
// broadcast fit the vector registers. Measured (benchmarks/README.md): 8 x 3 with 32 of them; with
// 16, 6 x 2 where FMA exists (3% faster than 4 x 3 on AVX2), 3 x 4 on SSE2, whose separate multiply
// and add leave fewer rows in flight (11% faster than 6 x 2). A panel is a whole number of tiles.
constexpr bool kShortTile = kVectorRegisters == 16 && !kFusedMultiplyAdd && kLanes == 4;
constexpr index_t kTileRows = kVectorRegisters == 32 ? 8 : kShortTile ? 3 : 6;
constexpr index_t kTileVectors = kVectorRegisters == 32 ? 3 : kShortTile ? 4 : 2;
constexpr index_t kTileLatents = kTileVectors * kLanes;
static_assert(kPanelLatents % kTileLatents == 0, "a panel is a whole number of register tiles");
static_assert(kPanelLatents % kLanes == 0, "a panel row is a whole number of vectors");
// Words per pass: a tile's rows of x stay in L1 (32 KiB at 8 rows x 1024); with 16 registers the
// shorter pass also keeps a tile's panel slice there (measured: 256 beats 1024 by ~3% on AVX2,
// 1024 beats 256 by ~5% on AVX-512).
constexpr index_t kDepthBlock = kVectorRegisters == 32 ? 1024 : 256;
constexpr index_t kRowsPerItem = 64;   // rows of x per work item; they share one panel slice in L2
constexpr index_t kPackWords = 256;    // words per packing work item
static_assert(kPackWords % kLanes == 0 && kDepthBlock % kLanes == 0, "blocks are whole vectors");

inline Packet load(const float* p) { return Eigen::internal::ploadu<Packet>(p); }
inline void store(float* p, Packet v) { Eigen::internal::pstoreu(p, v); }

#if SAE_BF16_ENCODER_GEMM
// Mask of the first n of 16 lanes (none for n <= 0, all for n >= 16): the valid lanes of a row's tail.
inline __mmask16 first_lanes(index_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1u);
}
#endif

// kLanes words of a float row starting at word q0; words past the row's end are 0.
template <bool Bf16>
inline Packet row_words(const float* row, index_t d, index_t q0) {
  if constexpr (Bf16) {
#if SAE_BF16_ENCODER_GEMM
    const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(d - 2 * q0), row + std::min(2 * q0, d));
    const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(d - 2 * q0 - 16), row + std::min(2 * q0 + 16, d));
    return _mm512_castsi512_ps((__m512i)_mm512_cvtne2ps_pbh(hi, lo));  // bf16 of row[2 q0 .. 2 q0 + 31], in order
#else
    return Eigen::internal::pset1<Packet>(0.0f);
#endif
  } else {
    if (q0 + kLanes <= d) return load(row + q0);
    float tail[kLanes] = {};
    for (index_t t = q0; t < d; ++t) tail[t - q0] = row[t];
    return load(tail);
  }
}

// panels[p][q][c] = word q of W row p * 48 + c (0 past the last row or word) for words
// [q_begin, q_end) of panel p: kLanes x kLanes blocks of words, read along rows, written along the panel.
template <bool Bf16>
void pack_panel_words(const Matrix<float>& w, index_t p, index_t q_begin, index_t q_end, PackedEncoder& out) {
  const index_t f = w.rows(), d = w.cols();
  float* panel = out.panels.data() + p * out.words_padded * kPanelLatents;
  for (index_t q0 = q_begin; q0 < q_end; q0 += kLanes)
    for (index_t c0 = 0; c0 < kPanelLatents; c0 += kLanes) {
      Eigen::internal::PacketBlock<Packet, kLanes> block;
      for (index_t c = 0; c < kLanes; ++c) {
        const index_t j = p * kPanelLatents + c0 + c;
        block.packet[c] = j < f ? row_words<Bf16>(w.row(j).data(), d, q0) : Eigen::internal::pset1<Packet>(0.0f);
      }
      if constexpr (kLanes > 1) Eigen::internal::ptranspose(block);
      for (index_t t = 0; t < kLanes; ++t) store(panel + (q0 + t) * kPanelLatents + c0, block.packet[t]);
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

#if SAE_BF16_ENCODER_GEMM
// x rows as bf16 words, `words` per row.
inline void pack_rows_bf16(const Matrix<float>& x, index_t words, std::vector<std::uint32_t>& out) {
  out.resize(static_cast<std::size_t>(x.rows() * words));
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t i = 0; i < x.rows(); ++i)
    for (index_t q0 = 0; q0 < words; q0 += 16)
      _mm512_mask_storeu_epi32(out.data() + i * words + q0, first_lanes(words - q0),
                               _mm512_castps_si512(row_words<true>(x.row(i).data(), x.cols(), q0)));
}

// acc += x word . w: a float FMA, or two bf16 products per lane into a float sum.
inline Packet multiply_add(std::uint32_t x, Packet w, Packet acc) {
  return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_set1_epi32(static_cast<int>(x)), (__m512bh)_mm512_castps_si512(w));
}
#endif
inline Packet multiply_add(float x, Packet w, Packet acc) {
  return Eigen::internal::pmadd(Eigen::internal::pset1<Packet>(x), w, acc);
}

// out[r, 0:M*V lanes] = init[r] + sum over `depth` words of x[r] . panel, for M rows.
template <int M, class X>
inline void tile(const X* x, index_t ldx, const float* panel, index_t depth, float* out, index_t ldo,
                 const float* init, index_t init_ld) {
  constexpr int V = static_cast<int>(kTileVectors);
  Packet acc[M][V];
  for (int r = 0; r < M; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = load(init + r * init_ld + kLanes * v);
  for (index_t q = 0; q < depth; ++q) {
    const float* wq = panel + q * kPanelLatents;
    Packet w[V];
    for (int v = 0; v < V; ++v) w[v] = load(wq + kLanes * v);
    for (int r = 0; r < M; ++r)
      for (int v = 0; v < V; ++v) acc[r][v] = multiply_add(x[r * ldx + q], w[v], acc[r][v]);
  }
  for (int r = 0; r < M; ++r)
    for (int v = 0; v < V; ++v) store(out + r * ldo + kLanes * v, acc[r][v]);
}

template <int M = kTileRows, class X>
void tile_rows(index_t m, const X* x, index_t ldx, const float* panel, index_t depth, float* out, index_t ldo,
               const float* init, index_t init_ld) {
  if constexpr (M > 1) {
    if (m < M) return tile_rows<M - 1>(m, x, ldx, panel, depth, out, ldo, init, init_ld);
  }
  tile<M>(x, ldx, panel, depth, out, ldo, init, init_ld);
}

// pre ([rows, f]) = x words . packed panels + bias (padded to whole panels). The last panel's
// valid latents go through a local buffer, so tiles never write past a row of `pre`.
template <class X>
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
    const index_t valid = std::min(kPanelLatents, f - p * kPanelLatents);
    const float* panel = packed.panels.data() + p * words_padded * kPanelLatents;
    const index_t row_begin = rb * kRowsPerItem, row_end = std::min(rows, row_begin + kRowsPerItem);
    float partial[kRowsPerItem * kPanelLatents];  // 12 KiB on the thread's stack, used for the last panel only
    float* const out0 = valid < kPanelLatents ? partial : pre + row_begin * f + p * kPanelLatents;
    const index_t ldo = valid < kPanelLatents ? kPanelLatents : f;
    for (index_t q0 = 0; q0 < words; q0 += kDepthBlock) {
      const index_t depth = std::min(kDepthBlock, words - q0);
      for (index_t i = row_begin; i < row_end; i += kTileRows)
        for (index_t c = 0; c < kPanelLatents; c += kTileLatents) {
          float* out = out0 + (i - row_begin) * ldo + c;
          const bool first = q0 == 0;
          tile_rows(std::min(kTileRows, row_end - i), x + i * ldx + q0, ldx, panel + q0 * kPanelLatents + c, depth,
                    out, ldo, first ? bias + p * kPanelLatents + c : out, first ? 0 : ldo);
        }
    }
    if (valid < kPanelLatents)
      for (index_t i = row_begin; i < row_end; ++i)
        std::copy_n(out0 + (i - row_begin) * ldo, valid, pre + i * f + p * kPanelLatents);
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
}  // namespace detail

// Sizes `packed` for W_enc [f, d] in `precision` (allocates once; the contents are stale).
inline void shape_packed_encoder(PackedEncoder& packed, index_t f, index_t d, EncoderPrecision precision) {
  const index_t words = precision == EncoderPrecision::bf16 ? (d + 1) / 2 : d;
  packed.precision = precision;
  packed.latents = f;
  packed.dim = d;
  packed.words_padded = (words + detail::kLanes - 1) / detail::kLanes * detail::kLanes;
  packed.panels.resize(static_cast<std::size_t>((f + kRowBlock - 1) / kRowBlock * packed.words_padded * kRowBlock));
  packed.fresh = false;
}

// Repacks rows [begin, end) of W_enc — whole panels: begin % kRowBlock == 0 — into `packed` (sized
// by shape_packed_encoder), on the calling thread: the optimizer's after-block hook.
inline void pack_encoder_rows(const Matrix<float>& w, index_t begin, index_t end, PackedEncoder& packed) {
  for (index_t p = begin / detail::kPanelLatents; p * detail::kPanelLatents < end; ++p) {
    if (packed.precision == EncoderPrecision::bf16) detail::pack_panel_words<true>(w, p, 0, packed.words_padded, packed);
    else detail::pack_panel_words<false>(w, p, 0, packed.words_padded, packed);
  }
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
  if constexpr (packs_encoder<Scalar>) {
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
#if SAE_BF16_ENCODER_GEMM
      detail::pack_rows_bf16(x, words, scratch.x_words);
      detail::multiply_panels(scratch.x_words.data(), words, x.rows(), words, w, scratch.bias.data(), pre.data());
#endif
    } else {
      detail::multiply_panels(x.data(), d, x.rows(), words, w, scratch.bias.data(), pre.data());
    }
  } else {
    (void)scratch;
    (void)packed;
    pre.noalias() = x * w_enc.transpose();
    pre.rowwise() += b_enc.transpose();
  }
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
