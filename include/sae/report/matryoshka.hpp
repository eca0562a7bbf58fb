// Report 000's outputs (sae-matryoshka): the Matryoshka SAE against the TopK grid on the same data
// (the report's matched-config table: the TopK configs closest in death rate and in active latents,
// and the best by EV; each nested prefix's EV; the report's published figures quoted beside them),
// and the feature semantics of an early and a late layer (analysis/layer_semantics.hpp).
#pragma once

#include <sae/analysis/annotated_layer.hpp>
#include <sae/analysis/cot_patterns.hpp>
#include <sae/analysis/latent_profile.hpp>
#include <sae/analysis/layer_semantics.hpp>
#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/io/atomic_file.hpp>
#include <sae/io/json.hpp>
#include <sae/io/run_directory.hpp>
#include <sae/metrics/evaluate.hpp>
#include <sae/metrics/reconstruction.hpp>
#include <sae/model/matryoshka_autoencoder.hpp>
#include <sae/report/figures.hpp>
#include <sae/report/text.hpp>
#include <sae/train/trainer.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace sae::report {

// One trained SAE of the comparison.
struct MatryoshkaRow {
  std::string name;
  index_t k = 0, latents = 0;
  metrics::Evaluation val;
};

// The Matryoshka SAE scored against the TopK grid on the same validation rows.
struct MatryoshkaComparison {
  MatryoshkaRow matryoshka;
  double threshold = 0;                                 // its inference threshold
  std::vector<index_t> group_sizes;
  std::vector<std::pair<index_t, double>> prefix_ev;    // (latents 1..end, EV of that prefix alone)
  std::vector<MatryoshkaRow> topk;
  MatryoshkaRow death_match, active_match, best_topk;  // the closest TopK configs
};

// The report's published Matryoshka figures (LLaMA-3.2-1B layer 14, position 3): quoted, not measured.
struct PublishedMatryoshka {
  static constexpr double dead_fraction = 0.625, explained_variance = 0.721;
  static constexpr index_t alive_latents = 769;
};

// The TopK configs closest to `mat` in death rate and in active latents (the first of equals, in
// the rows' order), and the one with the best EV.
inline void match_topk(MatryoshkaComparison& c) {
  detail::require(!c.topk.empty(), "compare_matryoshka()", "no TopK configs to compare with");
  const auto closest = [&](auto distance) {
    return *std::min_element(c.topk.begin(), c.topk.end(),
                             [&](const MatryoshkaRow& a, const MatryoshkaRow& b) { return distance(a) < distance(b); });
  };
  const auto& m = c.matryoshka.val;
  c.death_match = closest([&](const MatryoshkaRow& r) { return std::abs(r.val.dead_fraction - m.dead_fraction); });
  c.active_match = closest([&](const MatryoshkaRow& r) { return std::abs(static_cast<double>(r.val.alive_latents - m.alive_latents)); });
  c.best_topk = closest([](const MatryoshkaRow& r) { return -r.val.explained_variance; });
}

// `mat` scored on the validation rows (each nested prefix too) and matched against the TopK rows.
inline MatryoshkaComparison compare_matryoshka(const MatryoshkaAutoencoder<float>& mat, const Matrix<float>& validation,
                                               std::vector<MatryoshkaRow> topk) {
  detail::require(!topk.empty(), "compare_matryoshka()", "no TopK configs to compare with");  // before scoring
  MatryoshkaComparison c;
  c.matryoshka = {"Matryoshka (ours) k=" + std::to_string(mat.k()) + ", d=" + std::to_string(mat.num_latents()), mat.k(),
                  mat.num_latents(), metrics::evaluate(mat, validation)};
  c.threshold = static_cast<double>(mat.threshold());
  c.group_sizes = mat.config().group_sizes;
  const auto codes = mat.encode(validation);
  for (index_t m = 1; m <= mat.num_groups(); ++m)
    c.prefix_ev.emplace_back(mat.prefix_end(m), metrics::explained_variance(validation, mat.decode_prefix(codes, m)));
  c.topk = std::move(topk);
  match_topk(c);
  return c;
}

