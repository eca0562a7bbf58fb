// The evals refuse rows that hold NaN or infinity: SAEBench's numbers would silently turn NaN (or,
// for MDL, an infinite bin edge). Files are checked when read (data/activations.hpp); rows made in
// memory are checked here, batch by batch, in the row numbering of the source.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>

#include <cmath>
#include <string>

namespace sae::eval {

// Throws invalid_argument naming the caller, the source, the first bad row (first_row + i) and
// column, and its value.
template <class Scalar>
void require_finite_rows(const Matrix<Scalar>& x, index_t first_row, const std::string& source, const char* caller) {
  if (x.allFinite()) return;
  for (index_t i = 0; i < x.rows(); ++i)
    for (index_t j = 0; j < x.cols(); ++j)
      if (!std::isfinite(x(i, j)))
        sae::detail::require(false, caller,
                             source + ": row " + std::to_string(first_row + i) + ", dimension " + std::to_string(j) +
                                 " is " + std::to_string(static_cast<double>(x(i, j))) + "; activations must be finite");
}

}  // namespace sae::eval
