// The row loop every CPU optimizer runs over a weight matrix with a row-sparse gradient: blocks
// of kRowBlock rows in parallel, each row updated with its gradient row (or none: a zero
// gradient) and then given its hooks (core/row_hooks.hpp) while in cache.
#pragma once

#include <sae/config.hpp>
#include <sae/core/error.hpp>
#include <sae/core/row_hooks.hpp>
#include <sae/core/row_sparse.hpp>
#include <sae/core/types.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sae::ops::detail {

// update(j, g_row) for every row j of p, g_row the gradient's row j or nullptr. `caller` names the
// optimizer in a shape error.
template <class Scalar, class Update>
void update_rows(Matrix<Scalar>& p, const RowSparse<Scalar>& g, const RowHooks& hooks, const char* caller,
                 const Update& update) {
  sae::detail::require(g.total_rows == p.rows() && (g.rows.empty() || g.cols() == p.cols()), caller,
                       "gradient shape does not match its parameter");
  std::vector<std::int32_t> slot(static_cast<std::size_t>(p.rows()), -1);
  for (std::size_t r = 0; r < g.rows.size(); ++r) slot[static_cast<std::size_t>(g.rows[r])] = static_cast<std::int32_t>(r);
  const index_t blocks = (p.rows() + kRowBlock - 1) / kRowBlock;
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t b = 0; b < blocks; ++b) {
    const index_t begin = b * kRowBlock, end = std::min(p.rows(), begin + kRowBlock);
    for (index_t j = begin; j < end; ++j) {
      const std::int32_t r = slot[static_cast<std::size_t>(j)];
      update(j, r >= 0 ? g.values.row(r).data() : static_cast<const Scalar*>(nullptr));
      if (hooks.unit_norm) sae::detail::normalize_row(p.row(j));
    }
    if (hooks.after_block) hooks.after_block(begin, end);
  }
}

}  // namespace sae::ops::detail
