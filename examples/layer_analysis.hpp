// Pieces shared by the feature-analysis examples (reports 000, 003, 004): their flags, loading two
// layers, training one TopK SAE with a progress line, and Markdown helpers.
#pragma once

#include "common.hpp"

#include <sae/analysis/annotated_layer.hpp>
#include <sae/analysis/cot_patterns.hpp>
#include <sae/analysis/latent_profile.hpp>
#include <sae/analysis/specialization.hpp>

#include <sstream>

namespace sae::examples {

// Trains one TopK SAE with the reports' setup and the grid flags' epochs/batch/lr/seed.
inline sae::TopKAutoencoder<float> train_topk(const sae::data::ActivationSplit& d, index_t k, index_t latents, const GridFlags& flags,
                                              const std::string& label) {
  sae::TopKConfig c = flags.model_options(d.train.rows());
  c.input_dim = d.train.cols(), c.num_latents = latents, c.k = k, c.seed = flags.train.seed;
  sae::TopKAutoencoder<float> model(c);
  auto trainer = sae::make_trainer<sae::TopKAutoencoder<float>>(flags.train, sae::Adam<float>(flags.adam));
  trainer.fit(model, d.train, &d.validation, sae::ProgressPrinter(progress_output(), label));
  return model;
}

using report::join;     // sae/report/text.hpp
using report::md_cell;

// Layer flags of the two-layer examples: the late layer is --data (at --layer/--position when
// 4-D); the early one is --early-data, or --data at --early-layer.
inline void add_early_layer_options(cxxopts::Options& options, const std::string& default_early) {
  // clang-format off
  options.add_options("layers")
    ("samples", "samples.jsonl matching the rows (default: beside --data)", cxxopts::value<std::string>())
    ("early-data", "early layer's activations (2-D)", cxxopts::value<std::string>()->default_value(default_early))
    ("early-layer", "take the early layer from --data (4-D) at this layer and --position instead", cxxopts::value<long>());
  // clang-format on
}

struct TwoLayers {
  std::string samples_path;
  sae::analysis::AnnotatedLayer late, early;
};

// Both layers split alike: --val-fraction if given, else the library's default, seeded by --seed.
inline TwoLayers load_two_layers(const cxxopts::ParseResult& args, const data::DataOptions& d, std::uint64_t seed) {
  TwoLayers t;
  const std::string& data_path = d.data;
  t.samples_path = samples_path_for(args, data_path);
  const auto samples = sae::data::load_samples(t.samples_path);
  const auto late_where = d.slice();
  std::optional<sae::data::LayerPosition> early_where;
  std::string early_path = args["early-data"].as<std::string>();
  if (args.count("early-layer")) {
    early_path = data_path;
    early_where = sae::data::LayerPosition{int_flag(args, "early-layer", 0), late_where ? late_where->position : 0};
  }
  const auto policy = d.split(seed);
  t.late = sae::analysis::load_annotated_layer(data_path, late_where, samples, t.samples_path, policy);
  t.early = sae::analysis::load_annotated_layer(early_path, early_where, samples, t.samples_path, policy);
  return t;
}

// The specialization classifier's flags: how many top samples it reads and the four thresholds.
inline void add_specialization_options(cxxopts::Options& options) {
  // clang-format off
  options.add_options("specialization")
    ("top-samples", "top-activating samples per latent", cxxopts::value<long>()->default_value("20"))
    ("op-dominant", "operation-specialized: top operation's share must exceed this", cxxopts::value<double>()->default_value("0.7"))
    ("op-other", "... and every other operation's share stay below this", cxxopts::value<double>()->default_value("0.3"))
    ("value-dominant", "value-specialized: top operand value's share must exceed this", cxxopts::value<double>()->default_value("0.5"))
    ("value-other", "... and every other value's share stay below this", cxxopts::value<double>()->default_value("0.2"));
  // clang-format on
}

inline sae::analysis::SpecializationThresholds read_specialization_flags(const cxxopts::ParseResult& args) {
  sae::analysis::SpecializationThresholds t{number_flag(args, "op-dominant", 0, 1), number_flag(args, "op-other", 0, 1),
                                            number_flag(args, "value-dominant", 0, 1), number_flag(args, "value-other", 0, 1)};
  int_flag(args, "top-samples", 1, 1000000);
  return t;
}

// A rank-range flag's ranges, each checked to lie within `latents` (the model's size) before
// anything is trained.
inline std::vector<sae::analysis::RankRange> rank_ranges_flag(const cxxopts::ParseResult& args, const std::string& flag,
                                                              index_t latents) {
  std::vector<sae::analysis::RankRange> out;
  for (const auto& r : args[flag].as<std::vector<std::string>>()) {
    if (r.empty()) continue;
    try {
      out.push_back(sae::analysis::parse_rank_range(r));
    } catch (const sae::invalid_argument& e) {
      throw sae::invalid_argument("--" + flag + ": " + e.what());
    }
    check_flag(out.back().last <= latents, "--" + flag + ": rank range " + r + " lies outside the model's " +
                                               std::to_string(latents) + " latents");
  }
  return out;
}

// The specialized latents of a range with their top samples' CoT steps, as Markdown.
inline std::string specialized_md(const sae::analysis::RangeAnalysis& r, const sae::analysis::AnnotatedLayer& layer, std::size_t samples_shown) {
  std::ostringstream md;
  for (std::size_t i = 0; i < r.latents.size(); ++i) {
    if (!r.classes[i].specialized()) continue;
    const auto& p = r.latents[i];
    md << "- **latent " << p.latent << "** (rank " << p.rank << "): " << r.classes[i].label() << " — "
       << fmt("%.2f%%", 100 * p.frequency) << " (" << p.active_samples << (p.active_samples == 1 ? " sample)\n" : " samples)\n");
    for (std::size_t t = 0; t < std::min(samples_shown, p.top.size()); ++t)
      md << "  - " << fmt("%.2f", p.top[t].activation) << ": `"
         << sae::analysis::cot_line(layer.validation_samples[static_cast<std::size_t>(p.top[t].sample)]) << "`\n";
  }
  const std::string s = md.str();
  return s.empty() ? "- none\n" : s;
}

}  // namespace sae::examples
