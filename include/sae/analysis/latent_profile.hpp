// Per-latent usage on an evaluation set: how often each latent fires, how strongly, and on which
// samples it fires hardest — the raw material of every feature-semantics analysis.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/core/sparse_codes.hpp>

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace sae::analysis {

struct TopSample {
  index_t sample = 0;
  double activation = 0;
};

struct LatentProfile {
  index_t latent = 0;
  index_t rank = 0;               // 1-based rank by activation frequency
  index_t active_samples = 0;     // samples on which it fires (value > 0)
  double frequency = 0;           // active_samples / samples
  double mean_activation = 0;     // mean value over the samples where it fires; 0 if none
  std::vector<TopSample> top;     // strongest activations, descending (ties: lower sample first)
};

// Latents ordered by activation frequency, most frequent first; equal frequencies by index.
inline std::vector<index_t> rank_by_frequency(const std::vector<double>& frequency) {
  std::vector<index_t> order(frequency.size());
  std::iota(order.begin(), order.end(), index_t{0});
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
    return frequency[static_cast<std::size_t>(a)] > frequency[static_cast<std::size_t>(b)];
  });
  return order;
}

// A 1-based inclusive rank range such as "1-20" or "400-512", clipped to the number of latents.
struct RankRange {
  index_t first = 1, last = 20;
  std::string label() const { return std::to_string(first) + "-" + std::to_string(last); }
};

inline RankRange parse_rank_range(const std::string& text) {
  const auto dash = text.find('-');
  try {
    if (dash == std::string::npos || dash == 0) throw std::invalid_argument("");
    std::size_t used_a = 0, used_b = 0;
    const long a = std::stol(text.substr(0, dash), &used_a), b = std::stol(text.substr(dash + 1), &used_b);
    if (used_a != dash || used_b != text.size() - dash - 1 || a < 1 || b < a) throw std::invalid_argument("");
    return {a, b};
  } catch (const std::logic_error&) {
    throw invalid_argument("rank range must look like FIRST-LAST with 1 <= FIRST <= LAST, got '" + text + "'");
  }
}

// Profiles of the latents at ranks [range.first, range.last] (1-based, within the model's
// latents), each with its `top_n` strongest samples.
template <class Scalar>
std::vector<LatentProfile> profile_rank_range(const SparseCodes<Scalar>& codes, const std::vector<index_t>& ranking,
                                              RankRange range, index_t top_n) {
  sae::detail::require(codes.rows > 0, "profile_rank_range()", "no samples");
  sae::detail::require(range.first >= 1 && range.last <= static_cast<index_t>(ranking.size()), "profile_rank_range()",
                       "rank range " + range.label() + " lies outside the model's " + std::to_string(ranking.size()) +
                           " latents");
  sae::detail::require(top_n >= 1, "profile_rank_range()", "top_n must be >= 1, got " + std::to_string(top_n));
  std::vector<std::int32_t> slot(static_cast<std::size_t>(codes.num_latents), -1);
  std::vector<LatentProfile> out;
  for (index_t r = range.first; r <= range.last; ++r) {
    slot[static_cast<std::size_t>(ranking[static_cast<std::size_t>(r - 1)])] = static_cast<std::int32_t>(out.size());
    LatentProfile p;
    p.latent = ranking[static_cast<std::size_t>(r - 1)];
    p.rank = r;
    out.push_back(p);
  }
  std::vector<std::vector<TopSample>> fired(out.size());
  for (index_t i = 0; i < codes.rows; ++i)
    for (index_t s = 0; s < codes.k; ++s) {
      const Scalar v = codes.row_values(i)[s];
      const std::int32_t at = slot[static_cast<std::size_t>(codes.row_indices(i)[s])];
      if (v > Scalar(0) && at >= 0) fired[static_cast<std::size_t>(at)].push_back({i, static_cast<double>(v)});
    }
  for (std::size_t t = 0; t < out.size(); ++t) {
    auto& f = fired[t];
    LatentProfile& p = out[t];
    p.active_samples = static_cast<index_t>(f.size());
    p.frequency = static_cast<double>(f.size()) / static_cast<double>(codes.rows);
    double sum = 0;
    for (const auto& e : f) sum += e.activation;
    p.mean_activation = f.empty() ? 0.0 : sum / static_cast<double>(f.size());
    const auto n = static_cast<std::ptrdiff_t>(std::min<index_t>(top_n, static_cast<index_t>(f.size())));
    std::partial_sort(f.begin(), f.begin() + n, f.end(), [](const TopSample& a, const TopSample& b) {
      return a.activation > b.activation || (a.activation == b.activation && a.sample < b.sample);
    });
    p.top.assign(f.begin(), f.begin() + n);
  }
  return out;
}

}  // namespace sae::analysis
