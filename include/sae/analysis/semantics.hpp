// Report 000's feature-semantics heuristics: a latent shows a pattern (an arithmetic operation, or
// round numbers) when at least `min_samples` of its top-activating samples show it; question
// keywords are counted the same way but reported apart, since nearly every GSM8K question asks
// "how many" and they would make every latent look interpretable.
#pragma once

#include <sae/analysis/cot_patterns.hpp>
#include <sae/analysis/latent_profile.hpp>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

namespace sae::analysis {

struct PatternRule {
  index_t min_samples = 3;  // the report's ">= 3 samples"
};

struct LatentPatterns {
  std::vector<std::string> patterns;  // "addition", ..., "round numbers"
  std::vector<std::string> keywords;
  bool has_pattern() const { return !patterns.empty(); }
};

// `features[s]` describes sample s; the latent's top samples index into it.
inline LatentPatterns detect_patterns(const LatentProfile& latent, const std::vector<CotFeatures>& features,
                                      PatternRule rule = {}) {
  const auto count = [&](auto&& shows) {
    index_t n = 0;
    for (const auto& t : latent.top) n += shows(features.at(static_cast<std::size_t>(t.sample))) ? 1 : 0;
    return n;
  };
  LatentPatterns out;
  for (Operation op : kOperations)
    if (count([op](const CotFeatures& f) { return f.has(op); }) >= rule.min_samples) out.patterns.push_back(name(op));
  if (count([](const CotFeatures& f) { return f.round_number; }) >= rule.min_samples) out.patterns.push_back("round numbers");
  for (const auto& k : cot_keywords())
    if (count([&k](const CotFeatures& f) { return f.has_keyword(k); }) >= rule.min_samples) out.keywords.push_back(k);
  return out;
}

// The report's per-layer summary line.
struct SemanticsSummary {
  index_t latents = 0;
  index_t with_pattern = 0;
  double mean_frequency = 0;
  double min_mean_activation = 0, max_mean_activation = 0;
};

inline SemanticsSummary summarize_semantics(const std::vector<LatentProfile>& latents,
                                            const std::vector<LatentPatterns>& patterns) {
  sae::detail::require(latents.size() == patterns.size(), "summarize_semantics()", "one pattern set per latent expected");
  SemanticsSummary s;
  s.latents = static_cast<index_t>(latents.size());
  if (latents.empty()) return s;
  s.min_mean_activation = std::numeric_limits<double>::infinity();
  s.max_mean_activation = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < latents.size(); ++i) {
    s.with_pattern += patterns[i].has_pattern() ? 1 : 0;
    s.mean_frequency += latents[i].frequency / static_cast<double>(latents.size());
    s.min_mean_activation = std::min(s.min_mean_activation, latents[i].mean_activation);
    s.max_mean_activation = std::max(s.max_mean_activation, latents[i].mean_activation);
  }
  return s;
}

}  // namespace sae::analysis
