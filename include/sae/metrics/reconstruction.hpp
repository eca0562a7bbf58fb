// Reconstruction metrics: pure functions of (x, x_hat), accumulated in double.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>

#include <cmath>
#include <limits>
#include <string>

namespace sae::metrics {

namespace detail {
template <class Scalar>
void require_same_shape(const Matrix<Scalar>& x, const Matrix<Scalar>& x_hat, const char* caller) {
  sae::detail::require(x.size() > 0, caller,
                       "no data to score: x is [" + std::to_string(x.rows()) + ", " + std::to_string(x.cols()) + "]");
  sae::detail::require(x.rows() == x_hat.rows() && x.cols() == x_hat.cols(), caller,
                       "x is [" + std::to_string(x.rows()) + ", " + std::to_string(x.cols()) + "] but x_hat is [" +
                           std::to_string(x_hat.rows()) + ", " + std::to_string(x_hat.cols()) + "]");
}
}  // namespace detail

// Explained variance as SAELens computes it today:
//   EV = 1 - sum_i ||x_i - x_hat_i||^2 / sum_i ||x_i - mean(x)||^2,
// where mean(x) is the per-dimension mean over the evaluation set. Accumulated in double.
// Undefined (NaN) when x has no variance (one row, or identical rows): callers report it as
// undefined and leave it out of comparisons (metrics::defined).
template <class Scalar>
double explained_variance(const Matrix<Scalar>& x, const Matrix<Scalar>& x_hat) {
  detail::require_same_shape(x, x_hat, "explained_variance()");
  const Eigen::RowVectorXd mean = x.template cast<double>().colwise().mean();
  double residual = 0, total = 0;
  for (index_t i = 0; i < x.rows(); ++i) {
    const Eigen::RowVectorXd xi = x.row(i).template cast<double>();
    residual += (xi - x_hat.row(i).template cast<double>()).squaredNorm();
    total += (xi - mean).squaredNorm();
  }
  return total > 0 ? 1.0 - residual / total : std::numeric_limits<double>::quiet_NaN();
}

// Whether a metric has a value: undefined ones (NaN, such as EV over data without variance) are
// shown as undefined and never counted in a comparison, a win or a mean.
inline bool defined(double metric) { return !std::isnan(metric); }

// Explained variance as the reports compute it, over all elements at once (PyTorch's
// `1 - (x - x_hat).var() / x.var()`, unbiased variances about the global scalar means).
// It differs from explained_variance() by subtracting the residual's own mean and one global
// mean instead of a per-dimension mean.
template <class Scalar>
double explained_variance_reports(const Matrix<Scalar>& x, const Matrix<Scalar>& x_hat) {
  detail::require_same_shape(x, x_hat, "explained_variance_reports()");
  const double n = static_cast<double>(x.size());
  sae::detail::require(n > 1, "explained_variance_reports()", "needs at least two elements");
  // Two passes in double, a row at a time: no full-size double copies of x or the residual.
  double sum_r = 0, sum_x = 0;
  for (index_t i = 0; i < x.rows(); ++i) {
    sum_r += (x.row(i).template cast<double>() - x_hat.row(i).template cast<double>()).sum();
    sum_x += x.row(i).template cast<double>().sum();
  }
  const double mean_r = sum_r / n, mean_x = sum_x / n;
  double ss_r = 0, ss_x = 0;
  for (index_t i = 0; i < x.rows(); ++i) {
    ss_r += ((x.row(i).template cast<double>() - x_hat.row(i).template cast<double>()).array() - mean_r).square().sum();
    ss_x += (x.row(i).template cast<double>().array() - mean_x).square().sum();
  }
  const double var_r = ss_r / (n - 1), var_x = ss_x / (n - 1);
  return var_x > 0 ? 1.0 - var_r / var_x : std::numeric_limits<double>::quiet_NaN();  // undefined without variance
}

// Mean squared error over all elements (torch's F.mse_loss with reduction='mean').
template <class Scalar>
double mse(const Matrix<Scalar>& x, const Matrix<Scalar>& x_hat) {
  detail::require_same_shape(x, x_hat, "mse()");
  return (x.template cast<double>() - x_hat.template cast<double>()).squaredNorm() / static_cast<double>(x.size());
}

}  // namespace sae::metrics
