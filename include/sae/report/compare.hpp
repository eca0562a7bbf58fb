// The architectures-against-dead-latents comparison (sae-compare): the report-001 grid once per
// variant — TopK as the reports train it, TopK + AuxK, TopK under the modern recipe, BatchTopK,
// JumpReLU with its sparsity searched for K's L0, Matryoshka — as sweep variants on one plan, so it
// resumes, shards and runs under MPI as the grid does; then one table and one figure of validation
// EV and dead % side by side (and dead % on the training rows).
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/io/atomic_file.hpp>
#include <sae/io/json.hpp>
#include <sae/io/run_directory.hpp>
#include <sae/model/recipe.hpp>
#include <sae/report/figures.hpp>
#include <sae/report/text.hpp>
#include <sae/train/sweep.hpp>

#include <algorithm>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace sae::report {

struct CompareOptions {
  index_t aux_k = 4;                // the AuxK variant's k_aux (dead window two epochs, alpha 1/32)
  double jumprelu_bandwidth = 0.1;  // in units of the data's RMS entry
  int l0_search_runs = 6;           // JumpReLU: trainings per grid point for the L0 search
  double l0_tolerance = 0.1;        // JumpReLU: an L0 within this fraction of K counts as matched
};

// The variants, in the order tables list them: name and column label.
inline const std::vector<std::pair<std::string, std::string>>& compare_variant_labels() {
  static const std::vector<std::pair<std::string, std::string>> labels = {
      {"topk", "TopK (reports)"}, {"auxk", "TopK + AuxK"}, {"modern", "TopK, recipe modern"},
      {"batchtopk", "BatchTopK"}, {"jumprelu", "JumpReLU"}, {"matryoshka", "Matryoshka"}};
  return labels;
}

inline std::string compare_variant_label(const std::string& name) {
  for (const auto& [n, label] : compare_variant_labels())
    if (n == name) return label;
  return name;
}

// The sweep variant `name` (one of compare_variant_labels) for a plan whose training split has
// `train_rows` rows.
inline SweepVariant compare_variant(const std::string& name, const CompareOptions& o, index_t train_rows) {
  SweepVariant v;
  v.name = name;
  if (name == "auxk") {
    v.model["aux_k"] = o.aux_k;
    v.model["dead_window"] = 2 * train_rows;
  } else if (name == "modern") {
    v.recipe = Recipe::modern;
  } else if (name == "batchtopk" || name == "matryoshka") {  // their defaults; Matryoshka's nested groups F/16 ... F/2
    v.architecture = name;
  } else if (name == "jumprelu") {
    v.architecture = name;
    v.model["bandwidth"] = o.jumprelu_bandwidth;
    v.l0_search_runs = o.l0_search_runs;
    v.l0_tolerance = o.l0_tolerance;
  } else if (name != "topk") {
    std::string names;
    for (const auto& [n, label] : compare_variant_labels()) names += (names.empty() ? "" : ", ") + n;
    throw invalid_argument("expected variant names from " + names + "; got '" + name + "'");
  }
  return v;
}

// What the report says about the run.
struct CompareSetup {
  std::string source, split;
  index_t train_rows = 0, validation_rows = 0, input_dim = 0;
  const SweepPlan* plan = nullptr;
  CompareOptions options;
  bool plots = true;
};

namespace compare_detail {
inline double extra_number(const SweepResult& r, const char* key, double otherwise) {
  const io::Json* v = r.extra.find(key);
  return v ? v->as_number() : otherwise;
}
// A metric through a printf format, or "n/a" where it is undefined (NaN: EV without variance).
inline std::string metric_text(const char* format, double v) { return metrics::defined(v) ? fmt(format, v) : "n/a"; }
}  // namespace compare_detail

// One variant against the reports' TopK, grid point by grid point. An EV that is undefined on
// either side (NaN: validation rows without variance) is no comparison: it counts neither as no
// lower nor as lower, and the points compared are counted apart.
struct CompareTally {
  int points = 0, no_more_dead = 0;
  int ev_points = 0, no_worse_ev = 0, both = 0;  // over the points where both EVs are defined

