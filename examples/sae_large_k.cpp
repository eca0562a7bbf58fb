// sae-large-k: report 003 — TopK SAEs with large K (100, 200, 300) at d=512: the metrics table,
// the specialization analysis of a rare-latent rank range (400-512) per K, the frequency
// distribution of that range, and the sorted activation-frequency curves of every model.
#include "layer_analysis.hpp"
#include "output_paths.hpp"
#include <sae/report/figures.hpp>

#include <sae/analysis/grid.hpp>
#include <sae/analysis/summary_stats.hpp>

namespace {

using sae::index_t;
using sae::examples::fmt;
namespace fs = std::filesystem;
namespace an = sae::analysis;

struct ModelResult {
  index_t k = 0, d = 0;
  sae::metrics::Evaluation val;
  sae::analysis::RangeAnalysis range;
  std::vector<double> sorted_frequency;  // all latents, descending
};

std::string name_of(const ModelResult& r) { return an::grid_label(r.k, r.d); }

// Frequencies of the latents in the range that fire at all.
std::vector<double> range_frequencies(const sae::analysis::RangeAnalysis& r) {
  std::vector<double> f;
  for (const auto& p : r.latents)
    if (p.active_samples > 0) f.push_back(p.frequency);
  return f;
}

std::string verdict(bool holds) { return holds ? "**holds**" : "**does not hold**"; }

}  // namespace