// What the report says about the run.
struct MatryoshkaSetup {
  const analysis::AnnotatedLayer* late = nullptr;
  const analysis::AnnotatedLayer* early = nullptr;
  TrainConfig train;
  double lr = 0;
  std::vector<index_t> ks;  // the TopK grid's, for the figure's lines
  index_t semantics_k = 0, semantics_latents = 0, top_samples = 0;
  analysis::PatternRule rule;
  bool plots = true;
};

namespace matryoshka_detail {
inline std::vector<std::string> row_cells(const std::string& label, double dead, index_t active, double ev, double mat_eff) {
  const double eff = active > 0 ? ev / static_cast<double>(active) : 0.0;
  return {label, fmt("%.1f%%", 100 * dead), std::to_string(active), fmt("%.1f%%", 100 * ev), fmt("%.3f%%", 100 * eff),
          mat_eff > 0 ? fmt("%.2fx", eff / mat_eff) : "—"};
}
inline std::vector<std::string> row_cells(const MatryoshkaRow& r, const std::string& label, double mat_eff) {
  return row_cells(label, r.val.dead_fraction, r.val.alive_latents, r.val.explained_variance, mat_eff);
}
inline MarkdownTable rows_table() {
  return MarkdownTable({"Config", "Death %", "Active latents", "EV", "EV per active latent", "vs Matryoshka (ours)"});
}

inline io::Json row_json(const MatryoshkaRow& r) {
  io::Json j = metrics::to_json(r.val);
  j["name"] = r.name;
  j["k"] = r.k;
  j["latent_dim"] = r.latents;
  return j;
}

// How common each pattern is among all samples: the chance level the ">= N of the top samples" rule has to beat.
inline std::string base_rates(const std::vector<analysis::CotFeatures>& features) {
  const auto share = [&](auto&& shows) {
    double n = 0;
    for (const auto& f : features) n += shows(f) ? 1 : 0;
    return fmt("%.0f%%", 100 * n / static_cast<double>(features.size()));
  };
  std::string out;
  for (analysis::Operation op : analysis::kOperations)
    out += std::string(out.empty() ? "" : ", ") + analysis::name(op) + " " +
           share([op](const analysis::CotFeatures& f) { return f.has(op); });
  return out + ", round numbers " + share([](const analysis::CotFeatures& f) { return f.round_number; });
}

inline std::string profile_table(const std::vector<analysis::LatentProfile>& latents, const analysis::AnnotatedLayer& layer,
                                 analysis::PatternRule rule) {
  MarkdownTable t({"Rank", "Latent", "Activation freq", "Mean magnitude", "Detected patterns",
                   "Keywords (>= " + std::to_string(rule.min_samples) + " top samples)"});
  for (const auto& p : latents) {
    const auto pats = analysis::detect_patterns(p, layer.validation_features, rule);
    t.row({std::to_string(p.rank), std::to_string(p.latent), fmt("%.1f%%", 100 * p.frequency), fmt("%.3f", p.mean_activation),
           pats.has_pattern() ? join(pats.patterns, ", ") : "Unknown/Mixed", pats.keywords.empty() ? "—" : join(pats.keywords, ", ")});
  }
  return t.str();
}
}  // namespace matryoshka_detail

