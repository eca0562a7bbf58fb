// sae-grid: report 001 — train the K x latent_dim grid of TopK SAEs at one (layer, position),
// then write the metrics (JSON, CSV), a Markdown report shaped like the report's tables, the
// Pareto analysis (maximise EV, minimise K, minimise latent_dim) and heatmap / frontier figures.
// Each finished config is saved at once with its fingerprint (sae::run_sweep), so a rerun
// reuses it when nothing that decided it changed.
#include "common.hpp"
#include "plots.hpp"

#include <sae/analysis/grid.hpp>
#include <sae/data/samples.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace {

using sae::examples::fmt;

using Model = sae::TopKAutoencoder<float>;
namespace fs = std::filesystem;

using ConfigResult = sae::SweepResult;
using sae::index_t;

// Table over K (rows) x d (columns) of one metric, Markdown.
template <class F>
std::string metric_table(const std::vector<long>& ks, const std::vector<long>& ds,
                         const std::map<std::pair<long, long>, ConfigResult>& by, const std::string& label, F cell,
                         bool gain_column) {
  std::ostringstream t;
  t << "| K |";
  for (long d : ds) t << " d=" << d << ' ' << label << " |";
  if (gain_column) t << " Gain (" << ds.front() << "→" << ds.back() << ") |";
  t << "\n|---|";
  for (std::size_t i = 0; i < ds.size() + (gain_column ? 1 : 0); ++i) t << "---|";
  t << '\n';
  for (long k : ks) {
    t << "| " << k << " |";
    for (long d : ds) t << ' ' << cell(by.at({k, d})) << " |";
    if (gain_column) {
      const double a = by.at({k, ds.front()}).val.explained_variance, b = by.at({k, ds.back()}).val.explained_variance;
      t << ' ' << fmt("%+.1f%%", 100 * (b - a) / std::abs(a)) << " |";
    }
    t << '\n';
  }
  return t.str();
}

}  // namespace

