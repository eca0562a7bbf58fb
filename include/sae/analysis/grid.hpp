// Report 001's analysis of a K x latent_dim grid of trained SAEs: the Pareto front (maximise EV,
// minimise K, minimise latent_dim) and the report's qualitative findings, checked on the data.
#pragma once

#include <sae/analysis/pareto.hpp>
#include <sae/core/types.hpp>
#include <sae/metrics/evaluate.hpp>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace sae::analysis {

struct GridAnalysis {
  std::vector<std::pair<index_t, index_t>> order;  // (K, latent_dim), K-major: the points' order below
  ParetoResult pareto;
  index_t on_front = 0;
  bool ev_rises_with_k = true;     // strictly, at every latent_dim
  bool dead_falls_with_k = true;   // strictly, at every latent_dim
  bool dead_rises_with_d = true;   // strictly, at every K
  double ev_change_over_k = 0;     // mean EV change from the smallest to the largest K, at fixed latent_dim
  double ev_change_over_d = 0;     // ... from the smallest to the largest latent_dim, at fixed K
  bool d_matters_less_than_k() const { return std::abs(ev_change_over_d) < std::abs(ev_change_over_k); }
};

// "K=5, d=512"
inline std::string grid_label(index_t k, index_t latents) {
  return "K=" + std::to_string(k) + ", d=" + std::to_string(latents);
}

namespace detail {
// Whether v rises (sign > 0) or falls (sign < 0) strictly; never shown by an undefined value (NaN).
inline bool strictly_monotone(const std::vector<double>& v, int sign) {
  for (std::size_t i = 1; i < v.size(); ++i)
    if (!((v[i] - v[i - 1]) * sign > 0)) return false;
  return true;
}
}  // namespace detail

// `ks` and `latents` ascending; eval(k, d) is the validation Evaluation of that grid point.
template <class Eval>
GridAnalysis analyse_grid(const std::vector<index_t>& ks, const std::vector<index_t>& latents, Eval&& eval) {
  sae::detail::require(!ks.empty() && !latents.empty(), "analyse_grid()", "the grid needs at least one K and one latent_dim");
  GridAnalysis g;
  std::vector<std::vector<double>> points;
  for (index_t k : ks)
    for (index_t d : latents) {
      g.order.emplace_back(k, d);
      points.push_back({eval(k, d).explained_variance, static_cast<double>(k), static_cast<double>(d)});
    }
  g.pareto = pareto_front(points, {{"EV", Direction::maximize}, {"K", Direction::minimize}, {"latent_dim", Direction::minimize}});
  g.on_front = static_cast<index_t>(std::count(g.pareto.on_front.begin(), g.pareto.on_front.end(), true));
  for (index_t d : latents) {
    std::vector<double> ev, dead;
    for (index_t k : ks) ev.push_back(eval(k, d).explained_variance), dead.push_back(eval(k, d).dead_fraction);
    g.ev_rises_with_k &= detail::strictly_monotone(ev, +1);
    g.dead_falls_with_k &= detail::strictly_monotone(dead, -1);
    g.ev_change_over_k += ev.back() - ev.front();
  }
  for (index_t k : ks) {
    std::vector<double> ev, dead;
    for (index_t d : latents) ev.push_back(eval(k, d).explained_variance), dead.push_back(eval(k, d).dead_fraction);
    g.dead_rises_with_d &= detail::strictly_monotone(dead, +1);
    g.ev_change_over_d += ev.back() - ev.front();
  }
  g.ev_change_over_k /= static_cast<double>(latents.size());
  g.ev_change_over_d /= static_cast<double>(ks.size());
  return g;
}

}  // namespace sae::analysis
