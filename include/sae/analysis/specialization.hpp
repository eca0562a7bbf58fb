// Reports 003/004's specialization classifier over a latent's top-activating samples, and the
// rank-range taxonomy built on it. Thresholds are the reports' and are parameters:
//   operation-specialized: one operation in more than 70% of the samples, every other in under 30%;
//   value-specialized:     one operand value in more than 50% of the samples, every other in under 20%;
//   highly specialized:    both.
// A sample counts toward every operation its CoT uses and every distinct operand value it contains.
#pragma once

#include <sae/analysis/annotated_layer.hpp>
#include <sae/io/json.hpp>
#include <sae/metrics/evaluate.hpp>
#include <sae/analysis/cot_patterns.hpp>
#include <sae/analysis/latent_profile.hpp>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sae::analysis {

struct SpecializationThresholds {
  double operation_dominant = 0.70;  // the top operation's share must exceed this
  double operation_other = 0.30;     // every other operation's share must stay below this
  double value_dominant = 0.50;
  double value_other = 0.20;
};

enum class SpecializationKind { none, general, operation, value, highly };

inline const char* name(SpecializationKind k) {
  switch (k) {
    case SpecializationKind::none: return "no samples";
    case SpecializationKind::general: return "general";
    case SpecializationKind::operation: return "operation-specialized";
    case SpecializationKind::value: return "value-specialized";
    case SpecializationKind::highly: return "highly specialized";
  }
  return "?";
}

struct Specialization {
  SpecializationKind kind = SpecializationKind::none;
  index_t samples = 0;
  std::array<double, 4> operation_share{};  // indexed by Operation
  std::optional<Operation> top_operation;   // set when some sample has an operation
  std::string top_value;                    // most common operand value ("" if none)
  double top_value_share = 0;
  double second_value_share = 0;

  bool specialized() const {
    return kind == SpecializationKind::operation || kind == SpecializationKind::value || kind == SpecializationKind::highly;
  }
  // "multiplication", "value 100", "addition + value 100", or the kind's name.
  std::string label() const {
    const std::string op = top_operation ? name(*top_operation) : "";
    switch (kind) {
      case SpecializationKind::operation: return op;
      case SpecializationKind::value: return "value " + top_value;
      case SpecializationKind::highly: return op + " + value " + top_value;
      default: return name(kind);
    }
  }
};

