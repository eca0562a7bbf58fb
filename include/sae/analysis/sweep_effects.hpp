// Report 002's analysis of a layer x position sweep: each layer's and each position's mean EV and
// dead fraction (over the other factor and every K x latent_dim), the best SAE of each layer, and
// the two-way interaction of every (layer, position) cell's mean EV,
//   interaction = cell - layer mean - position mean + grand mean,
// with the cell where it is largest in magnitude (the first such cell in layer, then position order).
#pragma once

#include <sae/core/types.hpp>
#include <sae/train/sweep.hpp>

#include <cmath>
#include <cstddef>
#include <optional>
#include <vector>

namespace sae::analysis {

// Mean of `metric` over the results of (layer, position, K) where each given part matches, leaving
// out undefined values (NaN); 0 when none matches, NaN when every match is undefined.
template <class Metric>
double sweep_mean(const std::vector<SweepResult>& results, std::optional<index_t> layer, std::optional<index_t> position,
                  std::optional<index_t> k, Metric metric) {
  double sum = 0;
  int n = 0, undefined = 0;
  for (const auto& r : results)
    if ((!layer || r.slice->layer == *layer) && (!position || r.slice->position == *position) && (!k || r.k == *k)) {
      const double v = metric(r);
      if (std::isnan(v)) ++undefined;
      else sum += v, ++n;
    }
  return n ? sum / n : undefined ? std::nan("") : 0.0;
}

struct LayerEffect {
  index_t layer = 0;
  double mean_ev = 0, mean_dead = 0;
  std::size_t best = 0;  // index into the results: this layer's highest EV
};

struct PositionEffect {
  index_t position = 0;
  double mean_ev = 0, mean_dead = 0;
};

struct SweepEffects {
  std::vector<LayerEffect> layers;
  std::vector<PositionEffect> positions;
  double grand_ev = 0;                          // mean EV over every SAE
  std::vector<std::vector<double>> cell_ev;      // [layer][position]: mean EV over K x latent_dim
  std::vector<std::vector<double>> interaction;  // [layer][position], as above
  double largest_interaction = 0;
  data::LayerPosition largest_cell{0, 0};
};

inline double ev_of(const SweepResult& r) { return r.val.explained_variance; }
inline double dead_of(const SweepResult& r) { return r.val.dead_fraction; }

// The effects of `layers` x `positions` over `results` (each result has a slice).
inline SweepEffects sweep_effects(const std::vector<SweepResult>& results, const std::vector<index_t>& layers,
                                  const std::vector<index_t>& positions) {
  SweepEffects e;
  e.grand_ev = sweep_mean(results, std::nullopt, std::nullopt, std::nullopt, ev_of);
  for (index_t l : layers) {
    LayerEffect le{l, sweep_mean(results, l, std::nullopt, std::nullopt, ev_of),
                   sweep_mean(results, l, std::nullopt, std::nullopt, dead_of), 0};
    const SweepResult* best = nullptr;
    for (std::size_t i = 0; i < results.size(); ++i)
      if (results[i].slice->layer == l && !std::isnan(ev_of(results[i])) && (!best || ev_of(results[i]) > ev_of(*best)))
        best = &results[i], le.best = i;
    e.layers.push_back(le);
  }
  for (index_t p : positions)
    e.positions.push_back({p, sweep_mean(results, std::nullopt, p, std::nullopt, ev_of),
                           sweep_mean(results, std::nullopt, p, std::nullopt, dead_of)});
  for (std::size_t a = 0; a < layers.size(); ++a) {
    e.cell_ev.emplace_back();
    e.interaction.emplace_back();
    for (std::size_t b = 0; b < positions.size(); ++b) {
      const double cell = sweep_mean(results, layers[a], positions[b], std::nullopt, ev_of);
      const double inter = cell - e.layers[a].mean_ev - e.positions[b].mean_ev + e.grand_ev;
      e.cell_ev.back().push_back(cell);
      e.interaction.back().push_back(inter);
      if (std::abs(inter) > std::abs(e.largest_interaction)) e.largest_interaction = inter, e.largest_cell = {layers[a], positions[b]};
    }
  }
  return e;
}

}  // namespace sae::analysis
