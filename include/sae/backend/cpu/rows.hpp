// Dense row operations on the CPU: the decoder's unit-norm rows, and the decoder bias taken off
// the encoder's input.
#pragma once

#include <sae/config.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/row_hooks.hpp>
#include <sae/core/types.hpp>

namespace sae::ops {

// Scales each row to unit L2 norm (a zero row is left as is).
template <class Scalar>
void normalize_rows(cpu, Matrix<Scalar>& w) {
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t j = 0; j < w.rows(); ++j) sae::detail::normalize_row(w.row(j));
}

// out[i] = x[i] - b
template <class Scalar>
void subtract_row(cpu, const Matrix<Scalar>& x, const Vector<Scalar>& b, Matrix<Scalar>& out) {
  out = x.rowwise() - b.transpose();
}

}  // namespace sae::ops
