// AuxK's kernels on the CPU (model/auxk.hpp has the loss): the top-k over the dead latents' columns
// without gathering them, the residual's total variance in one pass, and the decode of the
// residual fused with its gradient.
#pragma once

#include <sae/config.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/types.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sae::ops {

// Up to this k_aux the top-k of the dead columns is taken in one pass over them, without gathering.
inline constexpr index_t kDirectAuxK = 32;

// Each row's top k of pre's `columns` (ascending): larger value first, ties to the lower latent,
// kept values through ReLU, as topk_rows orders them. At most kDirectAuxK.
template <class Scalar>
void topk_of_columns(cpu, const Matrix<Scalar>& pre, const std::vector<std::int32_t>& columns, index_t k, SparseCodes<Scalar>& out) {
  out.resize(pre.rows(), k, pre.cols());
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t i = 0; i < pre.rows(); ++i) {
    const Scalar* row = pre.row(i).data();
    Scalar best[kDirectAuxK];
    std::int32_t index[kDirectAuxK];
    // The first k columns sorted in, then each later one only when it beats the k-th best (a
    // later column never wins a tie).
    const index_t first = std::min<index_t>(k, static_cast<index_t>(columns.size()));
    for (index_t n = 0; n < first; ++n) {
      const std::int32_t c = columns[static_cast<std::size_t>(n)];
      index_t at = n;
      for (; at > 0 && row[c] > best[at - 1]; --at) best[at] = best[at - 1], index[at] = index[at - 1];
      best[at] = row[c], index[at] = c;
    }
    Scalar bar = best[k - 1];
    for (std::size_t q = static_cast<std::size_t>(first); q < columns.size(); ++q) {
      const std::int32_t c = columns[q];
      const Scalar v = row[c];
      if (!(v > bar)) continue;
      index_t at = k - 1;
      for (; at > 0 && v > best[at - 1]; --at) best[at] = best[at - 1], index[at] = index[at - 1];
      best[at] = v, index[at] = c;
      bar = best[k - 1];
    }
    std::int32_t* idx = out.row_indices(i);
    Scalar* val = out.row_values(i);
    for (index_t s = 0; s < k; ++s) idx[s] = index[s], val[s] = std::max(best[s], Scalar(0));
  }
}

// sum_i ||e_i - mean(e)||^2 for the residual e = x - x_hat, as sum ||e_i||^2 - B ||mean(e)||^2
// accumulated in double in one pass: column blocks in parallel, each column summed in row order and
// the blocks combined in order, so the result does not depend on the thread count.
template <class Scalar>
double residual_variance(cpu, const Matrix<Scalar>& x, const Matrix<Scalar>& x_hat) {
  constexpr index_t kBlock = 64;
  const index_t rows = x.rows(), cols = x.cols(), blocks = (cols + kBlock - 1) / kBlock;
  std::vector<double> squares(static_cast<std::size_t>(blocks)), squared_sums(static_cast<std::size_t>(blocks));
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t b = 0; b < blocks; ++b) {
    const index_t c0 = b * kBlock, len = std::min(kBlock, cols - c0);
    double sum[kBlock] = {}, square[kBlock] = {};
    for (index_t i = 0; i < rows; ++i) {
      const Scalar* xi = x.row(i).data() + c0;
      const Scalar* hi = x_hat.row(i).data() + c0;
      for (index_t c = 0; c < len; ++c) {
        const auto v = static_cast<double>(xi[c] - hi[c]);
        sum[c] += v, square[c] += v * v;
      }
    }
    double sq = 0, ss = 0;
    for (index_t c = 0; c < len; ++c) sq += square[c], ss += sum[c] * sum[c];
    squares[static_cast<std::size_t>(b)] = sq, squared_sums[static_cast<std::size_t>(b)] = ss;
  }
  double sq = 0, ss = 0;
  for (index_t b = 0; b < blocks; ++b) sq += squares[static_cast<std::size_t>(b)], ss += squared_sums[static_cast<std::size_t>(b)];
  return rows == 0 ? 0.0 : std::max(0.0, sq - ss / static_cast<double>(rows));
}

// AuxK's decode of the residual without storing it: per row, r = sum_s z_s w_dec[j_s] - (x - x_hat)
// (e_hat - e), g = scale * r and dcode[s] = g . w_dec[j_s]. Returns sum ||r||^2, summed in double
// in row order.
template <class Scalar>
double decode_residual(cpu, const SparseCodes<Scalar>& codes, const Matrix<Scalar>& w_dec, const Matrix<Scalar>& x,
                       const Matrix<Scalar>& x_hat, Scalar scale, Matrix<Scalar>& g, std::vector<Scalar>& dcode) {
  const index_t rows = codes.rows, k = codes.k;
  g.resize(rows, x.cols());
  dcode.assign(static_cast<std::size_t>(rows * k), Scalar(0));
  std::vector<double> row_sse(static_cast<std::size_t>(rows));
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t i = 0; i < rows; ++i) {
    auto gi = g.row(i);
    gi = x_hat.row(i) - x.row(i);
    const std::int32_t* idx = codes.row_indices(i);
    const Scalar* val = codes.row_values(i);
    for (index_t s = 0; s < k; ++s)
      if (val[s] != Scalar(0)) gi.noalias() += val[s] * w_dec.row(idx[s]);
    row_sse[static_cast<std::size_t>(i)] = static_cast<double>(gi.squaredNorm());
    gi *= scale;
    for (index_t s = 0; s < k; ++s)
      if (val[s] > Scalar(0)) dcode[static_cast<std::size_t>(i * k + s)] = gi.dot(w_dec.row(idx[s]));
  }
  double sse = 0;
  for (const double r : row_sse) sse += r;
  return sse;
}

}  // namespace sae::ops
