// Sparsity and latent-usage metrics: pure functions of sparse codes. A latent is "active" on a
// sample when its value after ReLU is > 0, so a selected latent whose pre-activation was <= 0
// does not count.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/core/sparse_codes.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sae::metrics {

// Mean number of active latents per sample.
template <class Scalar>
double l0(const SparseCodes<Scalar>& codes) {
  sae::detail::require(codes.rows > 0, "l0()", "no samples");
  const auto active = std::count_if(codes.values.begin(), codes.values.end(), [](Scalar v) { return v > Scalar(0); });
  return static_cast<double>(active) / static_cast<double>(codes.rows);
}

// Fraction of samples on which each latent is active ([num_latents]).
template <class Scalar>
std::vector<double> activation_frequency(const SparseCodes<Scalar>& codes) {
  sae::detail::require(codes.rows > 0, "activation_frequency()", "no samples");
  std::vector<double> freq(static_cast<std::size_t>(codes.num_latents), 0.0);
  for (std::size_t e = 0; e < codes.values.size(); ++e)
    if (codes.values[e] > Scalar(0)) freq[static_cast<std::size_t>(codes.indices[e])] += 1.0;
  for (double& f : freq) f /= static_cast<double>(codes.rows);
  return freq;
}

// Latents active on at least one sample.
inline index_t alive_latents(const std::vector<double>& frequency) {
  return static_cast<index_t>(std::count_if(frequency.begin(), frequency.end(), [](double f) { return f > 0.0; }));
}

// Fraction of latents never active on the evaluation set (the reports' "feature death rate").
inline double dead_fraction(const std::vector<double>& frequency) {
  sae::detail::require(!frequency.empty(), "dead_fraction()", "no latents");
  return 1.0 - static_cast<double>(alive_latents(frequency)) / static_cast<double>(frequency.size());
}

// Mean value over all (sample, latent) activations that are > 0; 0 if there are none.
template <class Scalar>
double mean_active_activation(const SparseCodes<Scalar>& codes) {
  double sum = 0;
  index_t n = 0;
  for (Scalar v : codes.values)
    if (v > Scalar(0)) sum += static_cast<double>(v), ++n;
  return n ? sum / static_cast<double>(n) : 0.0;
}

// Largest activation on the evaluation set; 0 if nothing fired.
template <class Scalar>
double max_activation(const SparseCodes<Scalar>& codes) {
  double m = 0;
  for (Scalar v : codes.values) m = std::max(m, static_cast<double>(v));
  return m;
}

// The reports' efficiency: explained variance divided by the number of alive latents
// (report 000 quotes it in percent: 81.1% / 382 = 0.212% per latent).
inline double ev_per_active_latent(double explained_variance, index_t alive) {
  return alive > 0 ? explained_variance / static_cast<double>(alive) : 0.0;
}

// Of the latents active in `a`, the fraction also active in `b` for the same sample (pooled over
// samples; 1 when `a` has none): how far two encodings of the same rows agree, e.g. the bf16
// encoder GEMM against fp32 on the same weights.
template <class Scalar>
double active_overlap(const SparseCodes<Scalar>& a, const SparseCodes<Scalar>& b) {
  sae::detail::require(a.rows == b.rows && a.num_latents == b.num_latents, "active_overlap()",
                  "the two encodings have different shapes");
  std::int64_t active = 0, shared = 0;
  for (index_t i = 0; i < a.rows; ++i)
    for (index_t s = 0; s < a.k; ++s) {
      if (a.row_values(i)[s] <= Scalar(0)) continue;
      ++active;
      const std::int32_t j = a.row_indices(i)[s];
      for (index_t t = 0; t < b.k; ++t)
        if (b.row_indices(i)[t] == j && b.row_values(i)[t] > Scalar(0)) {
          ++shared;
          break;
        }
    }
  return active > 0 ? static_cast<double>(shared) / static_cast<double>(active) : 1.0;
}

}  // namespace sae::metrics
