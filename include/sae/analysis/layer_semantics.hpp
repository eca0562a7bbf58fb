// Report 000's feature semantics of one layer: a trained SAE's most frequent latents on the
// validation rows, their top samples and detected patterns, extra rank ranges, and the summary
// the report compares between an early and a late layer; with its JSON form.
#pragma once

#include <sae/analysis/annotated_layer.hpp>
#include <sae/analysis/latent_profile.hpp>
#include <sae/analysis/semantics.hpp>
#include <sae/io/json.hpp>
#include <sae/metrics/evaluate.hpp>

#include <string>
#include <utility>
#include <vector>

namespace sae::analysis {

struct LayerSemantics {
  std::string label, source;
  metrics::Evaluation val;
  std::vector<LatentProfile> top;  // the top-N latents by frequency
  std::vector<LatentPatterns> top_patterns;
  std::vector<std::pair<RankRange, std::vector<LatentProfile>>> ranges;
  SemanticsSummary summary;
};

template <class Model>
LayerSemantics layer_semantics(const std::string& label, const AnnotatedLayer& layer, const Model& model,
                               index_t top_latents, const std::vector<RankRange>& ranges, index_t top_samples,
                               PatternRule rule) {
  LayerSemantics s;
  s.label = label;
  s.source = layer.data.source;
  s.val = metrics::evaluate(model, layer.data.validation);
  const auto codes = model.encode(layer.data.validation);
  const auto ranking = rank_by_frequency(s.val.activation_frequency);
  s.top = profile_rank_range(codes, ranking, {1, top_latents}, top_samples);
  for (const auto& p : s.top) s.top_patterns.push_back(detect_patterns(p, layer.validation_features, rule));
  s.summary = summarize_semantics(s.top, s.top_patterns);
  for (const auto& r : ranges) s.ranges.emplace_back(r, profile_rank_range(codes, ranking, r, top_samples));
  return s;
}

inline io::Json to_json(const LayerSemantics& s, const AnnotatedLayer& layer, PatternRule rule) {
  io::Json j = io::Json::object();
  j["layer"] = s.label;
  j["data"] = s.source;
  j["validation"] = metrics::to_json(s.val);
  j["summary"] = io::Json::object();
  j["summary"]["latents"] = s.summary.latents;
  j["summary"]["with_pattern"] = s.summary.with_pattern;
  j["summary"]["mean_frequency"] = s.summary.mean_frequency;
  j["summary"]["min_mean_activation"] = s.summary.min_mean_activation;
  j["summary"]["max_mean_activation"] = s.summary.max_mean_activation;
  const auto latents_json = [&](const std::vector<LatentProfile>& ps) {
    io::Json a = io::Json::array();
    for (const auto& p : ps) {
      const auto pats = detect_patterns(p, layer.validation_features, rule);
      io::Json e = io::Json::object();
      e["rank"] = p.rank;
      e["latent"] = p.latent;
      e["frequency"] = p.frequency;
      e["active_samples"] = p.active_samples;
      e["mean_activation"] = p.mean_activation;
      e["patterns"] = io::Json::array();
      for (const auto& x : pats.patterns) e["patterns"].push_back(x);
      e["keywords"] = io::Json::array();
      for (const auto& x : pats.keywords) e["keywords"].push_back(x);
      e["top_samples"] = top_samples_json(p, layer);
      a.push_back(e);
    }
    return a;
  };
  j["top_latents"] = latents_json(s.top);
  j["rank_ranges"] = io::Json::object();
  for (const auto& [range, ps] : s.ranges) j["rank_ranges"][range.label()] = latents_json(ps);
  return j;
}

}  // namespace sae::analysis
