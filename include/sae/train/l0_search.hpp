// JumpReLU at a target L0: JumpReLU's sparsity comes from its penalty, not from a K, so comparing it
// with TopK at K means searching its settings for the L0 K gives. One "sparsity pressure" s in
// [-6, 6] is bisected from s = 0 (higher s, lower L0): within [-3, 3] it is lambda = 10^s with the
// thresholds started at K's L0; beyond, lambda stays at 1e3 (or 1e-3) and the thresholds start at
// the L0 K x 2^-(|s| - 3) above, K x 2^(|s| - 3) below, since in a short run the thresholds cannot
// travel far from where they start. The search stops once an L0 is within `tolerance` x K.
#pragma once

#include <sae/core/types.hpp>
#include <sae/model/jumprelu_autoencoder.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace sae {

struct L0SearchStep {
  JumpReluConfig config;  // what was trained
  double l0 = 0;          // the L0 it reached (as the caller measured it: validation rows)
};

struct L0SearchResult {
  std::vector<L0SearchStep> steps;  // in the order trained
  std::size_t best = 0;             // the step closest to the target (the first of equals)
  bool matched = false;             // whether that step is within tolerance
};

// The config of pressure s for target L0 `k` (the schedule above), from `c`'s other settings.
inline JumpReluConfig jumprelu_config_at_pressure(JumpReluConfig c, index_t k, double s) {
  c.sparsity_coefficient = std::pow(10.0, std::clamp(s, -3.0, 3.0));
  const double start = static_cast<double>(k) * std::pow(2.0, std::abs(s) > 3 ? (s > 0 ? 3 - s : -3 - s) : 0.0);
  c.initial_l0 = std::clamp<index_t>(std::llround(start), 1, c.num_latents);
  return c;
}

// Up to `runs` trainings: `train_l0(config)` trains one JumpReLU config and returns the L0 it reached.
template <class TrainL0>
L0SearchResult search_jumprelu_l0(const JumpReluConfig& base, index_t k, int runs, double tolerance, TrainL0&& train_l0) {
  L0SearchResult out;
  double lo = -6, hi = 6, s = 0, best_gap = std::numeric_limits<double>::infinity();
  const double target = static_cast<double>(k);
  for (int r = 1; r <= runs; ++r, s = (lo + hi) / 2) {
    const JumpReluConfig c = jumprelu_config_at_pressure(base, k, s);
    const double l0 = train_l0(c);
    out.steps.push_back({c, l0});
    const double gap = std::abs(l0 - target);
    if (gap < best_gap) out.best = out.steps.size() - 1, best_gap = gap;
    if (gap <= tolerance * target) break;
    (l0 > target ? lo : hi) = s;
  }
  out.matched = best_gap <= tolerance * target;
  return out;
}

}  // namespace sae
