// Selections whose per-sample count varies, on the CPU: BatchTopK (the k x B largest activations of
// a whole batch, Bussmann et al. 2024) and the per-sample threshold that replaces it at inference.
// Codes come out padded (see SparseCodes) with each sample's latents in ascending index order, so
// the nested groups of a Matryoshka dictionary are contiguous runs.
#pragma once

#include <sae/config.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/core/sparse_codes.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

namespace sae::ops {

namespace detail {
// Writes the entries keep(i, j) of each row of pre into padded codes, ascending latent order.
template <class Scalar, class Keep>
void gather_kept(const Matrix<Scalar>& pre, Keep&& keep, SparseCodes<Scalar>& out) {
  const index_t rows = pre.rows(), f = pre.cols();
  std::vector<index_t> count(static_cast<std::size_t>(rows), 0);
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < f; ++j) count[static_cast<std::size_t>(i)] += keep(i, j) ? 1 : 0;
  const index_t width = std::max<index_t>(1, rows ? *std::max_element(count.begin(), count.end()) : 0);
  out.resize(rows, width, f);
  std::fill(out.indices.begin(), out.indices.end(), 0);
  std::fill(out.values.begin(), out.values.end(), Scalar(0));
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t i = 0; i < rows; ++i) {
    std::int32_t* idx = out.row_indices(i);
    Scalar* val = out.row_values(i);
    index_t s = 0;
    for (index_t j = 0; j < f; ++j)
      if (keep(i, j)) idx[s] = static_cast<std::int32_t>(j), val[s++] = pre(i, j);
  }
}
}  // namespace detail

// Keeps the `total` largest positive entries of pre ([B, F]) over the whole batch (fewer when
// fewer are positive); ties at the cut go to the earlier (row, latent) in row-major order.
// Returns the smallest kept value (0 when nothing is positive), the statistic the inference
// threshold tracks.
//
// The cut is found among candidates: the entries at or above a guess read off every 16th entry
// (at twice the rank that would put the cut there). When more than `total` entries pass, the cut
// is at or above the guess, so every kept entry is a candidate and the selection is exact;
// otherwise every positive entry is a candidate.
template <class Scalar>
Scalar batch_topk(cpu, const Matrix<Scalar>& pre, index_t total, SparseCodes<Scalar>& out) {
  sae::detail::require(total >= 1, "batch_topk()", "the number of kept activations must be >= 1, got " +
                                                       std::to_string(total));
  constexpr index_t kStride = 16;
  const index_t n = pre.size();
  const Scalar* v = pre.data();
  // One comparison per entry, written branch-free (about half the entries are positive, so a
  // branch on the sign would be mispredicted half the time): kept entries are >= `floor`.
  Scalar floor = std::numeric_limits<Scalar>::denorm_min();  // v >= floor: v > 0
  std::vector<Scalar> candidates(static_cast<std::size_t>(n / kStride + 1));
  if (const index_t rank = 2 * total / kStride; rank >= 1) {
    index_t m = 0;
    for (index_t e = 0; e < n; e += kStride) candidates[static_cast<std::size_t>(m)] = v[e], m += v[e] >= floor;
    if (m > rank) {
      std::nth_element(candidates.begin(), candidates.begin() + (rank - 1), candidates.begin() + m, std::greater<Scalar>());
      floor = candidates[static_cast<std::size_t>(rank - 1)];
    }
  }
  const auto count_passing = [&] {
    index_t c = 0;
    for (index_t e = 0; e < n; ++e) c += v[e] >= floor;
    return c;
  };
  index_t passing = count_passing();
  if (passing <= total && floor > std::numeric_limits<Scalar>::denorm_min()) {  // the guess may be above the cut
    floor = std::numeric_limits<Scalar>::denorm_min();
    passing = count_passing();
  }
  candidates.resize(static_cast<std::size_t>(passing + 1));
  for (index_t e = 0, m = 0; e < n; ++e) candidates[static_cast<std::size_t>(m)] = v[e], m += v[e] >= floor;
  candidates.resize(static_cast<std::size_t>(passing));
  if (passing <= total) {  // every positive entry is kept
    detail::gather_kept(pre, [&pre](index_t i, index_t j) { return pre(i, j) > Scalar(0); }, out);
    return candidates.empty() ? Scalar(0) : *std::min_element(candidates.begin(), candidates.end());
  }
  const auto cut = candidates.begin() + (total - 1);
  std::nth_element(candidates.begin(), cut, candidates.end(), std::greater<Scalar>());
  const Scalar t = *cut;
  const auto above = static_cast<index_t>(std::count_if(candidates.begin(), cut, [t](Scalar x) { return x > t; }));
  const auto at_cut = static_cast<index_t>(std::count(candidates.begin(), candidates.end(), t));
  if (above + at_cut == total) {  // no tie at the cut to break
    detail::gather_kept(pre, [&pre, t](index_t i, index_t j) { return pre(i, j) >= t; }, out);
    return t;
  }
  // Which entries equal to t are kept: the first (total - above) in row-major order.
  std::vector<std::uint8_t> tie_kept(static_cast<std::size_t>(n), 0);
  for (index_t e = 0, quota = total - above; e < n && quota > 0; ++e)
    if (v[e] == t) tie_kept[static_cast<std::size_t>(e)] = 1, --quota;
  const index_t f = pre.cols();
  detail::gather_kept(
      pre, [&](index_t i, index_t j) { return pre(i, j) > t || tie_kept[static_cast<std::size_t>(i * f + j)] != 0; },
      out);
  return t;
}

// Per-sample selection at inference: every latent whose ReLU activation exceeds `threshold`.
template <class Scalar>
void threshold_select(cpu, const Matrix<Scalar>& pre, Scalar threshold, SparseCodes<Scalar>& out) {
  const Scalar cut = std::max(threshold, Scalar(0));
  detail::gather_kept(pre, [&pre, cut](index_t i, index_t j) { return pre(i, j) > cut; }, out);
}

// JumpReLU's selection: every latent j whose pre-activation exceeds its own threshold theta[j].
template <class Scalar>
void threshold_select(cpu, const Matrix<Scalar>& pre, const Vector<Scalar>& theta, SparseCodes<Scalar>& out) {
  detail::gather_kept(pre, [&pre, &theta](index_t i, index_t j) { return pre(i, j) > theta[j]; }, out);
}

}  // namespace sae::ops