  void add(const metrics::Evaluation& variant, const metrics::Evaluation& topk) {
    ++points;
    const bool dead_ok = variant.dead_fraction <= topk.dead_fraction;
    no_more_dead += dead_ok;
    if (!metrics::defined(variant.explained_variance) || !metrics::defined(topk.explained_variance)) return;
    ++ev_points;
    const bool ev_ok = variant.explained_variance >= topk.explained_variance - 0.005;
    no_worse_ev += ev_ok, both += dead_ok && ev_ok;
  }
  // "dead % no higher at 3 of 4 points, EV no lower (within 0.005) at 2, both at 2" (and how many
  // points had an EV to compare when some did not).
  std::string words() const {
    std::string s = "dead % no higher at " + std::to_string(no_more_dead) + " of " + std::to_string(points) + " points, ";
    if (ev_points == 0) return s + "EV undefined at every point (validation rows without variance): not compared";
    s += "EV no lower (within 0.005) at " + std::to_string(no_worse_ev);
    if (ev_points < points)
      s += " of the " + std::to_string(ev_points) + " with a defined EV (" + std::to_string(points - ev_points) + " undefined)";
    return s + ", both at " + std::to_string(both);
  }
};

// Writes compare.csv, compare.json, figures/ev_vs_dead.* and report.md into the run's staging
// folder from the plan's results (every variant at every grid point); returns the validation table
// and the point-by-point summary, for the console.
inline std::string write_compare_report(io::RunDirectory& run, const CompareSetup& s, const std::vector<SweepResult>& results,
                                        std::ostream& note = std::cout) {
  using compare_detail::extra_number;
  using compare_detail::metric_text;
  const SweepPlan& plan = *s.plan;
  std::map<std::tuple<std::string, index_t, index_t>, const SweepResult*> cells;
  for (const auto& r : results) cells[{r.variant, r.k, r.latents}] = &r;
  const auto cell = [&](const std::string& v, index_t k, index_t d) -> const SweepResult& {
    const auto it = cells.find({v, k, d});
    detail::require(it != cells.end(), "write_compare_report()",
                    "no result for " + v + " at K=" + std::to_string(k) + ", d=" + std::to_string(d));
    return *it->second;
  };
  const auto train_dead = [&](const SweepResult& r) { return extra_number(r, "train_dead_fraction", 0); };
  const auto lambda = [&](const SweepResult& r) { return extra_number(r, "sparsity_coefficient", -1); };
  const auto matched = [&](const SweepResult& r) {
    const io::Json* m = r.extra.find("l0_matched");
    return !m || m->as_bool();
  };
  const auto each_result = [&](auto&& fn) {  // variant, then grid order
    for (const auto& v : plan.variants)
      for (index_t d : plan.latents)
        for (index_t k : plan.ks) fn(v.name, k, d, cell(v.name, k, d));
  };
  const bool with_matryoshka =
      std::any_of(plan.variants.begin(), plan.variants.end(), [](const SweepVariant& v) { return v.name == "matryoshka"; });

  // ---- CSV + JSON ----
  std::ostringstream csv;
  csv << "variant,k,latent_dim,explained_variance,dead_fraction,train_dead_fraction,l0,alive_latents,mse,"
         "sparsity_coefficient,initial_l0,l0_matched,seconds\n";
  io::Json doc = io::Json::object();
  doc["data"] = s.source;
  doc["split"] = s.split;
  doc["epochs"] = plan.train.epochs;
  doc["batch_size"] = plan.train.batch_size;
  doc["lr"] = plan.adam.lr;
  doc["aux_k"] = s.options.aux_k;
  doc["jumprelu_bandwidth"] = s.options.jumprelu_bandwidth;
  doc["metrics_on"] = "validation";
  doc["results"] = io::Json::array();
  each_result([&](const std::string& v, index_t k, index_t d, const SweepResult& r) {
    const bool searched = lambda(r) >= 0;
    csv << v << ',' << k << ',' << d << ',' << metric_text("%.6f", r.val.explained_variance) << ',' << fmt("%.6f", r.val.dead_fraction)
        << ',' << fmt("%.6f", train_dead(r)) << ',' << fmt("%.4f", r.val.l0) << ',' << r.val.alive_latents << ','
        << fmt("%.6g", r.val.mse) << ','
        << (searched ? fmt("%.6g", lambda(r)) + ',' + std::to_string(r.extra.at("initial_l0").as_int()) : ",") << ','
        << (matched(r) ? "true" : "false") << ',' << fmt("%.2f", r.seconds) << '\n';
    io::Json j = metrics::to_json(r.val);
    j["variant"] = v;
    j["k"] = k;
    j["latent_dim"] = d;
    j["train_dead_fraction"] = train_dead(r);
    for (const char* key : {"sparsity_coefficient", "initial_l0", "search_runs", "l0_matched"})
      if (const io::Json* x = r.extra.find(key)) j[key] = *x;
    j["seconds"] = r.seconds;
    doc["results"].push_back(j);
  });
  write_text_file(run.stage("compare.csv"), csv.str());
  io::write_text_atomically(run.stage("compare.json"), doc.dump() + "\n");

  // ---- figure: EV against dead %, one point per grid point and variant ----
  Plotter plot(run.stage("figures"), s.plots, note);
  std::vector<Plotter::Series> series;
  each_result([&](const std::string& v, index_t, index_t, const SweepResult& r) {
    const std::string label = compare_variant_label(v);
    if (series.empty() || series.back().label != label) series.push_back({label, {}, {}, {}});
    if (!metrics::defined(r.val.explained_variance)) return;  // no point to draw
    series.back().x.push_back(100 * r.val.dead_fraction);
    series.back().y.push_back(r.val.explained_variance);
  });
  Plotter::LineStyle style;
  style.connect = false;
  style.key = "top right";
  plot.lines("ev_vs_dead", "Validation EV against dead latents, every grid point", "dead latents (%)", "explained variance",
             series, style);

  // ---- Markdown ----
  const auto cell_text = [&](const std::string& v, index_t k, index_t d) {
    const SweepResult& r = cell(v, k, d);
    std::string t = metric_text("%.3f", r.val.explained_variance) + " / " + fmt("%.1f%%", 100 * r.val.dead_fraction);
    const bool varying_l0 = v == "batchtopk" || v == "jumprelu" || v == "matryoshka";
    if (varying_l0) t += " (L0 " + fmt("%.1f", r.val.l0);
    if (lambda(r) >= 0) {
      const index_t start = r.extra.at("initial_l0").as_int();
      t += ", λ " + fmt("%.3g", lambda(r)) + (start != k ? ", start L0 " + std::to_string(start) : "") +
           (matched(r) ? "" : ", unmatched");
    }
    if (varying_l0) t += ")";
    return t;
  };
  std::vector<std::string> header = {"K", "latent_dim"};
  for (const auto& v : plan.variants) header.push_back(compare_variant_label(v.name));
  MarkdownTable table(header), train_table(header);
  for (index_t d : plan.latents)
    for (index_t k : plan.ks) {
      std::vector<std::string> row = {std::to_string(k), std::to_string(d)}, train_row = row;
      for (const auto& v : plan.variants) {
        row.push_back(cell_text(v.name, k, d));
        train_row.push_back(fmt("%.1f%%", 100 * train_dead(cell(v.name, k, d))));
      }
      table.row(row), train_table.row(train_row);
    }
  // Where each variant stands against the reports' TopK at the same grid point.
  std::ostringstream summary;
  for (const auto& v : plan.variants) {
    if (v.name == "topk") continue;
    CompareTally tally;
    for (index_t d : plan.latents)
      for (index_t k : plan.ks) tally.add(cell(v.name, k, d).val, cell("topk", k, d).val);
    summary << "- **" << compare_variant_label(v.name) << "**: " << tally.words() << "\n";
  }
  const CompareOptions& o = s.options;
  std::ostringstream md;
  md << "# Architectures against dead latents on the report-001 grid\n\n"
     << "- **Data**: " << s.source << "; " << s.split << " (" << s.train_rows << " train, " << s.validation_rows
     << " validation), D = " << s.input_dim << "\n- **Training**: Adam lr " << plan.adam.lr << ", " << plan.train.epochs
     << " epochs, batch " << plan.train.batch_size << ", seed " << plan.train.seed
     << ", the same split and batch order for every model\n"
     << "- **Variants**: TopK as the reports train it; TopK + AuxK (k_aux " << o.aux_k
     << ", two-epoch dead window, alpha 1/32); TopK under `--recipe modern`; BatchTopK (k x B per batch, a threshold at "
        "inference); JumpReLU (L0 penalty, bandwidth "
     << o.jumprelu_bandwidth << " x the data's RMS entry, λ and the thresholds' starting L0 searched over up to "
     << o.l0_search_runs << " trainings per point to bring the validation L0 within " << fmt("%.0f%%", 100 * o.l0_tolerance)
     << " of K: λ in [1e-3, 1e3] with the thresholds started at K's L0, then the start moved when λ alone cannot get there "
        "in this many steps)"
     << (with_matryoshka ? "; Matryoshka (BatchTopK over the default nested groups, F/16, F/16, F/8, F/4, F/2)" : "") << "\n"
     << "- **Cells**: validation EV / dead % (the reports' definition: never fired on a validation row; EV n/a: "
        "undefined, the validation rows have no variance); "
        "BatchTopK and JumpReLU also show their L0, which is not fixed per sample\n\n"
     << "## EV and dead latents (validation)\n\n" << table.str() << "\n![EV against dead %](figures/ev_vs_dead.png)\n\n"
     << "## Against the reports' TopK, point by point\n\n" << summary.str() << "\n## Dead latents on the training rows\n\n"
     << train_table.str();
  write_text_file(run.stage("report.md"), md.str());
  return table.str() + "\n" + summary.str();
}

}  // namespace sae::report