int main(int argc, char** argv) {
  return sae::examples::run_main("sae-large-k", [&] {
    cxxopts::Options options("sae-large-k", "Report 003: large K, specialization of rare latents, frequency curves.");
    sae::examples::FieldFlags field_flags(options);
    sae::examples::add_data_options(field_flags, SAE_DEFAULT_DATA);
    sae::examples::add_grid_options(options, field_flags, "100,200,300", "512", /*resumable=*/false);
    sae::examples::add_specialization_options(options);
    // clang-format off
    options.add_options()
      ("samples", "samples.jsonl matching the rows (default: beside --data)", cxxopts::value<std::string>())
      ("ranks", "rank range analysed for specialization", cxxopts::value<std::string>()->default_value("400-512"))
      ("out", "output directory", cxxopts::value<std::string>()->default_value("results/large_k"));
    // clang-format on
    const auto parsed = sae::examples::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    const auto flags = sae::examples::read_grid_flags(args, field_flags);
    const auto thresholds = sae::examples::read_specialization_flags(args);
    const index_t top_samples = sae::examples::int_flag(args, "top-samples", 1, 1000000);
    an::RankRange range;
    try {
      range = an::parse_rank_range(args["ranks"].as<std::string>());
    } catch (const sae::invalid_argument& e) {
      throw sae::invalid_argument(std::string("--ranks: ") + e.what());
    }
    sae::examples::check_flag(range.last <= flags.latents.front(),
                              "--ranks: rank range " + range.label() + " lies outside the smallest model's " +
                                  std::to_string(flags.latents.front()) + " latents");

    const auto data = sae::examples::data_flags(args, field_flags);
    const std::string samples_path = sae::examples::require_samples(args, data.data);
    const auto layer = sae::analysis::load_annotated_layer(data.data, data.slice(), sae::data::load_samples(samples_path),
                                                           samples_path, data.split(flags.train.seed));
    sae::examples::refuse_idle_step_flags(args, flags.train, layer.data.train.rows());
    sae::examples::require_outputs_apart(args, {"out"});
    sae::io::RunDirectory run(args["out"].as<std::string>(), "sae-large-k");
    sae::examples::write_resolved_config(run, options, args);
    const fs::path out = run.out();
    std::cout << "data: " << layer.data.source << " — " << layer.data.train.rows() << " train, "
              << layer.data.validation.rows() << " validation rows; specialization over ranks " << range.label()
              << ", top " << top_samples << " samples per latent\n";

    std::vector<ModelResult> results;
    const int count = static_cast<int>(flags.ks.size() * flags.latents.size());
    for (index_t d : flags.latents)
      for (index_t k : flags.ks) {
        ModelResult r;
        r.k = k, r.d = d;
        const auto model = sae::examples::train_topk(
            layer.data, k, d, flags,
            "[" + std::to_string(results.size() + 1) + "/" + std::to_string(count) + " " + name_of(r) + "]");
        r.val = sae::metrics::evaluate(model, layer.data.validation);
        const auto ranking = an::rank_by_frequency(r.val.activation_frequency);
        r.range = sae::analysis::analyse_range(model.encode(layer.data.validation), ranking, range, top_samples, layer.validation_features,
                                               thresholds);
        for (index_t j : ranking) r.sorted_frequency.push_back(r.val.activation_frequency[static_cast<std::size_t>(j)]);
        results.push_back(std::move(r));
      }

    std::ostringstream md;
    md << "# Large K: specialization and activation frequency (report 003)\n\n"
       << "Data `" << layer.data.source << "`, " << layer.data.train.rows() << " train / " << layer.data.validation.rows()
       << " validation rows (" << layer.data.split << "); " << flags.train.epochs << " epochs, batch " << flags.train.batch_size << ", Adam lr "
       << flags.adam.lr << ". Metrics on validation.\n\n## Training metrics\n\n"
       << "| Config | EV | Reconstruction loss (MSE) | Death rate | Active latents |\n|---|---|---|---|---|\n";
    for (const auto& r : results)
      md << "| " << name_of(r) << " | " << fmt("%.1f%%", 100 * r.val.explained_variance) << " | " << fmt("%.4f", r.val.mse)
         << " | " << fmt("%.1f%%", 100 * r.val.dead_fraction) << " | " << r.val.alive_latents << "/" << r.d << " |\n";
    md << "\n## Specialization (ranks " << range.label() << ")\n\n"
       << "Each latent in the range that fires on at least one validation sample is classified from its top " << top_samples
       << " samples: operation-specialized when one operation is in more than " << fmt("%.0f%%", 100 * thresholds.operation_dominant)
       << " of them and every other in under " << fmt("%.0f%%", 100 * thresholds.operation_other)
       << "; value-specialized when one operand value is in more than " << fmt("%.0f%%", 100 * thresholds.value_dominant)
       << " and every other in under " << fmt("%.0f%%", 100 * thresholds.value_other) << "; highly specialized when both.\n\n"
       << "| Config | Latents analysed | Specialized | Rate | operation / value / highly | Min activation freq |\n"
       << "|---|---|---|---|---|---|\n";
    for (const auto& r : results) {
      const auto& t = r.range.taxonomy;
      const auto kind = [&](an::SpecializationKind k) { return t.by_kind[static_cast<std::size_t>(k)]; };
      md << "| " << name_of(r) << " | " << t.latents << (t.dead ? " (+" + std::to_string(t.dead) + " dead)" : "") << " | "
         << t.specialized << " | " << fmt("%.1f%%", 100 * t.specialized_rate()) << " | "
         << kind(an::SpecializationKind::operation) << " / " << kind(an::SpecializationKind::value) << " / "
         << kind(an::SpecializationKind::highly) << " | " << fmt("%.2f%%", 100 * t.min_frequency) << " |\n";
    }
    md << "\n## Activation frequency in ranks " << range.label() << "\n\n| Config | Range | Median | Latents under 1% |\n"
       << "|---|---|---|---|\n";
    for (const auto& r : results) {
      const auto f = range_frequencies(r.range);
      if (f.empty()) {
        md << "| " << name_of(r) << " | — | — | — |\n";
        continue;
      }
      const auto s = an::describe(f);
      md << "| " << name_of(r) << " | " << fmt("%.2f%%", 100 * s.min) << " - " << fmt("%.2f%%", 100 * s.max) << " | "
         << fmt("%.2f%%", 100 * s.median) << " | " << std::count_if(f.begin(), f.end(), [](double x) { return x < 0.01; })
         << " |\n";
    }
    md << "\n## Specialized latents\n\n";
    for (const auto& r : results)
      md << "### " << name_of(r) << "\n\n" << sae::examples::specialized_md(r.range, layer, 3) << "\n";

    // The report's findings, checked on this data (in the order of K, at each d).
    md << "## The report's findings on this data\n\n";
    for (index_t d : flags.latents) {
      std::vector<const ModelResult*> at;
      for (const auto& r : results)
        if (r.d == d) at.push_back(&r);
      if (at.size() < 2) continue;
      bool ev_rises = true, spec_falls = true, min_rises = true;
      for (std::size_t i = 1; i < at.size(); ++i) {
        ev_rises &= at[i]->val.explained_variance > at[i - 1]->val.explained_variance;
        spec_falls &= at[i]->range.taxonomy.specialized <= at[i - 1]->range.taxonomy.specialized;
        min_rises &= at[i]->range.taxonomy.min_frequency >= at[i - 1]->range.taxonomy.min_frequency;
      }
      md << "- d=" << d << ": larger K improves EV — " << verdict(ev_rises)
         << "; larger K leaves no more specialized latents in ranks " << range.label() << " (count never rises) — "
         << verdict(spec_falls) << " (" << at.front()->range.taxonomy.specialized << " at K=" << at.front()->k << ", "
         << at.back()->range.taxonomy.specialized << " at K=" << at.back()->k
         << "); the range's minimum frequency rises with K — " << verdict(min_rises) << "\n";
    }

    // Curves: every latent's frequency, sorted, one line per model, the analysed range shaded.
    sae::report::Plotter plot(run.stage("figures"), !args.count("no-plots"));
    std::vector<sae::report::Plotter::Series> series;
    for (const auto& r : results) {
      sae::report::Plotter::Series s;
      s.label = name_of(r);
      for (std::size_t i = 0; i < r.sorted_frequency.size(); ++i) {
        s.x.push_back(static_cast<double>(i + 1));
        s.y.push_back(std::max(100 * r.sorted_frequency[i], 1e-2));  // log axis: never-firing latents at 0.01%
      }
      series.push_back(s);
    }
    sae::report::Plotter::LineStyle style;
    style.log_y = true;
    style.points = false;
    style.key = "bottom left";
    style.band = std::make_pair(static_cast<double>(range.first), static_cast<double>(range.last));
    style.band_label = "ranks " + range.label();
    plot.lines("activation_curves", "Activation frequency by rank (validation)", "rank by frequency",
               "activation frequency (%)", series, style);
    md << "\n![activation frequency curves](figures/activation_curves.png)\n";

    sae::io::Json j = sae::io::Json::object();
    j["data"] = layer.data.source;
    j["rank_range"] = range.label();
    j["models"] = sae::io::Json::array();
    for (const auto& r : results) {
      sae::io::Json m = sae::metrics::to_json(r.val);
      m["k"] = r.k;
      m["latent_dim"] = r.d;
      m["specialization"] = sae::analysis::to_json(r.range, layer);
      m["sorted_activation_frequency"] = sae::io::Json::array();
      for (double f : r.sorted_frequency) m["sorted_activation_frequency"].push_back(f);
      j["models"].push_back(m);
    }
    sae::io::write_text_atomically(run.stage("large_k.json"), j.dump() + "\n");
    sae::report::write_text_file(run.stage("report.md"), md.str());  // valid UTF-8 whatever the samples hold
    sae::examples::test_fault_point("before-commit");
    run.commit();
    for (const auto& r : results)
      std::cout << name_of(r) << ": EV " << fmt("%.3f", r.val.explained_variance) << ", dead "
                << fmt("%.1f%%", 100 * r.val.dead_fraction) << ", specialized in " << range.label() << ": "
                << r.range.taxonomy.specialized << "/" << r.range.taxonomy.latents << "\n";
    std::cout << "wrote " << (out / "report.md").string() << ", large_k.json, figures/activation_curves"
              << (plot.available() ? ".png" : ".gp (no PNG: gnuplot unavailable or --no-plots)") << "\n";
    return 0;
  });
}
