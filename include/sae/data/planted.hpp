// Synthetic activations with a known sparse dictionary, for tests and a download-free default:
// each sample is a positive, heavy-tailed combination of k_true of num_features unit directions
// plus isotropic Gaussian noise.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/rng.hpp>
#include <sae/core/fields.hpp>
#include <sae/core/types.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace sae::data {

struct PlantedConfig {
  index_t num_samples = 8192;
  index_t input_dim = 64;
  index_t num_features = 128;  // F_true
  index_t k_true = 4;          // active features per sample
  double noise_std = 0.01;     // per element
  double tail_alpha = 3.0;     // Pareto tail index of the magnitudes (smaller = heavier tail)
  std::uint64_t seed = 0;

  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.num_samples, field("num_samples", "planted data: samples").at_least(2).flag_name("planted-samples"));
    v(c.input_dim, field("input_dim", "planted data: input dimension").at_least(1).flag_name("planted-dim"));
    v(c.num_features, field("num_features", "planted data: true features").at_least(1).flag_name("planted-features"));
    v(c.k_true, field("k_true", "planted data: active features per sample").at_least(1).flag_name("planted-k"));
    v(c.noise_std, field("noise_std", "planted data: Gaussian noise per element").at_least(0).no_flag());
    v(c.tail_alpha, field("tail_alpha", "planted data: Pareto tail index of the magnitudes").above(0).no_flag());
    v(c.seed, field("seed", "planted data: seed").no_flag());
  }
};

template <class Scalar>
struct PlantedData {
  Matrix<Scalar> x;           // [num_samples, input_dim]
  Matrix<Scalar> dictionary;  // [num_features, input_dim], unit rows
};

template <class Scalar>
PlantedData<Scalar> make_planted(const PlantedConfig& c) {
  detail::require(c.num_samples > 0 && c.input_dim > 0 && c.num_features > 0, "make_planted()",
                  "sizes must be positive");
  detail::require(c.k_true > 0 && c.k_true <= c.num_features, "make_planted()",
                  "need 0 < k_true <= num_features, got k_true=" + std::to_string(c.k_true));
  detail::require(c.tail_alpha > 0 && c.noise_std >= 0, "make_planted()", "need tail_alpha > 0 and noise_std >= 0");
  Rng rng(c.seed);
  PlantedData<Scalar> d;
  d.dictionary.resize(c.num_features, c.input_dim);
  for (index_t f = 0; f < c.num_features; ++f) {
    double norm2 = 0;
    for (index_t j = 0; j < c.input_dim; ++j) {
      const double v = rng.normal();
      d.dictionary(f, j) = static_cast<Scalar>(v);
      norm2 += v * v;
    }
    d.dictionary.row(f) /= static_cast<Scalar>(std::sqrt(norm2));
  }
  d.x.resize(c.num_samples, c.input_dim);
  std::vector<index_t> features(static_cast<std::size_t>(c.num_features));
  for (index_t f = 0; f < c.num_features; ++f) features[static_cast<std::size_t>(f)] = f;
  for (index_t n = 0; n < c.num_samples; ++n) {
    for (index_t j = 0; j < c.input_dim; ++j) d.x(n, j) = static_cast<Scalar>(c.noise_std * rng.normal());
    // Partial Fisher-Yates: the first k_true entries become a uniform random subset.
    for (index_t i = 0; i < c.k_true; ++i) {
      const auto j = i + static_cast<index_t>(rng.uniform_int(static_cast<std::uint64_t>(c.num_features - i)));
      std::swap(features[static_cast<std::size_t>(i)], features[static_cast<std::size_t>(j)]);
      const double magnitude = std::pow(1.0 - rng.uniform(), -1.0 / c.tail_alpha);  // Pareto, >= 1
      d.x.row(n) += static_cast<Scalar>(magnitude) * d.dictionary.row(features[static_cast<std::size_t>(i)]);
    }
  }
  return d;
}

}  // namespace sae::data