// Writes report.md, comparison.json, semantics.json and figures/ev_by_size.* into the run's staging
// folder; returns the console summary.
inline std::string write_matryoshka_report(io::RunDirectory& run, const MatryoshkaSetup& s, const MatryoshkaComparison& c,
                                           const analysis::LayerSemantics& early_sem, const analysis::LayerSemantics& late_sem,
                                           std::ostream& note = std::cout) {
  using namespace matryoshka_detail;
  using P = PublishedMatryoshka;
  const analysis::AnnotatedLayer &late = *s.late, &early = *s.early;
  const MatryoshkaRow& mrow = c.matryoshka;
  const double mat_eff = mrow.val.ev_per_active_latent;
  std::ostringstream md;
  md << "# TopK vs Matryoshka and feature semantics (report 000)\n\n"
     << "Late layer: `" << late.data.source << "`; early layer: `" << early.data.source << "`. " << late.data.train.rows()
     << " train / " << late.data.validation.rows() << " validation rows (" << late.data.split << "); metrics on validation. "
     << s.train.epochs << " epochs, batch " << s.train.batch_size << ", Adam lr " << s.lr
     << ". EV = 1 - SSE/SST (SAELens). Active latents = latents firing on at least one validation sample.\n\n"
     << "## Matched comparison\n\n"
     << rows_table()
            .row(row_cells(mrow, "**" + mrow.name + "**", 0))
            .row(row_cells("Matryoshka (published, LLaMA layer 14; quoted, not measured)", P::dead_fraction, P::alive_latents,
                           P::explained_variance, 0))
            .row(row_cells(c.death_match, c.death_match.name + " — death-rate match", mat_eff))
            .row(row_cells(c.active_match, c.active_match.name + " — active-latent match", mat_eff))
            .row(row_cells(c.best_topk, c.best_topk.name + " — best EV", mat_eff))
            .str()
     << "\nMatryoshka inference threshold " << fmt("%.4f", c.threshold) << "; mean L0 at inference " << fmt("%.1f", mrow.val.l0)
     << " (trained with k=" << mrow.k << ").\n\nEV of each nested prefix of the Matryoshka dictionary:\n\n";
  MarkdownTable prefixes({"Latents used", "EV"});
  for (const auto& [end, ev] : c.prefix_ev) prefixes.row({"1-" + std::to_string(end), fmt("%.3f", ev)});
  md << prefixes.str();
  // Figure: EV against dictionary size — each Matryoshka prefix, and each TopK K across d.
  Plotter plot(run.stage("figures"), s.plots, note);
  std::vector<Plotter::Series> series;
  Plotter::Series ms;
  ms.label = "Matryoshka k=" + std::to_string(mrow.k) + ": prefix 1..m";
  for (const auto& [end, ev] : c.prefix_ev) ms.x.push_back(static_cast<double>(end)), ms.y.push_back(ev);
  series.push_back(ms);
  for (index_t k : s.ks) {
    Plotter::Series ts;
    ts.label = "TopK K=" + std::to_string(k);
    for (const auto& r : c.topk)
      if (r.k == k) ts.x.push_back(static_cast<double>(r.latents)), ts.y.push_back(r.val.explained_variance);
    series.push_back(ts);
  }
  Plotter::LineStyle style;
  style.log_x = true;
  plot.lines("ev_by_size", "Validation EV by dictionary size (latents used)", "latents", "explained variance", series, style);
  MarkdownTable all = rows_table();
  for (const auto& r : c.topk) all.row(row_cells(r, r.name, mat_eff));
  md << "\n![EV by dictionary size](figures/ev_by_size.png)\n\nAll TopK configs:\n\n" << all.str();

  md << "\n## Feature semantics (K=" << s.semantics_k << ", d=" << s.semantics_latents << ")\n\n"
     << "Latents ranked by activation frequency on the validation rows; for each, its " << s.top_samples
     << " strongest samples' CoT steps. A pattern counts when at least " << s.rule.min_samples
     << " of them show it: addition (+), subtraction (binary -), multiplication (*), division (/), round numbers "
        "(100, 200, 500, 1000 as an operand or result). Question keywords (how many, total, sum, difference, product; "
        "whole words) are listed apart and do not make a latent \"clear\".\n\n"
     << "Base rates over all " << late.validation_features.size() << " validation samples: " << base_rates(late.validation_features)
     << ". A pattern shown by more than about a third of all samples is expected in 3 of 10 top samples by chance.\n\n";
  for (const auto* sem : {&early_sem, &late_sem}) {
    const auto& layer = sem == &early_sem ? early : late;
    md << "### " << (sem == &early_sem ? "Early" : "Late") << " layer: `" << sem->source << "` (EV "
       << fmt("%.3f", sem->val.explained_variance) << ", death " << fmt("%.1f%%", 100 * sem->val.dead_fraction) << ")\n\n"
       << profile_table(sem->top, layer, s.rule) << "\nTop 3 samples of each latent (all " << s.top_samples
       << " are in semantics.json):\n\n";
    for (const auto& p : sem->top) {
      md << "- latent " << p.latent << ":\n";
      for (std::size_t t = 0; t < std::min<std::size_t>(3, p.top.size()); ++t)
        md << "  - " << fmt("%.2f", p.top[t].activation) << ": `"
           << analysis::cot_line(layer.validation_samples[static_cast<std::size_t>(p.top[t].sample)]) << "`\n";
    }
    for (const auto& [range, ps] : sem->ranges) md << "\nRanks " << range.label() << ":\n\n" << profile_table(ps, layer, s.rule);
    md << "\n";
  }
  const auto range_text = [](const analysis::SemanticsSummary& x) {
    return fmt("%.2f", x.min_mean_activation) + " - " + fmt("%.2f", x.max_mean_activation);
  };
  md << "### Side by side\n\n"
     << MarkdownTable({"Metric", "Early", "Late"})
            .row({"Latents with a clear pattern",
                  std::to_string(early_sem.summary.with_pattern) + "/" + std::to_string(early_sem.summary.latents),
                  std::to_string(late_sem.summary.with_pattern) + "/" + std::to_string(late_sem.summary.latents)})
            .row({"Mean activation frequency", fmt("%.1f%%", 100 * early_sem.summary.mean_frequency),
                  fmt("%.1f%%", 100 * late_sem.summary.mean_frequency)})
            .row({"Mean-magnitude range", range_text(early_sem.summary), range_text(late_sem.summary)})
            .row({"EV", fmt("%.3f", early_sem.val.explained_variance), fmt("%.3f", late_sem.val.explained_variance)})
            .str();

  io::Json comparison = io::Json::object();
  comparison["matryoshka"] = row_json(mrow);
  comparison["matryoshka"]["threshold"] = c.threshold;
  comparison["matryoshka"]["group_sizes"] = io::Json::array();
  for (index_t g : c.group_sizes) comparison["matryoshka"]["group_sizes"].push_back(g);
  comparison["matryoshka"]["prefix_explained_variance"] = io::Json::array();
  for (const auto& [end, ev] : c.prefix_ev) comparison["matryoshka"]["prefix_explained_variance"].push_back(ev);
  comparison["published_matryoshka"] = io::Json::object();
  comparison["published_matryoshka"]["dead_fraction"] = P::dead_fraction;
  comparison["published_matryoshka"]["alive_latents"] = P::alive_latents;
  comparison["published_matryoshka"]["explained_variance"] = P::explained_variance;
  comparison["death_rate_match"] = c.death_match.name;
  comparison["active_latent_match"] = c.active_match.name;
  comparison["best_topk"] = c.best_topk.name;
  comparison["topk"] = io::Json::array();
  for (const auto& r : c.topk) comparison["topk"].push_back(row_json(r));
  io::Json semantics = io::Json::object();
  semantics["early"] = analysis::to_json(early_sem, early, s.rule);
  semantics["late"] = analysis::to_json(late_sem, late, s.rule);
  io::write_text_atomically(run.stage("comparison.json"), comparison.dump() + "\n");
  io::write_text_atomically(run.stage("semantics.json"), semantics.dump() + "\n");
  write_text_file(run.stage("report.md"), md.str());
  return "\nMatryoshka: EV " + fmt("%.3f", mrow.val.explained_variance) + ", " + fmt("%.1f%%", 100 * mrow.val.dead_fraction) +
         " dead, " + std::to_string(mrow.val.alive_latents) + " active\ndeath-rate match: " + c.death_match.name +
         "; active-latent match: " + c.active_match.name + "; best: " + c.best_topk.name + "\nclear patterns: early " +
         std::to_string(early_sem.summary.with_pattern) + "/" + std::to_string(early_sem.summary.latents) + ", late " +
         std::to_string(late_sem.summary.with_pattern) + "/" + std::to_string(late_sem.summary.latents) + "\n";
}

}  // namespace sae::report
