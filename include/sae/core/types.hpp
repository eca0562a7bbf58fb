// Matrix aliases. Everything is row-major: one sample (or one latent's weights) per row, which is
// the layout of `.npy` activations and of the encoder/decoder weights.
#pragma once

#include <Eigen/Core>
#include <cstdint>

namespace sae {

using index_t = std::int64_t;

template <class Scalar>
using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class Scalar>
using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
template <class Scalar>
using RowVector = Eigen::Matrix<Scalar, 1, Eigen::Dynamic>;

template <class Scalar>
using MatrixMap = Eigen::Map<Matrix<Scalar>>;
template <class Scalar>
using ConstMatrixMap = Eigen::Map<const Matrix<Scalar>>;

}  // namespace sae
