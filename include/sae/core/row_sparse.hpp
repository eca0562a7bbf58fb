// A gradient that is nonzero on a few rows only: a TopK step touches just the latents some sample
// selected, so the [F, D] weight gradients are stored as (row list, dense rows).
#pragma once

#include <sae/core/types.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sae {

template <class Scalar>
struct RowSparse {
  index_t total_rows = 0;          // F
  std::vector<std::int32_t> rows;  // touched rows, ascending
  Matrix<Scalar> values;           // row s holds row rows[s]; rows past rows.size() are spare capacity

  index_t cols() const { return values.cols(); }
  // Room for `count` rows of `cols` values. The allocation only grows, so training does not
  // reallocate (and page-fault) megabytes every step as the number of touched rows varies.
  void reserve_rows(index_t count, index_t cols) {
    if (values.cols() != cols || values.rows() < count) values.resize(std::max(count, total_rows), cols);
  }
  Matrix<Scalar> to_dense() const {
    Matrix<Scalar> d = Matrix<Scalar>::Zero(total_rows, values.cols());
    for (std::size_t s = 0; s < rows.size(); ++s) d.row(rows[s]) = values.row(static_cast<index_t>(s));
    return d;
  }
};

}  // namespace sae
