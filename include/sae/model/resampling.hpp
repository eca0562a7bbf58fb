// Dead-latent resampling, after Anthropic's "Towards Monosemanticity" (2023), for a model that
// sees a stream of batches: at a resampling point, each latent dead for the dead window is given
// the direction of an input this model reconstructs badly, drawn from the current batch with
// probability proportional to its squared reconstruction error. Its decoder row becomes that
// residual's unit direction, its encoder row the same direction scaled to 0.2 x the mean encoder
// row norm of the live latents, its encoder bias 0. Unlike the paper it samples from the batch
// (not a pass over the data set) and leaves the optimizer's moments of those rows as they are
// (the trainer owns them; a dead latent's moments hold only AuxK's small gradients, if any).
#pragma once

#include <sae/core/rng.hpp>
#include <sae/core/types.hpp>
#include <sae/model/autoencoder_parameters.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace sae {

// Resamples the latents marked in `dead` from the rows of x (reconstructed as x_hat); returns how
// many were resampled (none when every residual is zero).
template <class Scalar>
index_t resample_dead_latents(AutoencoderParameters<Scalar>& p, const std::vector<char>& dead, const Matrix<Scalar>& x,
                              const Matrix<Scalar>& x_hat, Rng& rng) {
  const Matrix<Scalar> e = x - x_hat;
  std::vector<double> cumulative(static_cast<std::size_t>(e.rows()));
  double total = 0;
  for (index_t i = 0; i < e.rows(); ++i) cumulative[static_cast<std::size_t>(i)] = total += e.row(i).template cast<double>().squaredNorm();
  if (!(total > 0)) return 0;
  double alive_norm = 0;
  index_t alive = 0;
  for (index_t j = 0; j < p.w_enc.rows(); ++j)
    if (!dead[static_cast<std::size_t>(j)]) alive_norm += p.w_enc.row(j).template cast<double>().norm(), ++alive;
  const double scale = 0.2 * (alive > 0 ? alive_norm / static_cast<double>(alive) : 1.0);
  index_t resampled = 0;
  for (index_t j = 0; j < p.w_enc.rows(); ++j) {
    if (!dead[static_cast<std::size_t>(j)]) continue;
    const double u = rng.uniform(0.0, total);
    const auto row = std::min<index_t>(
        static_cast<index_t>(std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin()), e.rows() - 1);
    const auto direction = e.row(row).template cast<double>().normalized();
    p.w_dec.row(j) = direction.template cast<Scalar>();
    p.w_enc.row(j) = (direction * scale).template cast<Scalar>();
    p.b_enc(j) = 0;
    ++resampled;
  }
  return resampled;
}

}  // namespace sae
