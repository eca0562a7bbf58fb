// Statistics of a row source in one streaming pass, in double: per-dimension means, the total sum of
// squares about them (the explained-variance denominator), the sum of squares (JumpReLU's data
// scale), and evenly spaced sample rows (the geometric-median start) — never a second copy of the
// data. The pass reads every row once, so it also finds any non-finite value before training.
// Data-parallel processes share the pass: each reads its blocks only, and all get the same result.
#pragma once

#include <sae/core/types.hpp>
#include <sae/data/row_source.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

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

namespace statistics_detail {
// A block's moments as rows, sst, sum_squares, mean..., and back.
inline void pack(const Moments& m, double* out) {
  out[0] = static_cast<double>(m.rows), out[1] = m.sst, out[2] = m.sum_squares;
  std::copy(m.mean.data(), m.mean.data() + m.mean.size(), out + 3);
}
inline Moments unpack(const double* in, index_t width) {
  Moments m;
  m.rows = static_cast<index_t>(in[0]), m.sst = in[1], m.sum_squares = in[2];
  m.mean = Eigen::Map<const Eigen::RowVectorXd>(in + 3, width);
  return m;
}
}  // namespace statistics_detail

// The pass shared by `parts` processes: block b is read by part b % parts, `sum_over_parts(v)` adds
// a std::vector<double> element-wise over the parts in place (an MPI all-reduce), and every part
// merges all blocks' moments in block order — bitwise what one process computes alone.
// `block_rows`: rows per block (0: streaming_block_rows).
template <class Scalar, class SumOverParts>
RowStatistics stream_statistics(const RowSource<Scalar>& source, index_t block_rows, int part, int parts,
                                SumOverParts&& sum_over_parts) {
  const index_t block =
      block_rows > 0 ? block_rows : streaming_block_rows<Scalar>(std::max(source.input_dim(), source.target_dim()));
  const index_t blocks = (source.rows() + block - 1) / block;
  const bool targets = source.has_targets();
  const std::size_t in_width = static_cast<std::size_t>(source.input_dim()) + 3;
  const std::size_t stride = in_width + (targets ? static_cast<std::size_t>(source.target_dim()) + 3 : 0);
  std::vector<double> packed(static_cast<std::size_t>(blocks) * stride, 0.0);
  Matrix<Scalar> x;
  for (index_t b = part; b < blocks; b += parts) {
    const index_t first = b * block, n = std::min(block, source.rows() - first);
    const auto rows = row_range(first, n);
    double* at = packed.data() + static_cast<std::size_t>(b) * stride;
    source.read_inputs(rows.data(), n, x);
    statistics_detail::pack(block_moments(x), at);
    if (targets) {
      source.read_targets(rows.data(), n, x);
      statistics_detail::pack(block_moments(x), at + in_width);
    }
    source.release_rows(rows.data(), n);
  }
  if (parts > 1) sum_over_parts(packed);  // one part wrote each block; the others' zeros add nothing
  RowStatistics s;
  for (index_t b = 0; b < blocks; ++b) {
    const double* at = packed.data() + static_cast<std::size_t>(b) * stride;
    merge_moments(s.inputs, statistics_detail::unpack(at, source.input_dim()));
    if (targets) merge_moments(s.targets, statistics_detail::unpack(at + in_width, source.target_dim()));
  }
  if (!targets) s.targets = s.inputs;
  return s;
}

// The pass in one process.
template <class Scalar>
RowStatistics stream_statistics(const RowSource<Scalar>& source, index_t block_rows = 0) {
  return stream_statistics(source, block_rows, 0, 1, [](std::vector<double>&) {});
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
