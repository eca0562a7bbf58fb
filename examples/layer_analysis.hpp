// Pieces shared by the feature-analysis examples (reports 000, 003, 004): loading one layer's
// activations with the samples behind its rows, training one TopK SAE with a progress line, and
// profiling latents over rank ranges on the validation rows.
#pragma once

#include "common.hpp"

#include <sae/analysis/cot_patterns.hpp>
#include <sae/analysis/latent_profile.hpp>

#include <chrono>
#include <sstream>

namespace sae::examples {

// One layer's data: the split rows and, for the validation rows, the samples and what their CoT
// contains (validation row i is sample validation_offset + i of samples.jsonl).
struct LayerData {
  SplitData data;
  std::vector<sae::data::Sample> validation_samples;
  std::vector<sae::analysis::CotFeatures> validation_features;
};

// Loads `path` (2-D, or 4-D at `where`) and its samples; the reports' head split is required,
// since the samples are matched to validation rows by position.
inline LayerData load_layer(const std::string& path, std::optional<sae::data::LayerPosition> where,
                            const std::vector<sae::data::Sample>& samples, const std::string& samples_path) {
  const sae::io::NpyMmap view(path);
  if (view.rank() == 4 && !where) where = sae::data::LayerPosition{0, 0};
  const sae::Matrix<float> all = sae::data::gather_activations<float>(view, where);
  sae::data::require_matching_rows(samples, all.rows(), samples_path, path);
  check_flag(all.rows() > sae::data::kReportsTrainRows,
             path + " has " + std::to_string(all.rows()) + " rows; feature analysis needs the reports' split (more than " +
                 std::to_string(sae::data::kReportsTrainRows) + " rows, the first 5,978 train)");
  LayerData layer;
  layer.data = split_rows(all,
                          path + (where ? " (layer " + std::to_string(where->layer) + ", position " +
                                              std::to_string(where->position) + ")"
                                        : ""),
                          std::nullopt, 0);
  for (index_t i = sae::data::kReportsTrainRows; i < all.rows(); ++i) {
    layer.validation_samples.push_back(samples[static_cast<std::size_t>(i)]);
    layer.validation_features.push_back(sae::analysis::cot_features(samples[static_cast<std::size_t>(i)]));
  }
  return layer;
}

// "samples.jsonl beside the data" unless --samples says otherwise; required here.
inline std::string samples_path_for(const cxxopts::ParseResult& args, const std::string& data_path) {
  return args.count("samples") ? args["samples"].as<std::string>()
                               : (std::filesystem::path(data_path).parent_path() / "samples.jsonl").string();
}

// Per-epoch progress line for one model of a multi-model run.
template <class Model>
struct EpochProgress {
  std::string label;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  bool on_epoch_end(const sae::EpochStats& s, const Model&) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    progress_line(label + " epoch " + std::to_string(s.epoch) + "/" + std::to_string(s.epochs) + "  loss " +
                      fmt("%.5f", s.train_loss) + "  val EV " + fmt("%.4f", s.validation_ev.value_or(0.0)) + "  " +
                      fmt("%.1fs", elapsed),
                  s.epoch == s.epochs);
    return false;
  }
};

// Trains one TopK SAE with the reports' setup and the grid flags' epochs/batch/lr/seed.
inline sae::TopKAutoencoder<float> train_topk(const SplitData& d, index_t k, index_t latents, const GridFlags& flags,
                                              const std::string& label) {
  sae::TopKAutoencoder<float> model(
      sae::TopKConfig{d.train.cols(), latents, k, sae::Selection::value, false, flags.train.seed});
  auto trainer = sae::make_trainer<sae::TopKAutoencoder<float>>(flags.train, sae::Adam<float>(flags.adam));
  trainer.fit(model, d.train, &d.validation, EpochProgress<sae::TopKAutoencoder<float>>{label});
  return model;
}

// The CoT steps of a sample on one line: "48/2=24 | 48+24=72".
inline std::string cot_line(const sae::data::Sample& s) {
  std::string out;
  for (const auto& step : s.cot_steps) out += (out.empty() ? "" : " | ") + step.text();
  return out.empty() ? "(no annotated steps)" : out;
}

// A Markdown-safe cell: pipes escaped, newlines flattened.
inline std::string md_cell(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out;
}

inline std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

inline sae::io::Json top_samples_json(const sae::analysis::LatentProfile& p, const LayerData& layer) {
  sae::io::Json top = sae::io::Json::array();
  for (const auto& t : p.top) {
    sae::io::Json e = sae::io::Json::object();
    e["validation_row"] = t.sample;
    e["sample"] = t.sample + sae::data::kReportsTrainRows;
    e["activation"] = t.activation;
    e["cot"] = cot_line(layer.validation_samples[static_cast<std::size_t>(t.sample)]);
    top.push_back(e);
  }
  return top;
}

}  // namespace sae::examples