// Classifies from the CoT features of the samples (usually a latent's top-activating ones).
inline Specialization classify_samples(const std::vector<const CotFeatures*>& samples,
                                       const SpecializationThresholds& t = {}) {
  Specialization s;
  s.samples = static_cast<index_t>(samples.size());
  if (samples.empty()) return s;
  const double n = static_cast<double>(samples.size());
  std::map<std::string, index_t> value_count;
  std::array<index_t, 4> op_count{};
  for (const CotFeatures* f : samples) {
    for (Operation op : kOperations) op_count[static_cast<std::size_t>(op)] += f->has(op) ? 1 : 0;
    for (const auto& v : f->operands) ++value_count[v];  // operands are distinct per sample
  }
  for (std::size_t o = 0; o < 4; ++o) s.operation_share[o] = static_cast<double>(op_count[o]) / n;
  // The dominant operation; ties resolve to the first in kOperations, which cannot change the
  // verdict since a tied second share would fail the "other" bound.
  std::size_t best = 0;
  for (std::size_t o = 1; o < 4; ++o)
    if (s.operation_share[o] > s.operation_share[best]) best = o;
  if (s.operation_share[best] > 0) s.top_operation = kOperations[best];
  bool op_specialized = s.operation_share[best] > t.operation_dominant;
  for (std::size_t o = 0; o < 4; ++o)
    if (o != best && !(s.operation_share[o] < t.operation_other)) op_specialized = false;

  std::vector<std::pair<index_t, std::string>> values;  // (count, value), most common first
  for (const auto& [v, c] : value_count) values.emplace_back(c, v);
  std::stable_sort(values.begin(), values.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  if (!values.empty()) {
    s.top_value = values[0].second;
    s.top_value_share = static_cast<double>(values[0].first) / n;
    s.second_value_share = values.size() > 1 ? static_cast<double>(values[1].first) / n : 0.0;
  }
  const bool value_specialized = s.top_value_share > t.value_dominant && s.second_value_share < t.value_other;
  s.kind = op_specialized && value_specialized ? SpecializationKind::highly
           : op_specialized                   ? SpecializationKind::operation
           : value_specialized                ? SpecializationKind::value
                                              : SpecializationKind::general;
  return s;
}

// Classifies a profiled latent from its top samples; `features[s]` describes sample s.
inline Specialization classify_latent(const LatentProfile& latent, const std::vector<CotFeatures>& features,
                                      const SpecializationThresholds& t = {}) {
  std::vector<const CotFeatures*> samples;
  for (const auto& top : latent.top) samples.push_back(&features.at(static_cast<std::size_t>(top.sample)));
  return classify_samples(samples, t);
}

// One row of report 004's taxonomy table: a rank range's latents (those that fire at all) split
// into specialized and general, with their frequency span.
struct RangeTaxonomy {
  RankRange range;
  index_t latents = 0;  // latents in the range that fire on at least one sample
  index_t dead = 0;     // latents in the range that never fire (not classified)
  index_t specialized = 0;
  index_t general = 0;
  std::array<index_t, 5> by_kind{};  // indexed by SpecializationKind
  double min_frequency = 0, max_frequency = 0;
  double specialized_rate() const { return latents ? static_cast<double>(specialized) / static_cast<double>(latents) : 0.0; }
};

inline RangeTaxonomy taxonomy(RankRange range, const std::vector<LatentProfile>& latents,
                              const std::vector<Specialization>& classes) {
  sae::detail::require(latents.size() == classes.size(), "taxonomy()", "one classification per latent expected");
  RangeTaxonomy t;
  t.range = range;
  bool first = true;
  for (std::size_t i = 0; i < latents.size(); ++i) {
    if (latents[i].active_samples == 0) {
      ++t.dead;
      continue;
    }
    ++t.latents;
    ++t.by_kind[static_cast<std::size_t>(classes[i].kind)];
    (classes[i].specialized() ? t.specialized : t.general) += 1;
    t.min_frequency = first ? latents[i].frequency : std::min(t.min_frequency, latents[i].frequency);
    t.max_frequency = first ? latents[i].frequency : std::max(t.max_frequency, latents[i].frequency);
    first = false;
  }
  return t;
}

// A rank range analysed whole: its latents profiled (each with its `top_n` strongest samples),
// each classified from those samples (`features[s]` describes validation sample s), and the
// range's taxonomy row — reports 003 and 004.
struct RangeAnalysis {
  std::vector<LatentProfile> latents;
  std::vector<Specialization> classes;
  RangeTaxonomy taxonomy;
};

template <class Scalar>
RangeAnalysis analyse_range(const SparseCodes<Scalar>& codes, const std::vector<index_t>& ranking, RankRange range,
                            index_t top_n, const std::vector<CotFeatures>& features, const SpecializationThresholds& t = {}) {
  RangeAnalysis r;
  r.latents = profile_rank_range(codes, ranking, range, top_n);
  for (const auto& p : r.latents) r.classes.push_back(classify_latent(p, features, t));
  r.taxonomy = analysis::taxonomy(range, r.latents, r.classes);
  return r;
}

// The range as JSON: its taxonomy row and each latent's class, with the top samples of the
// specialized ones.
inline io::Json to_json(const RangeAnalysis& r, const AnnotatedLayer& layer) {
  io::Json j = io::Json::object();
  const auto& t = r.taxonomy;
  j["range"] = t.range.label();
  j["latents"] = t.latents;
  j["dead"] = t.dead;
  j["specialized"] = t.specialized;
  j["general"] = t.general;
  j["min_frequency"] = t.min_frequency;
  j["max_frequency"] = t.max_frequency;
  io::Json list = io::Json::array();
  for (std::size_t i = 0; i < r.latents.size(); ++i) {
    const auto& p = r.latents[i];
    const auto& c = r.classes[i];
    io::Json e = io::Json::object();
    e["latent"] = p.latent;
    e["rank"] = p.rank;
    e["frequency"] = p.frequency;
    e["active_samples"] = p.active_samples;
    e["mean_activation"] = p.mean_activation;
    e["class"] = name(c.kind);
    e["label"] = c.label();
    e["operation_share"] = io::Json::array();
    for (double v : c.operation_share) e["operation_share"].push_back(v);
    e["top_value"] = c.top_value;
    e["top_value_share"] = c.top_value_share;
    if (c.specialized()) e["top_samples"] = top_samples_json(p, layer);
    list.push_back(e);
  }
  j["latent_classes"] = list;
  return j;
}

// One layer's specialization over rank ranges (reports 003 and 004): the SAE's validation metrics,
// its latents ranked by frequency, and each range analysed.
struct LayerSpecialization {
  std::string label;
  const AnnotatedLayer* layer = nullptr;
  metrics::Evaluation val;
  std::vector<index_t> ranking;
  std::vector<std::pair<RankRange, RangeAnalysis>> ranges;

  // The specialized latents over all ranges, each once, in range order, with their class labels.
  std::vector<std::pair<index_t, std::string>> specialized() const {
    std::vector<std::pair<index_t, std::string>> out;
    std::set<index_t> seen;
    for (const auto& [range, ra] : ranges)
      for (std::size_t i = 0; i < ra.latents.size(); ++i)
        if (ra.classes[i].specialized() && seen.insert(ra.latents[i].latent).second)
          out.emplace_back(ra.latents[i].latent, ra.classes[i].label());
    return out;
  }
};

// `codes`: the model's codes of the layer's validation rows.
template <class Model>
LayerSpecialization layer_specialization(const std::string& label, const AnnotatedLayer& layer, const Model& model,
                                         const SparseCodes<typename Model::scalar_type>& codes,
                                         const std::vector<RankRange>& ranges, index_t top_samples,
                                         const SpecializationThresholds& thresholds) {
  LayerSpecialization r;
  r.label = label;
  r.layer = &layer;
  r.val = metrics::evaluate(model, layer.data.validation);
  r.ranking = rank_by_frequency(r.val.activation_frequency);
  for (const auto& range : ranges)
    r.ranges.emplace_back(range, analyse_range(codes, r.ranking, range, top_samples, layer.validation_features, thresholds));
  return r;
}

}  // namespace sae::analysis
