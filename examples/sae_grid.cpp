// sae-grid: report 001 — train the K x latent_dim grid of TopK SAEs at one (layer, position),
// then write the metrics (JSON, CSV), a Markdown report shaped like the report's tables, the
// Pareto analysis and heatmap / frontier figures (sae/report/grid.hpp).
// Each finished config is saved at once with its fingerprint (sae::run_sweep), so a rerun
// reuses it when nothing that decided it changed.
#include "common.hpp"
#include "output_paths.hpp"

#include <sae/data/samples.hpp>
#include <sae/report/grid.hpp>

namespace fs = std::filesystem;
using sae::index_t;

int main(int argc, char** argv) {
  return sae::examples::run_main("sae-grid", [&] {
    cxxopts::Options options("sae-grid", "Report 001: the K x latent_dim grid of TopK SAEs, with Pareto analysis and figures.");
    sae::examples::FieldFlags field_flags(options);
    sae::examples::add_data_options(field_flags, SAE_DEFAULT_DATA);
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

    sae::examples::refuse_idle_step_flags_early(args, grid.train, sae::examples::data_flags(args, field_flags));
    sae::examples::require_outputs_apart(args, {"out"});
    sae::io::RunDirectory run(args["out"].as<std::string>(), "sae-grid");
    sae::examples::write_resolved_config(run, options, args);
    const auto data = sae::examples::data_flags(args, field_flags);
    const std::string& data_path = data.data;
    const sae::data::ArraySet view(data_path);
    const auto slice = view.slice_or_default(data.slice());
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
    plan.ks = grid.ks, plan.latents = grid.latents, plan.train = grid.train, plan.adam = grid.adam;
    plan.validation_fraction = data.val_fraction;
    plan.force = args.count("force") > 0;
    plan.shared_pass = false;
    plan.slice_in_names = false;
    const auto split = sae::data::choose_split(view.shape().front(), {plan.validation_fraction, grid.train.seed});
    plan.model = grid.model_options(static_cast<index_t>(split.train.size()));
    plan.recipe = grid.recipe;
    const sae::report::GridSetup setup{sae::data::describe_source(data_path, slice), split.description,
                                       static_cast<index_t>(split.train.size()), static_cast<index_t>(split.validation.size()),
                                       view.shape().back(), view.shape().front(), &plan, !args.count("no-plots")};

    std::cout << "data: " << setup.source << " — " << setup.train_rows << " train, " << setup.validation_rows
              << " validation, D=" << setup.input_dim << " (" << setup.split << ")\n"
              << (samples_path.empty() ? "samples: none found (row texts are not needed for this report)\n"
                                       : "samples: " + samples_path + " (" + std::to_string(setup.rows) + " rows, matching)\n")
              << "grid: K in {";
    for (std::size_t i = 0; i < plan.ks.size(); ++i) std::cout << (i ? "," : "") << plan.ks[i];
    std::cout << "} x latent_dim in {";
    for (std::size_t i = 0; i < plan.latents.size(); ++i) std::cout << (i ? "," : "") << plan.latents[i];
    std::cout << "}, " << plan.train.epochs << " epochs, batch " << plan.train.batch_size << ", Adam lr " << plan.adam.lr << ", "
              << sae::max_threads() << " threads\n";

    const auto results = sae::run_sweep(view, plan, run, sae::examples::progress_output());
    sae::examples::test_fault_point("after-training");
    const std::string tables = sae::report::write_grid_report(run, setup, results);
    sae::examples::test_fault_point("before-commit");
    run.commit({"configs"});
    std::cout << "\n" << tables << "wrote " << (run.out() / "report.md").string() << ", grid_metrics.json, grid_metrics.csv, configs/, figures/\n";
    return 0;
  });
}
