// Statistics of a row source in one streaming pass, in double: per-dimension means, the total sum of
// squares about them (the explained-variance denominator), the sum of squares (JumpReLU's data
// scale), and evenly spaced sample rows (the geometric-median start) — never a second copy of the
// data. The pass reads every row once, so it also finds any non-finite value before training.
#pragma once

#include <sae/core/types.hpp>
#include <sae/data/row_source.hpp>

#include <algorithm>
#include <cstdint>

namespace sae::data {

struct Moments {
  index_t rows = 0;
  Eigen::RowVectorXd mean;  // per dimension
  double sst = 0;           // sum_i ||x_i - mean||^2
  double sum_squares = 0;   // sum_i ||x_i||^2

  double mean_square() const { return rows > 0 ? sum_squares / (static_cast<double>(rows) * static_cast<double>(mean.size())) : 0.0; }
};

struct RowStatistics {
  Moments inputs;
  Moments targets;  // the inputs' again when the source has no distinct targets
};

// The moments of one block of rows (the formulas the trainer used on the whole matrix before, so a
// set that fits one chunk gives bitwise the same values).
template <class Scalar>
Moments block_moments(const Matrix<Scalar>& x) {
  Moments m;
  m.rows = x.rows();
  m.mean = x.template cast<double>().colwise().mean();
  for (index_t i = 0; i < x.rows(); ++i) m.sst += (x.row(i).template cast<double>() - m.mean).squaredNorm();
  m.sum_squares = x.template cast<double>().squaredNorm();
  return m;
}

// Chan, Golub & LeVeque's pairwise update: M2 = M2_a + M2_b + ||mean_b - mean_a||^2 n_a n_b / n.
inline void merge_moments(Moments& a, const Moments& b) {
  if (b.rows == 0) return;
  if (a.rows == 0) {
    a = b;
    return;
  }
  const double na = static_cast<double>(a.rows), nb = static_cast<double>(b.rows), n = na + nb;
  const Eigen::RowVectorXd delta = b.mean - a.mean;
  a.sst += b.sst + delta.squaredNorm() * na * nb / n;
  a.mean += delta * (nb / n);
  a.sum_squares += b.sum_squares;
  a.rows += b.rows;
}

// Rows per block of a streaming pass: 256 MiB of Scalar rows, at least 1,024. Fixed by the width
// alone, so results do not depend on the machine; the reports' sets are one block.
template <class Scalar>
index_t streaming_block_rows(index_t width) {
  const index_t by_bytes = static_cast<index_t>((std::int64_t{256} << 20) / (std::max<index_t>(width, 1) * sizeof(Scalar)));
  return std::max<index_t>(1024, by_bytes);
}

// `block_rows`: rows per block (0: streaming_block_rows).
template <class Scalar>
RowStatistics stream_statistics(const RowSource<Scalar>& source, index_t block_rows = 0) {
  RowStatistics s;
  const index_t block =
      block_rows > 0 ? block_rows : streaming_block_rows<Scalar>(std::max(source.input_dim(), source.target_dim()));
  Matrix<Scalar> x, y;
  for (index_t first = 0; first < source.rows(); first += block) {
    const index_t n = std::min(block, source.rows() - first);
    const auto rows = row_range(first, n);
    source.read_inputs(rows.data(), n, x);
    merge_moments(s.inputs, block_moments(x));
    if (source.has_targets()) {
      source.read_targets(rows.data(), n, y);
      merge_moments(s.targets, block_moments(y));
    }
  }
  if (!source.has_targets()) s.targets = s.inputs;
  return s;
}

// At most `max_rows` evenly spaced rows (0, stride, 2 stride, ...): a sample for initialisations.
template <class Scalar>
Matrix<Scalar> evenly_spaced_rows(const RowSource<Scalar>& source, index_t max_rows) {
  const index_t stride = (source.rows() + max_rows - 1) / max_rows;
  std::vector<index_t> rows(static_cast<std::size_t>((source.rows() + stride - 1) / stride));
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<index_t>(i) * stride;
  Matrix<Scalar> out;
  source.read_inputs(rows.data(), static_cast<index_t>(rows.size()), out);
  return out;
}

}  // namespace sae::data
