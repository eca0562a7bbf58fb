// Row-wise exact top-k on the CPU. Order: larger key first, ties to the lower latent index, the
// same total order on every backend. Kept values go through ReLU.
#pragma once

#include <sae/config.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/selection.hpp>

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

// Exact top-k of a row through a filter. Element j belongs to group j mod G; let T be the k-th
// largest group maximum. At least k keys are >= T (one per group whose maximum is >= T), so the
// k-th largest key is >= T and every key below T loses: the top k are among the keys >= T, usually
// little more than k of them, which are gathered for an exact selection. Plain loops over
// contiguous groups and fixed 16-element chunks, which compilers vectorise for any SIMD width.
// Returns false when fewer than k keys pass (only possible with NaN keys); the caller then falls back.
template <bool ByMagnitude, class Scalar>
bool topk_row_filtered(const Scalar* row, index_t f, index_t k, index_t groups, std::vector<Scalar>& maxima,
                       std::vector<Candidate<Scalar>>& candidates) {
  constexpr index_t kChunk = 16;
  const auto key = [](Scalar v) { return ByMagnitude ? std::abs(v) : v; };
  maxima.assign(static_cast<std::size_t>(groups), -std::numeric_limits<Scalar>::infinity());
  Scalar* m = maxima.data();
  for (index_t j0 = 0; j0 < f; j0 += groups) {
    const Scalar* part = row + j0;
    const index_t n = std::min(groups, f - j0);
    for (index_t g = 0; g < n; ++g) m[g] = key(part[g]) > m[g] ? key(part[g]) : m[g];
  }
  std::nth_element(maxima.begin(), maxima.begin() + (k - 1), maxima.end(), std::greater<Scalar>());
  const Scalar threshold = maxima[static_cast<std::size_t>(k - 1)];
  if (candidates.size() < static_cast<std::size_t>(f)) candidates.resize(static_cast<std::size_t>(f));  // grows once
  Candidate<Scalar>* out = candidates.data();
  index_t n = 0;
  const auto gather = [&](index_t begin, index_t end) {
    for (index_t j = begin; j < end; ++j) {  // branch-free: write always, advance on a pass
      out[n] = {key(row[j]), static_cast<std::int32_t>(j)};
      n += key(row[j]) >= threshold;
    }
  };
  index_t j = 0;
  for (; j + kChunk <= f; j += kChunk) {
    bool any = false;
    for (index_t t = 0; t < kChunk; ++t) any |= key(row[j + t]) >= threshold;
    if (any) gather(j, j + kChunk);
  }
  gather(j, f);
  if (n < k) return false;
  std::nth_element(out, out + (k - 1), out + n, ranks_before<Scalar>);  // the first n are the passers
  std::sort(out, out + k, ranks_before<Scalar>);
  return true;
}
}  // namespace detail

template <class Scalar>
void topk_rows(cpu, const Matrix<Scalar>& pre, index_t k, Selection selection, SparseCodes<Scalar>& out) {
  const index_t rows = pre.rows(), f = pre.cols();
  sae::detail::require(k >= 1 && k <= f, "topk_rows()",
                       "k must be in [1, " + std::to_string(f) + "], got " + std::to_string(k));
  out.resize(rows, k, f);
  const bool by_magnitude = selection == Selection::magnitude;
  // A bounded heap wins when k is small against F; otherwise partial sorting does. The group-maximum
  // filter (above) replaces both while groups keep 2+ elements.
  const bool use_heap = k * 8 < f;
  const index_t groups = std::max<index_t>(64, (2 * k + 15) / 16 * 16);
  const bool filtered = 2 * groups <= f;
#if SAE_USE_OPENMP
#pragma omp parallel
#endif
  {
    std::vector<detail::Candidate<Scalar>> buf(static_cast<std::size_t>(use_heap ? k : f)), candidates;
    std::vector<Scalar> maxima;
    const auto worse_on_top = [](const auto& a, const auto& b) { return detail::ranks_before(a, b); };
#if SAE_USE_OPENMP
#pragma omp for schedule(static)
#endif
    for (index_t i = 0; i < rows; ++i) {
      const Scalar* row = pre.row(i).data();
      if (filtered && (by_magnitude ? detail::topk_row_filtered<true>(row, f, k, groups, maxima, candidates)
                                    : detail::topk_row_filtered<false>(row, f, k, groups, maxima, candidates))) {
        std::int32_t* idx = out.row_indices(i);
        Scalar* val = out.row_values(i);
        for (index_t s = 0; s < k; ++s) {
          idx[s] = candidates[static_cast<std::size_t>(s)].index;
          val[s] = std::max(row[idx[s]], Scalar(0));
        }
        continue;
      }
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
