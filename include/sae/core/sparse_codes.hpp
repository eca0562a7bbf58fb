// Sparse codes: k (latent index, value) slots per sample instead of dense F-wide rows. TopK fills
// every slot; models whose samples keep different numbers of latents (BatchTopK, thresholds) set
// k to the largest count and pad the rest with value 0. A slot with value 0 is inactive either
// way, and every consumer skips it.
#pragma once

#include <sae/core/types.hpp>

#include <cstdint>
#include <vector>

namespace sae {

template <class Scalar>
struct SparseCodes {
  index_t rows = 0;
  index_t k = 0;
  index_t num_latents = 0;
  std::vector<std::int32_t> indices;  // [rows * k], row i at [i * k, (i + 1) * k), best-ranked first
  std::vector<Scalar> values;         // after ReLU, so a selected latent may hold 0

  void resize(index_t r, index_t k_, index_t f) {
    rows = r;
    k = k_;
    num_latents = f;
    indices.resize(static_cast<std::size_t>(r * k_));
    values.resize(static_cast<std::size_t>(r * k_));
  }
  const std::int32_t* row_indices(index_t i) const { return indices.data() + i * k; }
  const Scalar* row_values(index_t i) const { return values.data() + i * k; }
  std::int32_t* row_indices(index_t i) { return indices.data() + i * k; }
  Scalar* row_values(index_t i) { return values.data() + i * k; }

  // Dense [rows, num_latents] form, for tests and small analyses.
  Matrix<Scalar> to_dense() const {
    Matrix<Scalar> d = Matrix<Scalar>::Zero(rows, num_latents);
    for (index_t i = 0; i < rows; ++i)
      for (index_t s = 0; s < k; ++s)
        if (row_values(i)[s] != Scalar(0)) d(i, row_indices(i)[s]) = row_values(i)[s];
    return d;
  }
};

}  // namespace sae
