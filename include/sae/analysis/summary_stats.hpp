// Descriptive statistics of a list of values (sweep summaries).
#pragma once

#include <sae/core/error.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace sae::analysis {

struct Summary {
  std::size_t count = 0;      // defined values described
  std::size_t undefined = 0;  // NaN values (undefined metrics) left out; all NaN: the stats are NaN too
  double mean = 0, std = 0, min = 0, max = 0;  // std: population standard deviation
  double median = 0;                            // the middle value, or the mean of the two middle ones
};

inline Summary describe(const std::vector<double>& values) {
  sae::detail::require(!values.empty(), "describe()", "no values");
  Summary s;
  std::vector<double> v;
  for (double x : values)
    if (std::isnan(x)) ++s.undefined;
    else v.push_back(x);
  if (v.empty()) {
    s.mean = s.std = s.min = s.max = s.median = std::nan("");
    return s;
  }
  s.count = v.size();
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(s.std / static_cast<double>(v.size()));
  std::vector<double> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t mid = sorted.size() / 2;
  s.median = sorted.size() % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return s;
}

}  // namespace sae::analysis
