// The report-001 grid's outputs (sae-grid): the metrics as JSON and CSV, a Markdown report shaped
// like the report's tables, the Pareto analysis (maximise EV, minimise K, minimise latent_dim), the
// report's findings checked on this data, and heatmap / frontier figures.
#pragma once

#include <sae/analysis/grid.hpp>
#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/io/atomic_file.hpp>
#include <sae/io/json.hpp>
#include <sae/io/run_directory.hpp>
#include <sae/report/figures.hpp>
#include <sae/report/text.hpp>
#include <sae/train/sweep.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace sae::report {

// What the report says about the run.
struct GridSetup {
  std::string source, split;
  index_t train_rows = 0, validation_rows = 0, input_dim = 0, rows = 0;
  const SweepPlan* plan = nullptr;
  bool plots = true;
};

namespace grid_detail {
using ByPoint = std::map<std::pair<index_t, index_t>, const SweepResult*>;  // (K, latent_dim)

// One metric over K (rows) x latent_dim (columns); `gain_column` adds EV's relative change from
// the smallest to the largest latent_dim.
inline std::string metric_table(const SweepPlan& plan, const ByPoint& by, const std::string& label,
                                const std::function<std::string(const SweepResult&)>& cell, bool gain_column) {
  const auto& ks = plan.ks;
  const auto& ds = plan.latents;
  std::vector<std::string> header = {"K"};
  for (index_t d : ds) header.push_back("d=" + std::to_string(d) + " " + label);
  if (gain_column) header.push_back("Gain (" + std::to_string(ds.front()) + "→" + std::to_string(ds.back()) + ")");
  MarkdownTable t(header);
  for (index_t k : ks) {
    std::vector<std::string> row = {std::to_string(k)};
    for (index_t d : ds) row.push_back(cell(*by.at({k, d})));
    if (gain_column) {
      const double a = by.at({k, ds.front()})->val.explained_variance, b = by.at({k, ds.back()})->val.explained_variance;
      row.push_back(fmt("%+.1f%%", 100 * (b - a) / std::abs(a)));
    }
    t.row(row);
  }
  return t.str();
}

inline std::string ev_cell(const SweepResult& r) { return fmt("%.3f", r.val.explained_variance); }
}  // namespace grid_detail

