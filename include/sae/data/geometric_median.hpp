// The geometric median of a set of rows: the point minimising the sum of Euclidean distances to
// them, by Weiszfeld's iteration (each step a distance-weighted mean). SAELens and OpenAI's TopK
// paper start the decoder bias there: unlike the mean it ignores a few far-off rows.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>

#include <algorithm>
#include <cmath>

namespace sae::data {

// Iterates from the mean until a step moves the estimate by less than `tolerance` times its
// spread (the mean distance to the rows) or `max_iterations` pass. Rows closer than 1e-12 x the
// spread to the estimate get that floor's weight (the iteration is undefined at a row).
template <class Scalar>
Vector<Scalar> geometric_median(const Matrix<Scalar>& x, int max_iterations = 200, double tolerance = 1e-7) {
  detail::require(x.rows() > 0 && x.cols() > 0, "geometric_median()", "needs at least one row");
  const Eigen::MatrixXd rows = x.template cast<double>();
  Eigen::RowVectorXd y = rows.colwise().mean();
  for (int it = 0; it < max_iterations; ++it) {
    const Eigen::VectorXd dist = (rows.rowwise() - y).rowwise().norm();
    const double spread = dist.mean();
    if (spread == 0) break;  // every row is the same point
    const Eigen::VectorXd w = dist.cwiseMax(1e-12 * spread).cwiseInverse();
    const Eigen::RowVectorXd next = (w.asDiagonal() * rows).colwise().sum() / w.sum();
    const double moved = (next - y).norm();
    y = next;
    if (moved <= tolerance * spread) break;
  }
  return y.transpose().template cast<Scalar>();
}

}  // namespace sae::data
