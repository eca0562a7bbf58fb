// What an optimizer does to a parameter's rows right after updating them, while they are in
// cache: restore the decoder's unit norm, and hand each finished block of kRowBlock rows to a
// callback (the TopK model repacks its encoder for the next GEMM there). This spares the model
// separate passes over the weights after every step.
#pragma once

#include <sae/core/types.hpp>

#include <functional>

namespace sae {

// Rows per optimizer block: the encoder GEMM's panel width, so a block is one whole panel.
inline constexpr index_t kRowBlock = 48;

struct RowHooks {
  bool unit_norm = false;
  std::function<void(index_t begin, index_t end)> after_block;  // rows [begin, end); begin % kRowBlock == 0
};

namespace detail {
// Scales a row to unit L2 norm (a zero row is left as is).
template <class Row>
void normalize_row(Row&& row) {
  const auto norm = row.norm();
  if (norm > 0) row /= norm;
}
}  // namespace detail

}  // namespace sae