// Writes grid_metrics.json, grid_metrics.csv, figures/ and report.md into the run's staging folder
// from the results of every (K, latent_dim) of the plan's one slice; returns the EV and dead-%
// tables and the Pareto count, for the console.
inline std::string write_grid_report(io::RunDirectory& run, const GridSetup& s, const std::vector<SweepResult>& results,
                                     std::ostream& note = std::cout) {
  using grid_detail::metric_table;
  const SweepPlan& plan = *s.plan;
  const auto& ks = plan.ks;
  const auto& ds = plan.latents;
  grid_detail::ByPoint by;
  for (const auto& r : results) by[{r.k, r.latents}] = &r;
  for (index_t k : ks)
    for (index_t d : ds)
      detail::require(by.count({k, d}) > 0, "write_grid_report()", "no result for K=" + std::to_string(k) + ", d=" + std::to_string(d));

  const auto analysis = analysis::analyse_grid(ks, ds, [&](index_t k, index_t d) -> const metrics::Evaluation& {
    return by.at({k, d})->val;
  });
  const auto& order = analysis.order;
  const auto& pareto = analysis.pareto;
  const auto label = [&](std::size_t i) { return analysis::grid_label(order[i].first, order[i].second); };

  // ---- JSON + CSV ----
  io::Json doc = io::Json::object();
  doc["report"] = "001 TopK grid";
  doc["data"] = s.source;
  doc["split"] = s.split;
  doc["train_rows"] = s.train_rows;
  doc["validation_rows"] = s.validation_rows;
  doc["input_dim"] = s.input_dim;
  doc["epochs"] = plan.train.epochs;
  doc["batch_size"] = plan.train.batch_size;
  doc["lr"] = plan.adam.lr;
  doc["metrics_on"] = "validation";
  // The run's fingerprint (what every config shares), as sae-sweep's summary.json has it.
  doc["fingerprint"] = sweep_run_fingerprint(results.front().fingerprint.at("data"), plan, s.rows);
  std::ostringstream csv;
  csv << "k,latent_dim,explained_variance,explained_variance_reports,dead_fraction,alive_latents,"
         "mean_active_activation,max_activation,mse,l0,ev_per_active_latent,seconds,pareto_optimal\n";
  for (std::size_t i = 0; i < order.size(); ++i) {
    const SweepResult& r = *by.at(order[i]);
    io::Json j = to_json(r);
    j["pareto_optimal"] = static_cast<bool>(pareto.on_front[i]);
    io::Json dom = io::Json::array();
    for (int o : pareto.dominated_by[i]) dom.push_back(label(static_cast<std::size_t>(o)));
    j["dominated_by"] = dom;
    doc["configs"].push_back(j);
    csv << r.k << ',' << r.latents << ',' << fmt("%.6f", r.val.explained_variance) << ','
        << fmt("%.6f", r.val.explained_variance_reports) << ',' << fmt("%.6f", r.val.dead_fraction) << ',' << r.val.alive_latents
        << ',' << fmt("%.6g", r.val.mean_active_activation) << ',' << fmt("%.6g", r.val.max_activation) << ','
        << fmt("%.6g", r.val.mse) << ',' << fmt("%.4f", r.val.l0) << ',' << fmt("%.6g", r.val.ev_per_active_latent) << ','
        << fmt("%.2f", r.seconds) << ',' << (pareto.on_front[i] ? "true" : "false") << '\n';
  }
  io::write_text_atomically(run.stage("grid_metrics.json"), doc.dump() + "\n");
  write_text_file(run.stage("grid_metrics.csv"), csv.str());

  // ---- figures ----
  Plotter plot(run.stage("figures"), s.plots, note);
  std::vector<std::string> k_labels, d_labels;
  for (index_t k : ks) k_labels.push_back(std::to_string(k));
  for (index_t d : ds) d_labels.push_back(std::to_string(d));
  const auto grid_of = [&](double (*metric)(const SweepResult&)) {
    std::vector<std::vector<double>> g;
    for (index_t k : ks) {
      g.emplace_back();
      for (index_t d : ds) g.back().push_back(metric(*by.at({k, d})));
    }
    return g;
  };
  const struct {
    const char *name, *title, *format;
    double (*value)(const SweepResult&);
  } heatmaps[] = {
      {"heatmap_explained_variance", "Explained variance (validation)", "%.3f",
       [](const SweepResult& r) { return r.val.explained_variance; }},
      {"heatmap_feature_death_rate", "Feature death rate (%)", "%.1f", [](const SweepResult& r) { return 100 * r.val.dead_fraction; }},
      {"heatmap_mean_activation", "Mean activation of active latents", "%.3g",
       [](const SweepResult& r) { return r.val.mean_active_activation; }},
      {"heatmap_max_activation", "Max activation", "%.3g", [](const SweepResult& r) { return r.val.max_activation; }},
      {"heatmap_mse", "Reconstruction MSE", "%.3g", [](const SweepResult& r) { return r.val.mse; }}};
  for (const auto& h : heatmaps) plot.heatmap(h.name, h.title, "K", k_labels, "latent_dim", d_labels, grid_of(h.value), h.format);
  std::vector<Plotter::Series> series;
  for (index_t d : ds) {
    Plotter::Series line{"latent_dim=" + std::to_string(d), {}, {}, {}};
    for (index_t k : ks) {
      const auto it = std::find(order.begin(), order.end(), std::make_pair(k, d));
      line.x.push_back(static_cast<double>(k));
      line.y.push_back(by.at({k, d})->val.explained_variance);
      line.highlight.push_back(pareto.on_front[static_cast<std::size_t>(it - order.begin())]);
    }
    series.push_back(line);
  }
  Plotter::LineStyle style;
  style.log_x = true;
  plot.lines("pareto_frontier", "Quality-sparsity trade-off (validation EV)", "K (active latents per sample)",
             "explained variance", series, style);

  // ---- Markdown report ----
  std::ostringstream md;
  md << "# TopK SAE grid (report 001)\n\n"
     << "- **Data**: " << s.source << "\n- **Split**: " << s.split << " (" << s.train_rows << " train, " << s.validation_rows
     << " validation), D = " << s.input_dim << "\n- **Training**: Adam lr " << plan.adam.lr << ", " << plan.train.epochs
     << " epochs, batch " << plan.train.batch_size << ", MSE loss, unit-norm decoder without bias, top-K on the encoder output\n"
     << "- **Metrics**: on the validation rows; EV = 1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖² "
        "(the reports' 1 − var(r)/var(x) is in the JSON as `explained_variance_reports`)\n\n";
  md << "## Explained variance\n\n" << metric_table(plan, by, "EV", grid_detail::ev_cell, true)
     << "\n![EV](figures/heatmap_explained_variance.png)\n\n";
  md << "## Feature death\n\n"
     << metric_table(plan, by, "dead %",
                     [](const SweepResult& r) {
                       return fmt("%.1f%%", 100 * r.val.dead_fraction) + " (" + std::to_string(r.val.alive_latents) + " active)";
                     },
                     false)
     << "\n![Feature death](figures/heatmap_feature_death_rate.png)\n\n";
  md << "## Activation magnitudes\n\n"
     << metric_table(plan, by, "mean / max",
                     [](const SweepResult& r) {
                       return fmt("%.3g", r.val.mean_active_activation) + " / " + fmt("%.3g", r.val.max_activation);
                     },
                     false)
     << "\n![Mean activation](figures/heatmap_mean_activation.png) ![Max activation](figures/heatmap_max_activation.png)\n\n";
  md << "## Reconstruction MSE\n\n"
     << metric_table(plan, by, "MSE", [](const SweepResult& r) { return fmt("%.4g", r.val.mse); }, false)
     << "\n![MSE](figures/heatmap_mse.png)\n\n";
  md << "## EV per active latent\n\n"
     << metric_table(plan, by, "EV/active", [](const SweepResult& r) { return fmt("%.3g%%", 100 * r.val.ev_per_active_latent); },
                     false)
     << "\n";
  MarkdownTable front({"config", "EV", "Pareto-optimal", "dominated by"});
  for (std::size_t i = 0; i < order.size(); ++i) {
    std::string dom;
    for (int o : pareto.dominated_by[i]) dom += (dom.empty() ? "" : "; ") + label(static_cast<std::size_t>(o));
    front.row({label(i), fmt("%.3f", by.at(order[i])->val.explained_variance), pareto.on_front[i] ? "yes" : "no",
               dom.empty() ? "—" : dom});
  }
  md << "## Pareto analysis\n\nObjectives: maximise EV, minimise K, minimise latent_dim. " << analysis.on_front << " of "
     << order.size() << " configurations are Pareto-optimal.\n\n" << front.str() << "\n![Pareto frontier](figures/pareto_frontier.png)\n\n";

  const auto& g = analysis;
  const auto yn = [](bool b) { return b ? "**holds**" : "**does not hold**"; };
  md << "## The report's findings on this data\n\n"
     << "- EV rises with K at every latent_dim: " << yn(g.ev_rises_with_k) << "\n"
     << "- Feature death falls with K at every latent_dim: " << yn(g.dead_falls_with_k) << "\n"
     << "- Feature death rises with latent_dim at every K: " << yn(g.dead_rises_with_d) << "\n"
     << "- latent_dim matters less than K: mean EV change from K=" << ks.front() << " to K=" << ks.back() << " is "
     << fmt("%+.3f", g.ev_change_over_k) << ", from d=" << ds.front() << " to d=" << ds.back() << " is "
     << fmt("%+.3f", g.ev_change_over_d) << " — " << yn(g.d_matters_less_than_k()) << "\n"
     << "- All configurations Pareto-optimal: " << yn(g.on_front == static_cast<index_t>(order.size())) << "\n";
  write_text_file(run.stage("report.md"), md.str());

  return metric_table(plan, by, "EV", grid_detail::ev_cell, true) + "\n" +
         metric_table(plan, by, "dead %", [](const SweepResult& r) { return fmt("%.1f%%", 100 * r.val.dead_fraction); }, false) +
         "\nPareto-optimal: " + std::to_string(analysis.on_front) + " of " + std::to_string(order.size()) + "\n";
}

}  // namespace sae::report
