// A gradient that is nonzero on a few rows only: a TopK step touches just the latents some sample
// selected, so the [F, D] weight gradients are stored as (row list, dense rows).
#pragma once

#include <sae/core/types.hpp>

#include <cstdint>
#include <vector>

namespace sae {

template <class Scalar>
struct RowSparse {
  index_t total_rows = 0;          // F
  std::vector<std::int32_t> rows;  // touched rows, ascending
  Matrix<Scalar> values;           // [rows.size(), cols]

  index_t cols() const { return values.cols(); }
  Matrix<Scalar> to_dense() const {
    Matrix<Scalar> d = Matrix<Scalar>::Zero(total_rows, values.cols());
    for (std::size_t s = 0; s < rows.size(); ++s) d.row(rows[s]) = values.row(static_cast<index_t>(s));
    return d;
  }
};

}  // namespace sae
