// Row-wise exact top-k on the CPU. Order: larger key first, ties to the lower latent index, the
// same total order on every backend. Kept values go through ReLU.
#pragma once

#include <sae/backend/cpu/avx512.hpp>
#include <sae/config.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/model/sparse_codes.hpp>
#include <sae/model/selection.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <type_traits>
#include <vector>

namespace sae::ops {

namespace detail {
template <class Scalar>
struct Candidate {
  Scalar key;
  std::int32_t index;
};
// True when a ranks before b.
template <class Scalar>
inline bool ranks_before(const Candidate<Scalar>& a, const Candidate<Scalar>& b) {
  return a.key > b.key || (a.key == b.key && a.index < b.index);
}

#if defined(__AVX512F__)
// Exact top-k of a float row through a filter. Element j belongs to group j mod G; let T be the
// k-th largest group maximum. At least k keys are >= T (one per group whose maximum is >= T), so
// the k-th largest key is >= T and every key below T loses: the top k are among the keys >= T,
// usually little more than k of them, which AVX-512 compresses out for an exact selection. Returns
// false when fewer than k keys pass (only possible with NaN keys); the caller then falls back.
inline bool topk_row_filtered(const float* row, index_t f, index_t k, bool by_magnitude, index_t groups,
                              std::vector<float>& maxima, std::vector<Candidate<float>>& candidates,
                              std::vector<float>& keys, std::vector<std::int32_t>& indices) {
  const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const auto load_keys = [&](index_t j) {
    const __mmask16 mask = first_lanes(f - j);
    const __m512 v = _mm512_mask_loadu_ps(lowest, mask, row + j);
    return by_magnitude ? _mm512_mask_mov_ps(lowest, mask, _mm512_abs_ps(v)) : v;
  };
  maxima.resize(static_cast<std::size_t>(groups));
  for (index_t g = 0; g < groups; g += 16) {
    __m512 m = lowest;
    for (index_t j = g; j < f; j += groups) m = _mm512_max_ps(m, load_keys(j));
    _mm512_storeu_ps(maxima.data() + g, m);
  }
  std::nth_element(maxima.begin(), maxima.begin() + (k - 1), maxima.end(), std::greater<float>());
  const __m512 threshold = _mm512_set1_ps(maxima[static_cast<std::size_t>(k - 1)]);
  keys.resize(static_cast<std::size_t>(f + 16));
  indices.resize(static_cast<std::size_t>(f + 16));
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  index_t n = 0;
  for (index_t j = 0; j < f; j += 16) {
    const __m512 v = load_keys(j);
    const __mmask16 pass = _mm512_cmp_ps_mask(v, threshold, _CMP_GE_OQ);
    _mm512_mask_compressstoreu_ps(keys.data() + n, pass, v);
    _mm512_mask_compressstoreu_epi32(indices.data() + n, pass,
                                     _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(j))));
    n += __builtin_popcount(pass);
  }
  if (n < k) return false;
  candidates.resize(static_cast<std::size_t>(n));
  for (index_t c = 0; c < n; ++c) candidates[static_cast<std::size_t>(c)] = {keys[static_cast<std::size_t>(c)], indices[static_cast<std::size_t>(c)]};
  std::nth_element(candidates.begin(), candidates.begin() + (k - 1), candidates.end(), ranks_before<float>);
  std::sort(candidates.begin(), candidates.begin() + k, ranks_before<float>);
  return true;
}
#endif
}  // namespace detail

template <class Scalar>
void topk_rows(cpu, const Matrix<Scalar>& pre, index_t k, Selection selection, SparseCodes<Scalar>& out) {
  const index_t rows = pre.rows(), f = pre.cols();
  sae::detail::require(k >= 1 && k <= f, "topk_rows()",
                       "k must be in [1, " + std::to_string(f) + "], got " + std::to_string(k));
  out.resize(rows, k, f);
  const bool by_magnitude = selection == Selection::magnitude;
  // A bounded heap wins when k is small against F; otherwise partial sorting does. With AVX-512
  // and float, the group-maximum filter (above) replaces both while groups keep 2+ elements.
  const bool use_heap = k * 8 < f;
  const index_t groups = std::max<index_t>(64, (2 * k + 15) / 16 * 16);
  [[maybe_unused]] const bool filtered = std::is_same_v<Scalar, float> && 2 * groups <= f;
#if SAE_USE_OPENMP
#pragma omp parallel
#endif
  {
    std::vector<detail::Candidate<Scalar>> buf(static_cast<std::size_t>(use_heap ? k : f));
    const auto worse_on_top = [](const auto& a, const auto& b) { return detail::ranks_before(a, b); };
#if defined(__AVX512F__)
    std::vector<float> maxima, keys;
    std::vector<std::int32_t> indices;
    std::vector<detail::Candidate<float>> candidates;
#endif
#if SAE_USE_OPENMP
#pragma omp for schedule(static)
#endif
    for (index_t i = 0; i < rows; ++i) {
      const Scalar* row = pre.row(i).data();
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<Scalar, float>) {
        if (filtered && detail::topk_row_filtered(row, f, k, by_magnitude, groups, maxima, candidates, keys, indices)) {
          std::int32_t* idx = out.row_indices(i);
          Scalar* val = out.row_values(i);
          for (index_t s = 0; s < k; ++s) {
            idx[s] = candidates[static_cast<std::size_t>(s)].index;
            val[s] = std::max(row[idx[s]], Scalar(0));
          }
          continue;
        }
      }
#endif
      const auto key = [&](index_t j) { return by_magnitude ? std::abs(row[j]) : row[j]; };
      if (use_heap) {
        for (index_t j = 0; j < k; ++j) buf[static_cast<std::size_t>(j)] = {key(j), static_cast<std::int32_t>(j)};
        std::make_heap(buf.begin(), buf.end(), worse_on_top);  // front = worst kept
        for (index_t j = k; j < f; ++j) {
          const Scalar v = key(j);
          // A later index never wins a tie, so strict > keeps the lower index.
          if (v > buf.front().key) {
            std::pop_heap(buf.begin(), buf.end(), worse_on_top);
            buf.back() = {v, static_cast<std::int32_t>(j)};
            std::push_heap(buf.begin(), buf.end(), worse_on_top);
          }
        }
        std::sort_heap(buf.begin(), buf.end(), worse_on_top);
      } else {
        for (index_t j = 0; j < f; ++j) buf[static_cast<std::size_t>(j)] = {key(j), static_cast<std::int32_t>(j)};
        std::nth_element(buf.begin(), buf.begin() + (k - 1), buf.end(), worse_on_top);
        std::sort(buf.begin(), buf.begin() + k, worse_on_top);
      }
      std::int32_t* idx = out.row_indices(i);
      Scalar* val = out.row_values(i);
      for (index_t s = 0; s < k; ++s) {
        idx[s] = buf[static_cast<std::size_t>(s)].index;
        val[s] = std::max(row[idx[s]], Scalar(0));
      }
    }
  }
}

}  // namespace sae::ops
