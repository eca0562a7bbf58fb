// Constraints on a parameter's rows that must hold after every optimizer step. The decoder keeps
// unit-norm rows; an optimizer that rescales each row right after updating it (while the row is in
// cache) spares the model a separate pass over the decoder.
#pragma once

namespace sae {

enum class RowConstraint { none, unit_norm };

namespace detail {
// Scales a row to unit L2 norm (a zero row is left as is).
template <class Row>
void normalize_row(Row&& row) {
  const auto norm = row.norm();
  if (norm > 0) row /= norm;
}
}  // namespace detail

}  // namespace sae
