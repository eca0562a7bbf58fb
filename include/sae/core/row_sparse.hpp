// A gradient that is nonzero on a few rows only: a TopK step touches just the latents some sample
// selected, so the [F, D] weight gradients are stored as (row list, dense rows).
#pragma once

#include <sae/core/types.hpp>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace sae {

template <class Scalar>
struct RowSparse {
  index_t total_rows = 0;          // F
  std::vector<std::int32_t> rows;  // touched rows, each once; ascending unless gradients were added on (AuxK)
  Matrix<Scalar> values;           // row s holds row rows[s]; rows past rows.size() are spare capacity

  index_t cols() const { return values.cols(); }
  // Room for `count` rows of `cols` values. The allocation only grows, so training does not
  // reallocate (and page-fault) megabytes every step as the number of touched rows varies.
  void reserve_rows(index_t count, index_t cols) {
    if (values.cols() != cols || values.rows() < count) values.resize(std::max(count, total_rows), cols);
  }
  // this += other, both row lists ascending: the rows of both, each once, ascending. `scratch` is reused storage (its
  // allocation is kept across calls, so training does not page-fault megabytes every step).
  void add(const RowSparse& other, RowSparse& scratch) {
    if (other.rows.empty()) return;
    scratch.total_rows = total_rows;
    scratch.rows.clear();
    scratch.reserve_rows(static_cast<index_t>(rows.size() + other.rows.size()), other.cols());
    std::size_t a = 0, b = 0;
    while (a < rows.size() || b < other.rows.size()) {
      const index_t r = static_cast<index_t>(scratch.rows.size());
      if (b == other.rows.size() || (a < rows.size() && rows[a] < other.rows[b])) {
        scratch.values.row(r) = values.row(static_cast<index_t>(a)), scratch.rows.push_back(rows[a++]);
      } else if (a == rows.size() || other.rows[b] < rows[a]) {
        scratch.values.row(r) = other.values.row(static_cast<index_t>(b)), scratch.rows.push_back(other.rows[b++]);
      } else {
        scratch.values.row(r) = values.row(static_cast<index_t>(a)) + other.values.row(static_cast<index_t>(b));
        scratch.rows.push_back(rows[a]), ++a, ++b;
      }
    }
    std::swap(*this, scratch);
  }
  Matrix<Scalar> to_dense() const {
    Matrix<Scalar> d = Matrix<Scalar>::Zero(total_rows, values.cols());
    for (std::size_t s = 0; s < rows.size(); ++s) d.row(rows[s]) = values.row(static_cast<index_t>(s));
    return d;
  }
};

}  // namespace sae
