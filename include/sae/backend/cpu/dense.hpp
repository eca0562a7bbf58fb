// Dense work on the CPU: the encoder GEMM. Eigen's GEMM (or BLAS when SAE_USE_BLAS routes Eigen to
// it) splits the output among threads the same way for a given thread count, so results are
// bitwise reproducible at a fixed thread count.
#pragma once

#include <sae/core/backend.hpp>
#include <sae/core/types.hpp>

namespace sae::ops {

// pre = x * w_enc^T + b_enc    ([B, D] x [D, F] -> [B, F])
template <class Scalar>
void encoder_preactivations(cpu, const Matrix<Scalar>& x, const Matrix<Scalar>& w_enc, const Vector<Scalar>& b_enc,
                            Matrix<Scalar>& pre) {
  pre.resize(x.rows(), w_enc.rows());
  pre.noalias() = x * w_enc.transpose();
  pre.rowwise() += b_enc.transpose();
}

}  // namespace sae::ops
