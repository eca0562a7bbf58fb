// sae-hierarchy: report 004 — the feature hierarchy of a late and an early layer: the
// specialization taxonomy over rank ranges, the specialized latents with their top samples, the
// intervention engine's sanity checks, and the two ablation validations (the most frequent latents,
// and the specialized ones, with a "too rare to validate" state).
#include "layer_analysis.hpp"
#include "output_paths.hpp"
#include <sae/report/figures.hpp>

#include <sae/analysis/interventions.hpp>

#include <set>

namespace {

using sae::index_t;
using sae::examples::fmt;
using Model = sae::TopKAutoencoder<float>;
namespace fs = std::filesystem;
namespace an = sae::analysis;

// `scale`: the mean |reconstruction|, so impacts can be compared across models and data.
std::string impact_row(const an::LatentImpact& li, const std::string& first_cells, double n, double scale) {
  return "| " + first_cells + " | " + fmt("%.2f%%", 100 * static_cast<double>(li.active_samples) / n) + " (" +
         std::to_string(li.active_samples) + ") | " + fmt("%.6f", li.mean_abs) + " | " + fmt("%.2f%%", 100 * li.mean_abs / scale) +
         " | " + fmt("%.4f", li.max_abs) + " | " + fmt("%.4f", li.mean_abs_on_active) + " | " + an::name(li.grade) + " |\n";
}

}  // namespace

