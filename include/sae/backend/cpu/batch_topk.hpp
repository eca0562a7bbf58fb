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
template <class Scalar>
Scalar batch_topk(cpu, const Matrix<Scalar>& pre, index_t total, SparseCodes<Scalar>& out) {
  sae::detail::require(total >= 1, "batch_topk()", "the number of kept activations must be >= 1, got " +
                                                       std::to_string(total));
  const index_t n = pre.size();
  const Scalar* v = pre.data();
  std::vector<Scalar> positive;
  positive.reserve(static_cast<std::size_t>(n));
  for (index_t e = 0; e < n; ++e)
    if (v[e] > Scalar(0)) positive.push_back(v[e]);
  if (static_cast<index_t>(positive.size()) <= total) {
    detail::gather_kept(pre, [&pre](index_t i, index_t j) { return pre(i, j) > Scalar(0); }, out);
    return positive.empty() ? Scalar(0) : *std::min_element(positive.begin(), positive.end());
  }
  const auto cut = positive.begin() + (total - 1);
  std::nth_element(positive.begin(), cut, positive.end(), std::greater<Scalar>());
  const Scalar t = *cut;
  const auto above = static_cast<index_t>(std::count_if(positive.begin(), cut, [t](Scalar x) { return x > t; }));
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

}  // namespace sae::ops