int main(int argc, char** argv) {
  return sae::examples::run_main("sae-grid", [&] {
    cxxopts::Options options("sae-grid", "Report 001: the K x latent_dim grid of TopK SAEs, with Pareto analysis and figures.");
    sae::examples::add_data_options(options, SAE_DEFAULT_DATA);
    sae::examples::FieldFlags field_flags(options);
    sae::examples::add_grid_options(options, field_flags);
    // clang-format off
    options.add_options()
      ("samples", "samples.jsonl whose rows match the activations (default: beside --data, if present)", cxxopts::value<std::string>())
      ("out", "output directory", cxxopts::value<std::string>()->default_value("results"));
    // clang-format on
    const auto parsed = sae::examples::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    const auto grid = sae::examples::read_grid_flags(args, field_flags);
    const auto& ks = grid.ks;
    const auto& ds = grid.latents;
    const auto& adam = grid.adam;
    const long epochs = grid.train.epochs, batch = grid.train.batch_size;

    sae::io::RunDirectory run(args["out"].as<std::string>(), "sae-grid");
    sae::examples::write_resolved_config(run, options, args);
    const std::string data_path = args["data"].as<std::string>();
    const sae::io::ArrayFile view(data_path);
    const auto slice = sae::data::slice_or_default(view, sae::examples::layer_position_flags(args));
    std::string samples_path = sae::examples::samples_path_for(args, data_path);
    if (args.count("samples") || fs::exists(samples_path)) {
      const auto samples = sae::data::load_samples(samples_path);
      sae::data::require_matching_rows(samples, view.shape().front(), samples_path, data_path);
    } else {
      samples_path.clear();
    }
    // The report-001 grid: one slice, one SAE after another.
    sae::SweepPlan plan;
    plan.slices = {slice};
    plan.ks = ks, plan.latents = ds, plan.train = grid.train, plan.adam = adam;
    plan.validation_fraction = sae::examples::val_fraction_flag(args);
    plan.force = args.count("force") > 0;
    plan.shared_pass = false;
    plan.slice_in_names = false;
    const std::string source = sae::data::describe_source(data_path, slice);
    const auto split = sae::data::choose_split(view.shape().front(), {plan.validation_fraction, grid.train.seed});
    plan.model = grid.model_options(static_cast<index_t>(split.train.size()));
    plan.recipe = grid.recipe;
    struct {
      std::string source, split;
      index_t train_rows, validation_rows, input_dim, rows;
    } data{source, split.description, static_cast<index_t>(split.train.size()), static_cast<index_t>(split.validation.size()),
           view.shape().back(), view.shape().front()};

    const fs::path out = run.out();
    std::cout << "data: " << data.source << " — " << data.train_rows << " train, " << data.validation_rows
              << " validation, D=" << data.input_dim << " (" << data.split << ")\n"
              << (samples_path.empty() ? "samples: none found (row texts are not needed for this report)\n"
                                       : "samples: " + samples_path + " (" + std::to_string(data.rows) + " rows, matching)\n")
              << "grid: K in {";
    for (std::size_t i = 0; i < ks.size(); ++i) std::cout << (i ? "," : "") << ks[i];
    std::cout << "} x latent_dim in {";
    for (std::size_t i = 0; i < ds.size(); ++i) std::cout << (i ? "," : "") << ds[i];
    std::cout << "}, " << epochs << " epochs, batch " << batch << ", Adam lr " << adam.lr << ", "
              << sae::max_threads() << " threads\n";

    std::map<std::pair<long, long>, ConfigResult> by;
    for (const auto& r : sae::run_sweep(view, plan, run, sae::examples::progress_output()))
      by[{r.k, r.latents}] = r;
    sae::examples::test_fault_point("after-training");

    const auto grid_analysis = sae::analysis::analyse_grid(ks, ds, [&](index_t k, index_t d) -> const sae::metrics::Evaluation& {
      return by.at({k, d}).val;
    });
    const auto& order = grid_analysis.order;
    const auto& pareto = grid_analysis.pareto;
    const auto label = [&](std::size_t i) { return sae::analysis::grid_label(order[i].first, order[i].second); };

    // ---- JSON + CSV ----
    sae::io::Json doc = sae::io::Json::object();
    doc["report"] = "001 TopK grid";
    doc["data"] = data.source;
    doc["split"] = data.split;
    doc["train_rows"] = data.train_rows;
    doc["validation_rows"] = data.validation_rows;
    doc["input_dim"] = data.input_dim;
    doc["epochs"] = epochs;
    doc["batch_size"] = batch;
    doc["lr"] = adam.lr;
    doc["metrics_on"] = "validation";
    // The run's fingerprint (what every config shares), as sae-sweep's summary.json has it.
    doc["fingerprint"] = sae::sweep_run_fingerprint(by.begin()->second.fingerprint.at("data"), plan, data.rows);
    std::ostringstream csv;
    csv << "k,latent_dim,explained_variance,explained_variance_reports,dead_fraction,alive_latents,"
           "mean_active_activation,max_activation,mse,l0,ev_per_active_latent,seconds,pareto_optimal\n";
    for (std::size_t i = 0; i < order.size(); ++i) {
      const auto& r = by.at(order[i]);
      sae::io::Json j = sae::to_json(r);
      j["pareto_optimal"] = static_cast<bool>(pareto.on_front[i]);
      sae::io::Json dom = sae::io::Json::array();
      for (int o : pareto.dominated_by[i]) dom.push_back(label(static_cast<std::size_t>(o)));
      j["dominated_by"] = dom;
      doc["configs"].push_back(j);
      csv << r.k << ',' << r.latents << ',' << fmt("%.6f", r.val.explained_variance) << ','
          << fmt("%.6f", r.val.explained_variance_reports) << ',' << fmt("%.6f", r.val.dead_fraction) << ','
          << r.val.alive_latents << ',' << fmt("%.6g", r.val.mean_active_activation) << ','
          << fmt("%.6g", r.val.max_activation) << ',' << fmt("%.6g", r.val.mse) << ',' << fmt("%.4f", r.val.l0) << ','
          << fmt("%.6g", r.val.ev_per_active_latent) << ',' << fmt("%.2f", r.seconds) << ','
          << (pareto.on_front[i] ? "true" : "false") << '\n';
    }
    sae::io::write_text_atomically(run.stage("grid_metrics.json"), doc.dump() + "\n");
    sae::io::write_text_atomically(run.stage("grid_metrics.csv"), csv.str());

    // ---- figures ----
    sae::examples::Plotter plot(run.stage("figures"), !args.count("no-plots"));
    std::vector<std::string> k_labels, d_labels;
    for (long k : ks) k_labels.push_back(std::to_string(k));
    for (long d : ds) d_labels.push_back(std::to_string(d));
    const auto grid_of = [&](auto metric) {
      std::vector<std::vector<double>> g;
      for (long k : ks) {
        g.emplace_back();
        for (long d : ds) g.back().push_back(metric(by.at({k, d})));
      }
      return g;
    };
    const struct {
      const char *name, *title, *format;
      double (*value)(const ConfigResult&);
    } heatmaps[] = {
        {"heatmap_explained_variance", "Explained variance (validation)", "%.3f",
         [](const ConfigResult& r) { return r.val.explained_variance; }},
        {"heatmap_feature_death_rate", "Feature death rate (%)", "%.1f", [](const ConfigResult& r) { return 100 * r.val.dead_fraction; }},
        {"heatmap_mean_activation", "Mean activation of active latents", "%.3g",
         [](const ConfigResult& r) { return r.val.mean_active_activation; }},
        {"heatmap_max_activation", "Max activation", "%.3g", [](const ConfigResult& r) { return r.val.max_activation; }},
        {"heatmap_mse", "Reconstruction MSE", "%.3g", [](const ConfigResult& r) { return r.val.mse; }}};
    for (const auto& h : heatmaps)
      plot.heatmap(h.name, h.title, "K", k_labels, "latent_dim", d_labels, grid_of(h.value), h.format);
    std::vector<sae::examples::Plotter::Series> series;
    for (long d : ds) {
      sae::examples::Plotter::Series s{"latent_dim=" + std::to_string(d), {}, {}, {}};
      for (long k : ks) {
        const auto it = std::find(order.begin(), order.end(), std::make_pair(k, d));
        s.x.push_back(static_cast<double>(k));
        s.y.push_back(by.at({k, d}).val.explained_variance);
        s.highlight.push_back(pareto.on_front[static_cast<std::size_t>(it - order.begin())]);
      }
      series.push_back(s);
    }
    sae::examples::Plotter::LineStyle style;
    style.log_x = true;
    plot.lines("pareto_frontier", "Quality-sparsity trade-off (validation EV)", "K (active latents per sample)",
               "explained variance", series, style);

    // ---- Markdown report ----
    std::ostringstream md;
    md << "# TopK SAE grid (report 001)\n\n"
       << "- **Data**: " << data.source << "\n- **Split**: " << data.split << " (" << data.train_rows << " train, "
       << data.validation_rows << " validation), D = " << data.input_dim
       << "\n- **Training**: Adam lr " << adam.lr << ", " << epochs << " epochs, batch " << batch
       << ", MSE loss, unit-norm decoder without bias, top-K on the encoder output\n"
       << "- **Metrics**: on the validation rows; EV = 1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖² "
          "(the reports' 1 − var(r)/var(x) is in the JSON as `explained_variance_reports`)\n\n";
    md << "## Explained variance\n\n"
       << metric_table(ks, ds, by, "EV", [](const ConfigResult& r) { return fmt("%.3f", r.val.explained_variance); }, true)
       << "\n![EV](figures/heatmap_explained_variance.png)\n\n";
    md << "## Feature death\n\n"
       << metric_table(ks, ds, by, "dead %",
                       [](const ConfigResult& r) {
                         return fmt("%.1f%%", 100 * r.val.dead_fraction) + " (" + std::to_string(r.val.alive_latents) + " active)";
                       },
                       false)
       << "\n![Feature death](figures/heatmap_feature_death_rate.png)\n\n";
    md << "## Activation magnitudes\n\n"
       << metric_table(ks, ds, by, "mean / max",
                       [](const ConfigResult& r) {
                         return fmt("%.3g", r.val.mean_active_activation) + " / " + fmt("%.3g", r.val.max_activation);
                       },
                       false)
       << "\n![Mean activation](figures/heatmap_mean_activation.png) ![Max activation](figures/heatmap_max_activation.png)\n\n";
    md << "## Reconstruction MSE\n\n"
       << metric_table(ks, ds, by, "MSE", [](const ConfigResult& r) { return fmt("%.4g", r.val.mse); }, false)
       << "\n![MSE](figures/heatmap_mse.png)\n\n";
    md << "## EV per active latent\n\n"
       << metric_table(ks, ds, by, "EV/active",
                       [](const ConfigResult& r) { return fmt("%.3g%%", 100 * r.val.ev_per_active_latent); }, false)
       << "\n";
    md << "## Pareto analysis\n\nObjectives: maximise EV, minimise K, minimise latent_dim. " << grid_analysis.on_front << " of "
       << order.size() << " configurations are Pareto-optimal.\n\n| config | EV | Pareto-optimal | dominated by |\n|---|---|---|---|\n";
    for (std::size_t i = 0; i < order.size(); ++i) {
      std::string dom;
      for (int o : pareto.dominated_by[i]) dom += (dom.empty() ? "" : "; ") + label(static_cast<std::size_t>(o));
      md << "| " << label(i) << " | " << fmt("%.3f", by.at(order[i]).val.explained_variance) << " | "
         << (pareto.on_front[i] ? "yes" : "no") << " | " << (dom.empty() ? "—" : dom) << " |\n";
    }
    md << "\n![Pareto frontier](figures/pareto_frontier.png)\n\n";

    const auto& g = grid_analysis;
    const auto yn = [](bool b) { return b ? "**holds**" : "**does not hold**"; };
    md << "## The report's findings on this data\n\n"
       << "- EV rises with K at every latent_dim: " << yn(g.ev_rises_with_k) << "\n"
       << "- Feature death falls with K at every latent_dim: " << yn(g.dead_falls_with_k) << "\n"
       << "- Feature death rises with latent_dim at every K: " << yn(g.dead_rises_with_d) << "\n"
       << "- latent_dim matters less than K: mean EV change from K=" << ks.front() << " to K=" << ks.back() << " is "
       << fmt("%+.3f", g.ev_change_over_k) << ", from d=" << ds.front() << " to d=" << ds.back() << " is "
       << fmt("%+.3f", g.ev_change_over_d) << " — " << yn(g.d_matters_less_than_k()) << "\n"
       << "- All configurations Pareto-optimal: " << yn(g.on_front == static_cast<index_t>(order.size())) << "\n";
    sae::io::write_text_atomically(run.stage("report.md"), md.str());
    sae::examples::test_fault_point("before-commit");
    run.commit({"configs"});

    std::cout << "\n" << metric_table(ks, ds, by, "EV", [](const ConfigResult& r) { return fmt("%.3f", r.val.explained_variance); }, true)
              << "\n" << metric_table(ks, ds, by, "dead %", [](const ConfigResult& r) { return fmt("%.1f%%", 100 * r.val.dead_fraction); }, false)
              << "\nPareto-optimal: " << grid_analysis.on_front << " of " << order.size() << "\n"
              << "wrote " << (out / "report.md").string() << ", grid_metrics.json, grid_metrics.csv, configs/, figures/"
              << (plot.available() ? "" : " (no PNGs: gnuplot unavailable or --no-plots)") << "\n";
    return 0;
  });
}