int main(int argc, char** argv) {
  return sae::examples::run_main("sae-hierarchy", [&] {
    cxxopts::Options options("sae-hierarchy",
                             "Report 004: specialization taxonomy, specialized latents, interventions and ablation validation.");
    sae::examples::FieldFlags field_flags(options);
    sae::examples::add_data_options(field_flags, SAE_DEFAULT_DATA);
    sae::examples::add_grid_options(options, field_flags, "100", "512", /*resumable=*/false);
    sae::examples::add_early_layer_options(options, SAE_EARLY_DATA);
    sae::examples::add_specialization_options(options);
    // clang-format off
    options.add_options("validation")
      ("late-ranges", "rank ranges of the late layer", cxxopts::value<std::vector<std::string>>()->default_value("1-20,50-200,400-512"))
      ("early-ranges", "rank ranges of the early layer", cxxopts::value<std::vector<std::string>>()->default_value("20-100"))
      ("top-ablate", "most frequent latents to validate by ablation", cxxopts::value<long>()->default_value("10"))
      ("high", "mean impact >= this grades HIGH", cxxopts::value<double>()->default_value("0.1"))
      ("medium", "mean impact >= this grades MEDIUM (below: LOW)", cxxopts::value<double>()->default_value("0.05"))
      ("min-active", "fewer active samples than this: too rare to validate", cxxopts::value<long>()->default_value("10"))
      ("out", "output directory", cxxopts::value<std::string>()->default_value("results/hierarchy"));
    // clang-format on
    const auto parsed = sae::examples::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    const auto flags = sae::examples::read_grid_flags(args, field_flags);
    sae::examples::check_flag(flags.ks.size() == 1 && flags.latents.size() == 1,
                              "sae-hierarchy trains one SAE per layer: give one --ks value and one --latents value");
    const index_t k = flags.ks.front(), d = flags.latents.front();
    const auto thresholds = sae::examples::read_specialization_flags(args);
    using sae::examples::int_flag;
    using sae::examples::number_flag;
    const index_t top_samples = int_flag(args, "top-samples", 1, 1000000), top_ablate = int_flag(args, "top-ablate", 1, d);
    const an::ImpactGrading grading{number_flag(args, "high", 0, 1e30), number_flag(args, "medium", 0, 1e30),
                                    int_flag(args, "min-active", 0)};
    sae::examples::check_flag(grading.medium <= grading.high, "--medium: expected at most --high (" + sae::examples::fmt("%g", grading.high) +
                                                                  "), got " + sae::examples::fmt("%g", grading.medium));
    const auto late_ranges = sae::examples::rank_ranges_flag(args, "late-ranges", d);
    const auto early_ranges = sae::examples::rank_ranges_flag(args, "early-ranges", d);

    sae::examples::require_own_layers(args);
    const auto data = sae::examples::data_flags(args, field_flags);
    sae::examples::require_samples(args, data.data);
    const auto layers = sae::examples::load_two_layers(args, data, flags.train.seed);
    sae::examples::refuse_idle_step_flags(args, flags.train, layers.late.data.train.rows());
    sae::examples::require_outputs_apart(args, {"out"});
    sae::io::RunDirectory run(args["out"].as<std::string>(), "sae-hierarchy");
    sae::examples::write_resolved_config(run, options, args);
    const fs::path out = run.out();
    std::cout << "late layer: " << layers.late.data.source << "\nearly layer: " << layers.early.data.source << "\n"
              << "K=" << k << ", d=" << d << "; top " << top_samples << " samples per latent\n";

    const Model late_model = sae::examples::train_topk(layers.late.data, k, d, flags, "[1/2 late layer]");
    const Model early_model = sae::examples::train_topk(layers.early.data, k, d, flags, "[2/2 early layer]");
    auto late_codes = late_model.encode(layers.late.data.validation);
    const auto late = an::layer_specialization("late", layers.late, late_model, late_codes, late_ranges, top_samples, thresholds);
    const auto early = an::layer_specialization("early", layers.early, early_model,
                                                early_model.encode(layers.early.data.validation), early_ranges, top_samples,
                                                thresholds);

    // Interventions on the late layer's validation codes.
    const an::InterventionEngine<Model> engine(late_model, std::move(late_codes));
    const double n = static_cast<double>(engine.codes().rows);
    std::vector<index_t> top_latents(late.ranking.begin(),
                                     late.ranking.begin() + std::min<std::ptrdiff_t>(top_ablate, late.ranking.size()));
    const auto checks = an::sanity_checks(engine, top_latents);

    const auto validation1 = an::ablation_impact(engine, top_latents, grading);
    std::vector<index_t> specialized;
    std::vector<std::string> specialized_label;
    for (const auto& [latent, label] : late.specialized()) specialized.push_back(latent), specialized_label.push_back(label);
    const auto validation2 = an::ablation_impact(engine, specialized, grading);
    const double mean_abs_x = engine.reconstruction().cwiseAbs().template cast<double>().mean();

    // Report.
    std::ostringstream md;
    md << "# Feature hierarchy: taxonomy, specialized latents, interventions (report 004)\n\n"
       << "Late layer `" << layers.late.data.source << "`, early layer `" << layers.early.data.source << "`; TopK K=" << k
       << ", d=" << d << ", " << flags.train.epochs << " epochs, batch " << flags.train.batch_size << ", Adam lr "
       << flags.adam.lr << ". Validation rows only (" << layers.late.data.split << "). Late EV " << fmt("%.3f", late.val.explained_variance) << " ("
       << fmt("%.1f%%", 100 * late.val.dead_fraction) << " dead), early EV " << fmt("%.3f", early.val.explained_variance)
       << " (" << fmt("%.1f%%", 100 * early.val.dead_fraction) << " dead).\n\n"
       << "Specialization from each latent's top " << top_samples << " samples: one operation in > "
       << fmt("%.0f%%", 100 * thresholds.operation_dominant) << " and every other in < " << fmt("%.0f%%", 100 * thresholds.operation_other)
       << " (operation); one operand value in > " << fmt("%.0f%%", 100 * thresholds.value_dominant) << " and every other in < "
       << fmt("%.0f%%", 100 * thresholds.value_other) << " (value); both (highly).\n\n## Taxonomy\n\n"
       << "| Rank range | Activation freq | Specialized | General | Total |\n|---|---|---|---|---|\n";
    index_t total_spec = 0, total = 0;
    for (const auto* lr : {&late, &early})
      for (const auto& [range, ra] : lr->ranges) {
        const auto& t = ra.taxonomy;
        total_spec += t.specialized, total += t.latents;
        md << "| " << range.label() << " (" << lr->label << ") | " << fmt("%.1f", 100 * t.min_frequency) << "-"
           << fmt("%.1f%%", 100 * t.max_frequency) << " | " << t.specialized << " (" << fmt("%.1f%%", 100 * t.specialized_rate())
           << ") | " << t.general << " | " << t.latents << (t.dead ? " (+" + std::to_string(t.dead) + " dead)" : "") << " |\n";
      }
    md << "| **Total** | — | **" << total_spec << "** | **" << total - total_spec << "** | **" << total << "** |\n\n"
       << "## Specialized latents\n\n";
    for (const auto* lr : {&late, &early})
      for (const auto& [range, ra] : lr->ranges)
        md << "### " << lr->label << " layer, ranks " << range.label() << "\n\n" << sae::examples::specialized_md(ra, *lr->layer, 3)
           << "\n";

    md << "## Intervention engine sanity checks (late layer)\n\n";
    for (const auto& c : checks) md << "- " << (c.ok ? "PASS" : "FAIL") << ": " << c.name << "\n";
    md << "\n## Validation 1: ablating the " << top_latents.size() << " most frequent latents\n\n"
       << "Impact = |reconstruction after ablation − before|: mean over every sample and dimension, max over all, and the mean "
          "over the samples the latent fires on; Relative = mean impact / mean |reconstruction| ("
       << fmt("%.4f", mean_abs_x) << "), since the grades are absolute and activation scales differ between models. Grades: HIGH when mean impact >= " << grading.high << ", MEDIUM >= " << grading.medium
       << ", else LOW; fewer than " << grading.min_active_samples << " active samples: too rare to validate.\n\n"
       << "| Rank | Latent | Activation | Mean impact | Relative | Max impact | Mean on active | Status |\n"
       << "|---|---|---|---|---|---|---|---|\n";
    for (std::size_t i = 0; i < validation1.size(); ++i)
      md << impact_row(validation1[i], std::to_string(i + 1) + " | " + std::to_string(validation1[i].latent), n, mean_abs_x);
    md << "\n## Validation 2: ablating the specialized latents (late layer)\n\n"
       << "| Latent | Type | Activation | Mean impact | Relative | Max impact | Mean on active | Status |\n"
       << "|---|---|---|---|---|---|---|---|\n";
    for (std::size_t i = 0; i < validation2.size(); ++i)
      md << impact_row(validation2[i], std::to_string(validation2[i].latent) + " | " + specialized_label[i], n, mean_abs_x);
    if (validation2.empty()) md << "| — | none found | | | | | | |\n";

    // Findings, checked here.
    const auto rate = [](const sae::analysis::RangeAnalysis& ra) { return ra.taxonomy.specialized_rate(); };
    md << "\n## The report's findings on this data\n\n";
    if (late.ranges.size() >= 2) {
      const bool rarer = rate(late.ranges.front().second) < rate(late.ranges.back().second);
      md << "- Specialization is rarer among frequent latents (late ranks " << late.ranges.front().first.label() << ": "
         << fmt("%.1f%%", 100 * rate(late.ranges.front().second)) << " vs " << late.ranges.back().first.label() << ": "
         << fmt("%.1f%%", 100 * rate(late.ranges.back().second)) << ") — " << (rarer ? "**holds**" : "**does not hold**") << "\n";
    }
    md << "- Specialized latents are a small minority (" << total_spec << " of " << total << ", "
       << fmt("%.1f%%", total ? 100.0 * static_cast<double>(total_spec) / static_cast<double>(total) : 0.0) << ") — "
       << (total && total_spec * 10 < total ? "**holds**" : "**does not hold**") << "\n";
    index_t measurable = 0, too_rare = 0;
    for (const auto& li : validation1) measurable += li.grade != an::ImpactGrade::low && li.grade != an::ImpactGrade::too_rare;
    for (const auto& li : validation2) too_rare += li.grade == an::ImpactGrade::too_rare;
    md << "- Every top latent has a measurable (MEDIUM or HIGH) ablation impact: " << measurable << "/" << validation1.size()
       << " — " << (measurable == static_cast<index_t>(validation1.size()) ? "**holds**" : "**does not hold** at these grades")
       << "\n- Specialized latents are too rare to validate: " << too_rare << "/" << validation2.size() << "\n";

    // Figure: both layers' sorted frequency curves, specialized latents circled.
    sae::report::Plotter plot(run.stage("figures"), !args.count("no-plots"));
    std::vector<sae::report::Plotter::Series> series;
    for (const auto* lr : {&late, &early}) {
      std::set<index_t> spec;
      for (const auto& sl : lr->specialized()) spec.insert(sl.first);
      sae::report::Plotter::Series s;
      s.label = lr->label + " layer";
      for (std::size_t r = 0; r < lr->ranking.size(); ++r) {
        const index_t j = lr->ranking[r];
        s.x.push_back(static_cast<double>(r + 1));
        s.y.push_back(std::max(100 * lr->val.activation_frequency[static_cast<std::size_t>(j)], 1e-2));
        s.highlight.push_back(spec.count(j) > 0);
      }
      series.push_back(s);
    }
    sae::report::Plotter::LineStyle style;
    style.log_y = true;
    style.points = false;
    style.key = "bottom left";
    style.highlight_label = "specialized";
    plot.lines("frequency_specialized", "Activation frequency by rank, specialized latents circled", "rank by frequency",
               "activation frequency (%)", series, style);
    md << "\n![frequency curves](figures/frequency_specialized.png)\n";

    sae::io::Json j = sae::io::Json::object();
    for (const auto* lr : {&late, &early}) {
      sae::io::Json l = sae::io::Json::object();
      l["data"] = lr->layer->data.source;
      l["validation"] = sae::metrics::to_json(lr->val);
      l["ranges"] = sae::io::Json::array();
      for (const auto& [range, ra] : lr->ranges) l["ranges"].push_back(sae::analysis::to_json(ra, *lr->layer));
      j[lr->label] = l;
    }
    j["sanity_checks"] = sae::io::Json::object();
    for (const auto& c : checks) j["sanity_checks"][c.name] = c.ok;
    j["validation_top"] = sae::io::Json::array();
    for (const auto& li : validation1) j["validation_top"].push_back(an::to_json(li));
    j["validation_specialized"] = sae::io::Json::array();
    for (const auto& li : validation2) j["validation_specialized"].push_back(an::to_json(li));
    sae::io::write_text_atomically(run.stage("hierarchy.json"), j.dump() + "\n");
    sae::report::write_text_file(run.stage("report.md"), md.str());  // valid UTF-8 whatever the samples hold
    sae::examples::test_fault_point("before-commit");
    run.commit();

    bool all_ok = true;
    for (const auto& c : checks) all_ok = all_ok && c.ok;
    std::cout << "taxonomy: " << total_spec << " specialized of " << total << " latents analysed\n"
              << "sanity checks: " << (all_ok ? "all passed" : "FAILED (see report.md)") << "\n"
              << "validation: " << measurable << "/" << validation1.size() << " top latents MEDIUM or HIGH; " << too_rare << "/"
              << validation2.size() << " specialized latents too rare\nwrote " << (out / "report.md").string()
              << ", hierarchy.json, figures/frequency_specialized" << (plot.available() ? ".png" : ".gp") << "\n";
    return all_ok ? 0 : 1;
  });
}
