// The report-002 sweep's summary (sae-sweep): overall EV and dead-latent statistics, the best
// configurations, layer and position effects with their interaction (analysis/sweep_effects.hpp),
// and per-K layer x position heatmaps; summary.json and report.md.
#pragma once

#include <sae/analysis/summary_stats.hpp>
#include <sae/analysis/sweep_effects.hpp>
#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/io/atomic_file.hpp>
#include <sae/data/open_rows.hpp>
#include <sae/io/array_file.hpp>
#include <sae/io/json.hpp>
#include <sae/io/run_directory.hpp>
#include <sae/report/figures.hpp>
#include <sae/report/text.hpp>
#include <sae/train/sweep.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

namespace sae::report {

namespace sweep_detail {
inline std::string config_label(const SweepResult& r) {
  return data::describe(*r.slice) + ", K=" + std::to_string(r.k) + ", d=" + std::to_string(r.latents);
}

inline io::Json describe_json(const analysis::Summary& s) {
  io::Json j = io::Json::object();
  j["mean"] = s.mean;
  j["std"] = s.std;
  j["min"] = s.min;
  j["max"] = s.max;
  return j;
}
}  // namespace sweep_detail

// Writes summary.json, report.md and figures/ into the run's staging folder from every result of a
// finished sweep over `layers` x `positions` of `view`; returns a few lines for the console.
inline std::string write_sweep_report(io::RunDirectory& run, const data::ArraySet& view, const SweepPlan& plan,
                                      const std::vector<index_t>& layers, const std::vector<index_t>& positions,
                                      const std::vector<SweepResult>& results, bool plots, std::ostream& note = std::cout) {
  using sweep_detail::config_label;
  using sweep_detail::describe_json;
  detail::require(!results.empty(), "write_sweep_report()", "no results");
  std::vector<double> evs, deads;
  for (const auto& r : results) evs.push_back(r.val.explained_variance), deads.push_back(r.val.dead_fraction);
  const auto ev_stats = analysis::describe(evs), dead_stats = analysis::describe(deads);
  const auto best_ev = *std::max_element(results.begin(), results.end(), [](const auto& a, const auto& b) {
    return std::isnan(a.val.explained_variance) ? !std::isnan(b.val.explained_variance)  // undefined: never best
                                                : a.val.explained_variance < b.val.explained_variance;
  });
  const auto least_dead = *std::min_element(results.begin(), results.end(), [](const auto& a, const auto& b) {
    return a.val.dead_fraction < b.val.dead_fraction ||
           (a.val.dead_fraction == b.val.dead_fraction && a.val.explained_variance > b.val.explained_variance);
  });
  const auto effects = analysis::sweep_effects(results, layers, positions);

  io::Json doc = io::Json::object();
  doc["report"] = "002 multi-layer sweep";
  doc["data"] = view.spec();
  doc["shape"] = view.shape_string();
  doc["saes"] = static_cast<long>(results.size());
  doc["epochs"] = plan.train.epochs;
  doc["batch_size"] = plan.train.batch_size;
  doc["lr"] = plan.adam.lr;
  doc["fingerprint"] = sweep_run_fingerprint(results.front().fingerprint.at("data"), plan, view.shape().front());
  doc["explained_variance"] = describe_json(ev_stats);
  doc["dead_fraction"] = describe_json(dead_stats);
  doc["best_by_ev"] = to_json(best_ev);
  doc["best_by_lowest_death"] = to_json(least_dead);

  std::ostringstream md;
  md << "# Multi-layer TopK SAE sweep (report 002)\n\n- **Data**: " << view.spec() << " " << view.shape_string()
     << "\n- **SAEs**: " << results.size() << " = " << layers.size() << " layers x " << positions.size() << " positions x "
     << plan.ks.size() << " K x " << plan.latents.size() << " latent_dim\n- **Training**: Adam lr " << plan.adam.lr << ", "
     << plan.train.epochs << " epochs, batch " << plan.train.batch_size << "; metrics on the validation rows\n\n## Overall\n\n"
     << MarkdownTable({"metric", "mean", "std", "min", "max"})
            .row({"explained variance", fmt("%.4f", ev_stats.mean), fmt("%.4f", ev_stats.std), fmt("%.4f", ev_stats.min),
                  fmt("%.4f", ev_stats.max)})
            .row({"dead latents (%)", fmt("%.1f", 100 * dead_stats.mean), fmt("%.1f", 100 * dead_stats.std),
                  fmt("%.1f", 100 * dead_stats.min), fmt("%.1f", 100 * dead_stats.max)})
            .str()
     << "\n## Best configurations\n\n- By EV: " << config_label(best_ev) << " — EV " << fmt("%.4f", best_ev.val.explained_variance)
     << ", " << fmt("%.1f%%", 100 * best_ev.val.dead_fraction) << " dead\n- By lowest death: " << config_label(least_dead) << " — "
     << fmt("%.1f%%", 100 * least_dead.val.dead_fraction) << " dead, EV " << fmt("%.4f", least_dead.val.explained_variance)
     << "\n\n";

  MarkdownTable layer_table({"layer", "mean EV", "mean dead %", "best config (EV)"});
  io::Json layer_json = io::Json::array();
  for (const auto& le : effects.layers) {
    const SweepResult& best = results[le.best];
    layer_table.row({std::to_string(le.layer), fmt("%.4f", le.mean_ev), fmt("%.1f", 100 * le.mean_dead),
                     config_label(best) + ", EV " + fmt("%.4f", best.val.explained_variance)});
    io::Json j = io::Json::object();
    j["layer"] = le.layer;
    j["mean_ev"] = le.mean_ev;
    j["mean_dead_fraction"] = le.mean_dead;
    j["best"] = to_json(best);
    layer_json.push_back(j);
  }
  md << "## Layer effects (mean over positions and configs)\n\n" << layer_table.str();
  doc["layers"] = layer_json;
  MarkdownTable position_table({"position", "mean EV", "mean dead %"});
  io::Json pos_json = io::Json::array();
  for (const auto& pe : effects.positions) {
    position_table.row({std::to_string(pe.position), fmt("%.4f", pe.mean_ev), fmt("%.1f", 100 * pe.mean_dead)});
    io::Json j = io::Json::object();
    j["position"] = pe.position;
    j["mean_ev"] = pe.mean_ev;
    j["mean_dead_fraction"] = pe.mean_dead;
    pos_json.push_back(j);
  }
  md << "\n## Position effects (mean over layers and configs)\n\n" << position_table.str();
  doc["positions"] = pos_json;

  std::vector<std::string> header = {"layer \\ position"};
  for (index_t p : positions) header.push_back(std::to_string(p));
  MarkdownTable cells(header);
  for (std::size_t a = 0; a < layers.size(); ++a) {
    std::vector<std::string> row = {std::to_string(layers[a])};
    for (std::size_t b = 0; b < positions.size(); ++b)
      row.push_back(fmt("%.4f", effects.cell_ev[a][b]) + " (" + fmt("%+.4f", effects.interaction[a][b]) + ")");
    cells.row(row);
  }
  const std::string max_cell = effects.largest_interaction == 0 ? "" : data::describe(effects.largest_cell);
  md << "\n## Layer x position interaction\n\nMean EV per cell (over configs); in brackets the interaction "
        "term = cell − layer mean − position mean + grand mean.\n\n"
     << cells.str() << "\nLargest interaction: " << fmt("%+.4f", effects.largest_interaction) << " EV at " << max_cell << ".\n\n";
  doc["largest_interaction"] = effects.largest_interaction;
  doc["largest_interaction_cell"] = max_cell;

  // ---- heatmaps per K ----
  Plotter plot(run.stage("figures"), plots, note);
  std::vector<std::string> layer_labels, pos_labels;
  for (index_t l : layers) layer_labels.push_back(std::to_string(l));
  for (index_t p : positions) pos_labels.push_back(std::to_string(p));
  md << "## Layer x position heatmaps per K (mean over latent_dim)\n\n";
  for (index_t k : plan.ks) {
    std::vector<std::vector<double>> ev_grid, dead_grid;
    for (index_t l : layers) {
      ev_grid.emplace_back();
      dead_grid.emplace_back();
      for (index_t p : positions) {
        ev_grid.back().push_back(analysis::sweep_mean(results, l, p, k, analysis::ev_of));
        dead_grid.back().push_back(100 * analysis::sweep_mean(results, l, p, k, analysis::dead_of));
      }
    }
    const std::string ks = std::to_string(k);
    plot.heatmap("ev_K" + ks, "Explained variance, K=" + ks, "layer", layer_labels, "position", pos_labels, ev_grid, "%.3f");
    plot.heatmap("dead_K" + ks, "Dead latents (%), K=" + ks, "layer", layer_labels, "position", pos_labels, dead_grid, "%.0f");
    md << "![EV K=" << ks << "](figures/ev_K" << ks << ".png) ![dead K=" << ks << "](figures/dead_K" << ks << ".png)\n";
  }
  io::Json all = io::Json::array();
  for (const auto& r : results) all.push_back(to_json(r));
  doc["results"] = all;
  io::write_text_atomically(run.stage("summary.json"), doc.dump() + "\n");
  write_text_file(run.stage("report.md"), md.str());
  return "EV mean " + fmt("%.4f", ev_stats.mean) + " ± " + fmt("%.4f", ev_stats.std) + " (range " + fmt("%.4f", ev_stats.min) +
         "–" + fmt("%.4f", ev_stats.max) + "), dead " + fmt("%.1f%%", 100 * dead_stats.mean) + " ± " +
         fmt("%.1f%%", 100 * dead_stats.std) + "\nbest by EV: " + config_label(best_ev) + " (" +
         fmt("%.4f", best_ev.val.explained_variance) + ")\n";
}

}  // namespace sae::report
