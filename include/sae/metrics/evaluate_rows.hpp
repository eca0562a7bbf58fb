// evaluate() over a row source, a block of rows at a time, against the source's targets: what a
// run reports on a validation split that is memory-mapped, sharded or larger than RAM. A set that
// fits one block is scored by evaluate() itself (bitwise what an in-memory run reports); larger
// sets merge per-block sums in double (Chan et al. for the centred sums).
#pragma once

#include <sae/data/row_source.hpp>
#include <sae/data/row_statistics.hpp>
#include <sae/metrics/evaluate.hpp>

#include <algorithm>
#include <limits>
#include <vector>

namespace sae::metrics {

namespace evaluate_detail {
// n values, their sum and their sum of squares about their own mean, merged block by block.
struct ScalarMoments {
  double n = 0, sum = 0, m2 = 0;
  void add_block(double bn, double bsum, double bm2) {
    if (bn == 0) return;
    if (n > 0) {
      const double delta = bsum / bn - sum / n;
      m2 += bm2 + delta * delta * n * bn / (n + bn);
    } else {
      m2 = bm2;
    }
    n += bn, sum += bsum;
  }
  double variance() const { return m2 / (n - 1); }  // unbiased, as torch's var()
};

template <class Scalar, class Block>
void add_elements(ScalarMoments& m, const Block& v) {
  const double bn = static_cast<double>(v.size()), bsum = v.template cast<double>().sum();
  const double mean = bsum / bn;
  m.add_block(bn, bsum, (v.template cast<double>().array() - mean).square().sum());
}
}  // namespace evaluate_detail

// Every metric of evaluate() for `model` on `rows` (scored against their targets when the source
// has them), in blocks of `block_rows` rows (0: data::streaming_block_rows).
template <class Model>
Evaluation evaluate(const Model& model, const data::RowSource<typename Model::scalar_type>& rows, index_t block_rows = 0) {
  using Scalar = typename Model::scalar_type;
  sae::detail::require(rows.rows() > 0, "evaluate()", rows.describe() + " has no rows to score");
  const index_t block = block_rows > 0 ? block_rows : data::streaming_block_rows<Scalar>(std::max(rows.input_dim(), rows.target_dim()));
  Matrix<Scalar> x, y;
  const auto read = [&](index_t first, index_t n) {
    const auto idx = data::row_range(first, n);
    rows.read_inputs(idx.data(), n, x);
    if (rows.has_targets()) rows.read_targets(idx.data(), n, y);
    rows.release_rows(idx.data(), n);
    return rows.has_targets() ? &y : &x;
  };
  if (rows.rows() <= block) {
    const Matrix<Scalar>& target = *read(0, rows.rows());
    return evaluate(model, x, target);
  }

  data::Moments target_moments;
  evaluate_detail::ScalarMoments residual_all, target_all;
  double sse = 0, active_sum = 0, max_value = 0;
  std::int64_t active = 0;
  std::vector<double> fired(static_cast<std::size_t>(model.num_latents()), 0.0);
  for (index_t first = 0; first < rows.rows(); first += block) {
    const index_t n = std::min(block, rows.rows() - first);
    const Matrix<Scalar>& target = *read(first, n);
    const auto codes = model.encode(x);
    const Matrix<Scalar> residual = target - model.decode(codes);
    sse += residual.template cast<double>().squaredNorm();
    data::merge_moments(target_moments, data::block_moments(target));
    evaluate_detail::add_elements<Scalar>(residual_all, residual);
    evaluate_detail::add_elements<Scalar>(target_all, target);
    for (std::size_t e = 0; e < codes.values.size(); ++e)
      if (codes.values[e] > Scalar(0)) {
        ++active;
        active_sum += static_cast<double>(codes.values[e]);
        max_value = std::max(max_value, static_cast<double>(codes.values[e]));
        fired[static_cast<std::size_t>(codes.indices[e])] += 1.0;
      }
  }
  const double n_rows = static_cast<double>(rows.rows());
  Evaluation e;
  // Undefined (NaN) without variance in the targets, as explained_variance() (reconstruction.hpp).
  constexpr double undefined = std::numeric_limits<double>::quiet_NaN();
  e.explained_variance = target_moments.sst > 0 ? 1.0 - sse / target_moments.sst : undefined;
  e.explained_variance_reports = target_all.variance() > 0 ? 1.0 - residual_all.variance() / target_all.variance() : undefined;
  e.mse = sse / (n_rows * static_cast<double>(rows.target_dim()));
  e.l0 = static_cast<double>(active) / n_rows;
  for (double& f : fired) f /= n_rows;
  e.activation_frequency = std::move(fired);
  e.alive_latents = alive_latents(e.activation_frequency);
  e.dead_fraction = dead_fraction(e.activation_frequency);
  e.mean_active_activation = active ? active_sum / static_cast<double>(active) : 0.0;
  e.max_activation = max_value;
  e.ev_per_active_latent = ev_per_active_latent(e.explained_variance, e.alive_latents);
  return e;
}

}  // namespace sae::metrics
