// Train/validation splits as row-index lists, and row gathering.
#pragma once

#include <sae/config.hpp>
#include <sae/core/error.hpp>
#include <sae/core/rng.hpp>
#include <sae/core/types.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

namespace sae::data {

struct Split {
  std::vector<index_t> train;
  std::vector<index_t> validation;
  std::string description;  // how the rows were divided, for reports
};

// The reports' split: 5,978 train + 1,495 validation = GSM8K train's 7,473 problems, in file order.
inline constexpr index_t kReportsTrainRows = 5978;

// First `train_rows` rows train, the rest validate (no shuffling, as in the reports).
inline Split head_split(index_t num_rows, index_t train_rows = kReportsTrainRows) {
  if (train_rows <= 0 || train_rows >= num_rows)
    throw invalid_argument("head_split(): need 0 < train_rows < num_rows, got train_rows=" +
                           std::to_string(train_rows) + " with " + std::to_string(num_rows) + " rows");
  Split s;
  s.train.resize(static_cast<std::size_t>(train_rows));
  s.validation.resize(static_cast<std::size_t>(num_rows - train_rows));
  std::iota(s.train.begin(), s.train.end(), index_t{0});
  std::iota(s.validation.begin(), s.validation.end(), train_rows);
  return s;
}

// A seeded random split holding out round(num_rows * validation_fraction) rows; both lists sorted.
inline Split fractional_split(index_t num_rows, double validation_fraction, std::uint64_t seed) {
  if (!(validation_fraction > 0.0 && validation_fraction < 1.0))
    throw invalid_argument("fractional_split(): validation_fraction must be in (0, 1), got " +
                           std::to_string(validation_fraction));
  const auto n_val = static_cast<index_t>(static_cast<double>(num_rows) * validation_fraction + 0.5);
  if (n_val <= 0 || n_val >= num_rows)
    throw invalid_argument("fractional_split(): " + std::to_string(num_rows) + " rows are too few for fraction " +
                           std::to_string(validation_fraction));
  Rng rng(seed);
  std::vector<index_t> perm = rng.permutation<index_t>(static_cast<std::size_t>(num_rows));
  Split s;
  s.validation.assign(perm.begin(), perm.begin() + n_val);
  s.train.assign(perm.begin() + n_val, perm.end());
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.validation.begin(), s.validation.end());
  return s;
}

// How a program divides its rows: the reports' head split where it fits (more than 5,978 rows),
// else — or whenever a fraction is given — a seeded random fraction. Every program takes this
// policy, so any data set works everywhere and the reports' split stays the default where it fits.
struct SplitPolicy {
  std::optional<double> validation_fraction;  // unset: the reports' split, or 0.2 below 5,979 rows
  std::uint64_t seed = 0;
  static constexpr double kDefaultFraction = 0.2;
};

inline Split choose_split(index_t num_rows, const SplitPolicy& policy) {
  Split s;
  if (policy.validation_fraction || num_rows <= kReportsTrainRows) {
    const double fraction = policy.validation_fraction.value_or(SplitPolicy::kDefaultFraction);
    s = fractional_split(num_rows, fraction, policy.seed);
    char buf[96];
    std::snprintf(buf, sizeof buf, "seeded random split, %.4g%% held out", 100 * fraction);
    s.description = buf;
  } else {
    s = head_split(num_rows, kReportsTrainRows);
    s.description = "reports' split: first 5,978 rows train, the rest validate";
  }
  return s;
}

// Copies the listed rows of x into `out` (resized as needed).
template <class Scalar>
void gather_rows(const Matrix<Scalar>& x, const index_t* rows, index_t count, Matrix<Scalar>& out) {
  out.resize(count, x.cols());
  // Parallel: a training step gathers its batch while no other work runs.
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static) if (count * x.cols() >= (1 << 16))
#endif
  for (index_t i = 0; i < count; ++i) out.row(i) = x.row(rows[i]);
}

template <class Scalar>
Matrix<Scalar> take_rows(const Matrix<Scalar>& x, const std::vector<index_t>& rows) {
  Matrix<Scalar> out;
  for (index_t r : rows)
    if (r < 0 || r >= x.rows())
      throw invalid_argument("take_rows(): row " + std::to_string(r) + " out of range [0, " + std::to_string(x.rows()) + ")");
  gather_rows(x, rows.data(), static_cast<index_t>(rows.size()), out);
  return out;
}

}  // namespace sae::data
