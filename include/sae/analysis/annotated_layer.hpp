// One layer's activations with the text behind them, as the feature analyses use them: the split
// rows and, for each validation row, its sample (samples.jsonl, paired by file row, so any split
// and any row count work) and what its CoT contains.
#pragma once

#include <sae/analysis/cot_patterns.hpp>
#include <sae/analysis/latent_profile.hpp>
#include <sae/data/activation_split.hpp>
#include <sae/data/samples.hpp>
#include <sae/io/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace sae::analysis {

struct AnnotatedLayer {
  data::ActivationSplit data;
  std::vector<data::Sample> validation_samples;  // validation row i is file row data.validation_rows[i]
  std::vector<CotFeatures> validation_features;
};

// `samples` has one entry per row of `path` (checked, naming both files).
inline AnnotatedLayer load_annotated_layer(const std::string& path, std::optional<data::LayerPosition> where,
                                           const std::vector<data::Sample>& samples, const std::string& samples_path,
                                           const data::SplitPolicy& policy) {
  data::ActivationFile file = data::load_activation_file(path, where);
  data::require_matching_rows(samples, file.all.rows(), samples_path, path);
  AnnotatedLayer layer;
  layer.data = data::split_activations(file.all, file.source, policy, std::move(file.metadata));
  layer.validation_samples = data::samples_of_rows(samples, layer.data.validation_rows);
  for (const auto& sample : layer.validation_samples) layer.validation_features.push_back(cot_features(sample));
  return layer;
}

// The CoT steps of a sample on one line: "48/2=24 | 48+24=72".
inline std::string cot_line(const data::Sample& s) {
  std::string out;
  for (const auto& step : s.cot_steps) out += (out.empty() ? "" : " | ") + step.text();
  return out.empty() ? "(no annotated steps)" : out;
}

// A latent's top samples: validation row, file row, activation and CoT steps.
inline io::Json top_samples_json(const LatentProfile& p, const AnnotatedLayer& layer) {
  io::Json top = io::Json::array();
  for (const auto& t : p.top) {
    io::Json e = io::Json::object();
    e["validation_row"] = t.sample;
    e["sample"] = layer.data.validation_rows[static_cast<std::size_t>(t.sample)];
    e["activation"] = t.activation;
    e["cot"] = cot_line(layer.validation_samples[static_cast<std::size_t>(t.sample)]);
    top.push_back(e);
  }
  return top;
}

}  // namespace sae::analysis
