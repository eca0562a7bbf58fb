// JumpReLU's threshold gradient on the CPU (model/jumprelu_autoencoder.hpp has the formulas): per
// sample, the latents within eps/2 of their threshold with their share of dL/dtheta.
#pragma once

#include <sae/config.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/types.hpp>

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace sae::ops {

// bands[i]: (j, -dL/dz_ij * theta_j / eps + l0_share) for every latent j with |pre_ij - theta_j| <
// half (= eps / 2), where dL/dz_ij = g_i . w_dec_j. Returns how many pre_ij exceed theta_j (the
// batch's L0 count). Per sample in parallel; the caller sums the bands in sample order, so the
// result does not depend on the thread count.
template <class Scalar>
std::int64_t threshold_band(cpu, const Matrix<Scalar>& pre, const Vector<Scalar>& theta, const Matrix<Scalar>& g,
                            const Matrix<Scalar>& w_dec, Scalar half, Scalar inv_eps, Scalar l0_share,
                            std::vector<std::vector<std::pair<std::int32_t, Scalar>>>& bands) {
  const index_t rows = pre.rows(), f = pre.cols();
  bands.resize(static_cast<std::size_t>(rows));
  std::int64_t active = 0;
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static) reduction(+ : active)
#endif
  for (index_t i = 0; i < rows; ++i) {
    auto& band = bands[static_cast<std::size_t>(i)];
    band.clear();
    for (index_t j = 0; j < f; ++j) {
      const Scalar v = pre(i, j), t = theta[j];
      active += v > t ? 1 : 0;
      if (std::abs(v - t) < half) {
        const Scalar dz = g.row(i).dot(w_dec.row(j));  // dL/dz_ij
        band.emplace_back(static_cast<std::int32_t>(j), -dz * t * inv_eps + l0_share);
      }
    }
  }
  return active;
}

}  // namespace sae::ops
