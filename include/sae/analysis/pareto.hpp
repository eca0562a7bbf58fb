// Pareto analysis over any number of objectives, each maximised or minimised, as report 001 uses
// it (maximise EV, minimise K, minimise latent_dim).
#pragma once

#include <sae/core/error.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace sae::analysis {

enum class Direction { maximize, minimize };

struct Objective {
  std::string name;
  Direction direction;
};

struct ParetoResult {
  std::vector<bool> on_front;                   // per point
  std::vector<std::vector<int>> dominated_by;   // per point, the points that dominate it
};

// a dominates b: at least as good on every objective and strictly better on one. An undefined
// value (NaN) on either side decides nothing: neither dominates.
inline bool dominates(const std::vector<double>& a, const std::vector<double>& b, const std::vector<Objective>& objectives) {
  bool strictly = false;
  for (std::size_t o = 0; o < objectives.size(); ++o) {
    if (std::isnan(a[o]) || std::isnan(b[o])) return false;
    const double better = objectives[o].direction == Direction::maximize ? a[o] - b[o] : b[o] - a[o];
    if (better < 0) return false;
    if (better > 0) strictly = true;
  }
  return strictly;
}

// points[i][o] is point i's value on objective o. A point with an undefined value (NaN) is not on
// the front and dominates nothing.
inline ParetoResult pareto_front(const std::vector<std::vector<double>>& points, const std::vector<Objective>& objectives) {
  sae::detail::require(!objectives.empty(), "pareto_front()", "needs at least one objective");
  for (std::size_t i = 0; i < points.size(); ++i)
    sae::detail::require(points[i].size() == objectives.size(), "pareto_front()",
                    "point " + std::to_string(i) + " has " + std::to_string(points[i].size()) + " values for " +
                        std::to_string(objectives.size()) + " objectives");
  ParetoResult r;
  r.on_front.assign(points.size(), true);
  r.dominated_by.resize(points.size());
  for (std::size_t i = 0; i < points.size(); ++i)
    for (double x : points[i])
      if (std::isnan(x)) r.on_front[i] = false;
  for (std::size_t i = 0; i < points.size(); ++i)
    for (std::size_t j = 0; j < points.size(); ++j)
      if (i != j && dominates(points[j], points[i], objectives)) {
        r.on_front[i] = false;
        r.dominated_by[i].push_back(static_cast<int>(j));
      }
  return r;
}

}  // namespace sae::analysis
