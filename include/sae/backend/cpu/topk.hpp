// Row-wise exact top-k on the CPU. Order: larger key first, ties to the lower latent index, the
// same total order on every backend. Kept values go through ReLU.
#pragma once

#include <sae/config.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/model/sparse_codes.hpp>
#include <sae/model/selection.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace sae::ops {

namespace detail {
template <class Scalar>
struct Candidate {
  Scalar key;
  std::int32_t index;
};
// True when a ranks before b.
template <class Scalar>
inline bool ranks_before(const Candidate<Scalar>& a, const Candidate<Scalar>& b) {
  return a.key > b.key || (a.key == b.key && a.index < b.index);
}
}  // namespace detail

template <class Scalar>
void topk_rows(cpu, const Matrix<Scalar>& pre, index_t k, Selection selection, SparseCodes<Scalar>& out) {
  const index_t rows = pre.rows(), f = pre.cols();
  sae::detail::require(k >= 1 && k <= f, "topk_rows()",
                       "k must be in [1, " + std::to_string(f) + "], got " + std::to_string(k));
  out.resize(rows, k, f);
  const bool by_magnitude = selection == Selection::magnitude;
  // A bounded heap wins when k is small against F; otherwise partial sorting does.
  const bool use_heap = k * 8 < f;
#if SAE_USE_OPENMP
#pragma omp parallel
#endif
  {
    std::vector<detail::Candidate<Scalar>> buf(static_cast<std::size_t>(use_heap ? k : f));
    const auto worse_on_top = [](const auto& a, const auto& b) { return detail::ranks_before(a, b); };
#if SAE_USE_OPENMP
#pragma omp for schedule(static)
#endif
    for (index_t i = 0; i < rows; ++i) {
      const Scalar* row = pre.row(i).data();
      const auto key = [&](index_t j) { return by_magnitude ? std::abs(row[j]) : row[j]; };
      if (use_heap) {
        for (index_t j = 0; j < k; ++j) buf[static_cast<std::size_t>(j)] = {key(j), static_cast<std::int32_t>(j)};
        std::make_heap(buf.begin(), buf.end(), worse_on_top);  // front = worst kept
        for (index_t j = k; j < f; ++j) {
          const Scalar v = key(j);
          // A later index never wins a tie, so strict > keeps the lower index.
          if (v > buf.front().key) {
            std::pop_heap(buf.begin(), buf.end(), worse_on_top);
            buf.back() = {v, static_cast<std::int32_t>(j)};
            std::push_heap(buf.begin(), buf.end(), worse_on_top);
          }
        }
        std::sort_heap(buf.begin(), buf.end(), worse_on_top);
      } else {
        for (index_t j = 0; j < f; ++j) buf[static_cast<std::size_t>(j)] = {key(j), static_cast<std::int32_t>(j)};
        std::nth_element(buf.begin(), buf.begin() + (k - 1), buf.end(), worse_on_top);
        std::sort(buf.begin(), buf.begin() + k, worse_on_top);
      }
      std::int32_t* idx = out.row_indices(i);
      Scalar* val = out.row_values(i);
      for (index_t s = 0; s < k; ++s) {
        idx[s] = buf[static_cast<std::size_t>(s)].index;
        val[s] = std::max(row[idx[s]], Scalar(0));
      }
    }
  }
}

}  // namespace sae::ops
