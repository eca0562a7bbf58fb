// sae-compare: the report-001 grid trained once per architecture on the same data and split —
// TopK as the reports train it, TopK + AuxK, TopK under --recipe modern, BatchTopK, JumpReLU with
// its sparsity coefficient searched at each grid point to match K's L0, Matryoshka — as variants of
// one sweep plan (each finished SAE saved with its fingerprint, so a rerun resumes), then one table
// and one figure of validation EV and dead % side by side (sae/report/compare.hpp).
#include "common.hpp"
#include "output_paths.hpp"

#include <sae/report/compare.hpp>

namespace {
using sae::index_t;
}  // namespace

int main(int argc, char** argv) {
  return sae::examples::run_main("sae-compare", [&] {
    cxxopts::Options options("sae-compare",
                             "The report-001 grid once per architecture (TopK, TopK + AuxK, TopK recipe modern, BatchTopK, "
                             "JumpReLU at matched L0, Matryoshka): one table and one figure of EV and dead % side by side.");
    sae::examples::FieldFlags field_flags(options);
    sae::examples::add_data_options(field_flags, SAE_DEFAULT_DATA);
    const sae::report::CompareOptions defaults;
    // clang-format off
    options.add_options("grid")
      ("ks", "K values (BatchTopK's mean k, JumpReLU's target L0)", cxxopts::value<std::vector<long>>()->default_value("5,10,20,100"))
      ("latents", "latent_dim values (dictionary sizes)", cxxopts::value<std::vector<long>>()->default_value("512,1024,2048"));
    field_flags.declare("grid", sae::TrainConfig{}, {"epochs", "batch_size"}).declare("grid", sae::AdamConfig{}, {"lr"})
        .declare("grid", sae::TrainConfig{}, {"seed"});
    options.add_options("grid")
      ("threads", "OpenMP threads (0 = default)", cxxopts::value<long>()->default_value("0"))
      ("variants", "which of topk, auxk, modern, batchtopk, jumprelu, matryoshka to train (topk always: the others are "
                   "compared with it)",
       cxxopts::value<std::vector<std::string>>()->default_value("topk,auxk,modern,batchtopk,jumprelu"))
      ("aux-k", "the AuxK variant's k_aux (dead window: two epochs, alpha 1/32, as --recipe modern)",
       cxxopts::value<long>()->default_value(std::to_string(defaults.aux_k)))
      ("jumprelu-bandwidth", "JumpReLU's kernel bandwidth, in units of the data's RMS entry (the paper's 0.001 needs far "
                             "longer training than the reports' 25 epochs for the thresholds to move)",
       cxxopts::value<double>()->default_value("0.1"))
      ("jumprelu-runs", "JumpReLU: trainings per grid point for the L0 search",
       cxxopts::value<long>()->default_value(std::to_string(defaults.l0_search_runs)))
      ("l0-tolerance", "JumpReLU: validation L0 within this fraction of K counts as matched", cxxopts::value<double>()->default_value("0.1"))
      ("force", "retrain results that already exist")
      ("no-plots", "write figure data and scripts but do not run gnuplot")
      ("out", "output directory", cxxopts::value<std::string>()->default_value("results-compare"));
    // clang-format on
    const auto parsed = sae::examples::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    using sae::examples::int_flag;
    using sae::examples::number_flag;
    sae::examples::set_threads(int_flag(args, "threads", 0, 4096));
    sae::SweepPlan plan;
    plan.ks = sae::examples::sorted_unique(sae::examples::int_list_flag(args, "ks", 1));
    plan.latents = sae::examples::sorted_unique(sae::examples::int_list_flag(args, "latents", 1));
    sae::examples::check_k_within_latents(plan.ks, plan.latents);
    field_flags.read(args, plan.train);
    field_flags.read(args, plan.adam);
    sae::report::CompareOptions o;
    o.aux_k = int_flag(args, "aux-k", 1, plan.latents.front());
    o.jumprelu_bandwidth = number_flag(args, "jumprelu-bandwidth", 0, 1e6, true);
    o.l0_search_runs = static_cast<int>(int_flag(args, "jumprelu-runs", 1, 50));
    o.l0_tolerance = number_flag(args, "l0-tolerance", 0, 10);
    std::vector<std::string> names{"topk"};
    for (const auto& v : args["variants"].as<std::vector<std::string>>()) {
      try {
        sae::report::compare_variant(v, o, 1);
      } catch (const sae::invalid_argument& e) {
        throw sae::invalid_argument(std::string("--variants: ") + e.what());
      }
      if (std::find(names.begin(), names.end(), v) == names.end()) names.push_back(v);
    }

    // Each variant's own flags do nothing when it is not trained.
    const auto trains = [&](const char* v) { return std::find(names.begin(), names.end(), v) != names.end(); };
    sae::examples::refuse_idle_flags(args, {{"aux-k", trains("auxk"), "does nothing without auxk in --variants"},
                                            {"jumprelu-bandwidth", trains("jumprelu"), "does nothing without jumprelu in --variants"},
                                            {"jumprelu-runs", trains("jumprelu"), "does nothing without jumprelu in --variants"},
                                            {"l0-tolerance", trains("jumprelu"), "does nothing without jumprelu in --variants"}});
    sae::examples::require_outputs_apart(args, {"out"});
    sae::io::RunDirectory run(args["out"].as<std::string>(), "sae-compare");
    sae::examples::write_resolved_config(run, options, args);
    const auto data = sae::examples::data_flags(args, field_flags);
    const sae::data::ArraySet view(data.data);
    const auto slice = view.slice_or_default(data.slice());
    plan.slices = {slice};
    plan.validation_fraction = data.val_fraction;
    const auto split = sae::data::choose_split(view.shape().front(), {plan.validation_fraction, plan.train.seed});
    const auto train_rows = static_cast<index_t>(split.train.size());
    plan.variants.clear();
    for (const auto& v : names) plan.variants.push_back(sae::report::compare_variant(v, o, train_rows));
    plan.shared_pass = false;  // one SAE after another, as the grid
    plan.slice_in_names = false;
    plan.score_training_rows = true;
    plan.force = args.count("force") > 0;
    const sae::report::CompareSetup setup{sae::data::describe_source(data.data, slice), split.description, train_rows,
                                          static_cast<index_t>(split.validation.size()), view.shape().back(), &plan, o,
                                          !args.count("no-plots")};
    std::cout << "data: " << setup.source << " — " << train_rows << " train, " << setup.validation_rows << " validation, D="
              << setup.input_dim << " (" << setup.split << ")\n"
              << names.size() << " variants x " << plan.ks.size() * plan.latents.size() << " grid points, " << plan.train.epochs
              << " epochs, batch " << plan.train.batch_size << ", Adam lr " << plan.adam.lr << ", " << sae::max_threads()
              << " threads\n";

    const auto results = sae::run_sweep(view, plan, run, sae::examples::progress_output());
    sae::examples::test_fault_point("after-training");
    const std::string tables = sae::report::write_compare_report(run, setup, results);
    sae::examples::test_fault_point("before-commit");
    run.commit({"configs"});
    std::cout << "\n" << tables << "wrote " << (run.out() / "report.md").string() << ", compare.csv, compare.json, configs/, figures/\n";
    return 0;
  });
}
