// The Matryoshka loss's forward on the CPU (model/matryoshka_autoencoder.hpp has the loss): each
// sample's residual after every nested prefix of the dictionary, in one pass over its codes.
#pragma once

#include <sae/config.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/types.hpp>

#include <cstdint>
#include <vector>

namespace sae::ops {

// prefix[m - 1].row(i) = x_hat_i of latents below prefix_end[m - 1] (plus b_dec when given) - x_i,
// for m = 1 .. prefix_end.size(). Codes hold each sample's latents in ascending order, padded with
// zeros (batch_topk's layout), so each prefix continues the previous one's sum.
template <class Scalar>
void prefix_residuals(cpu, const SparseCodes<Scalar>& codes, const Matrix<Scalar>& x, const Matrix<Scalar>& w_dec,
                      const Vector<Scalar>* b_dec, const std::vector<index_t>& prefix_end, std::vector<Matrix<Scalar>>& prefix) {
  const index_t rows = x.rows(), d = x.cols(), groups = static_cast<index_t>(prefix_end.size());
  prefix.resize(static_cast<std::size_t>(groups));
  for (auto& r : prefix) r.resize(rows, d);
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t i = 0; i < rows; ++i) {
    Eigen::Matrix<Scalar, 1, Eigen::Dynamic> acc = -x.row(i);
    if (b_dec) acc += b_dec->transpose();
    const std::int32_t* idx = codes.row_indices(i);
    const Scalar* val = codes.row_values(i);
    index_t s = 0;
    for (index_t m = 1; m <= groups; ++m) {
      const index_t end = prefix_end[static_cast<std::size_t>(m - 1)];
      for (; s < codes.k && val[s] != Scalar(0) && idx[s] < end; ++s) acc.noalias() += val[s] * w_dec.row(idx[s]);
      prefix[static_cast<std::size_t>(m - 1)].row(i) = acc;
    }
  }
}

}  // namespace sae::ops
