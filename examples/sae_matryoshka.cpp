// sae-matryoshka: report 000 — a Matryoshka (BatchTopK, nested groups) SAE trained side by side
// with the TopK grid on the same data, the report's matched-config table, and the feature
// semantics of an early and a late layer (top latents by frequency, their top samples' CoT steps,
// the report's pattern heuristics).
#include "layer_analysis.hpp"
#include "output_paths.hpp"

#include <sae/analysis/layer_semantics.hpp>
#include <sae/report/matryoshka.hpp>

namespace {
using sae::index_t;
using TopK = sae::TopKAutoencoder<float>;
using Matryoshka = sae::MatryoshkaAutoencoder<float>;
namespace an = sae::analysis;
}  // namespace

int main(int argc, char** argv) {
  return sae::examples::run_main("sae-matryoshka", [&] {
    cxxopts::Options options("sae-matryoshka",
                             "Report 000: Matryoshka vs TopK on the same data, and feature semantics of two layers.");
    sae::examples::FieldFlags field_flags(options);
    sae::examples::add_data_options(field_flags, SAE_DEFAULT_DATA);
    sae::examples::add_grid_options(options, field_flags, "5,10,20,100", "512,1024,2048", /*resumable=*/false);
    // clang-format off
    options.add_options("matryoshka")
      ("mat-latents", "Matryoshka dictionary size", cxxopts::value<long>()->default_value("2048"))
      ("mat-k", "Matryoshka mean latents per sample (BatchTopK keeps k x batch)", cxxopts::value<long>()->default_value("20"))
      ("mat-groups", "nested group sizes summing to --mat-latents (default F/16,F/16,F/8,F/4,F/2)",
       cxxopts::value<std::vector<long>>());
    sae::examples::add_early_layer_options(options, SAE_EARLY_DATA);
    options.add_options("semantics")
      ("sem-k", "K of the SAEs analysed", cxxopts::value<long>()->default_value("100"))
      ("sem-latents", "latent_dim of the SAEs analysed", cxxopts::value<long>()->default_value("512"))
      ("top-latents", "most frequent latents to analyse", cxxopts::value<long>()->default_value("20"))
      ("ranks", "extra rank ranges to list, e.g. 50-60,400-410", cxxopts::value<std::vector<std::string>>()->default_value(""))
      ("top-samples", "top-activating samples per latent", cxxopts::value<long>()->default_value("10"))
      ("min-samples", "a pattern counts when this many top samples show it", cxxopts::value<long>()->default_value("3"))
      ("out", "output directory", cxxopts::value<std::string>()->default_value("results/matryoshka"));
    // clang-format on
    const auto parsed = sae::examples::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    const auto flags = sae::examples::read_grid_flags(args, field_flags);
    using sae::examples::int_flag;
    const long mat_latents = int_flag(args, "mat-latents", 1), mat_k = int_flag(args, "mat-k", 1, mat_latents);
    const long sem_k = int_flag(args, "sem-k", 1), sem_latents = int_flag(args, "sem-latents", 1);
    sae::examples::check_k_within_latents({sem_k}, {sem_latents});
    const long top_latents = int_flag(args, "top-latents", 1, sem_latents), top_samples = int_flag(args, "top-samples", 1, 1000000);
    const an::PatternRule rule{int_flag(args, "min-samples", 1, top_samples)};
    const auto ranges = sae::examples::rank_ranges_flag(args, "ranks", sem_latents);
    sae::MatryoshkaConfig mat_config;
    mat_config.num_latents = mat_latents;
    mat_config.k = mat_k;
    mat_config.seed = flags.train.seed;
    if (args.count("mat-groups"))
      for (long g : sae::examples::int_list_flag(args, "mat-groups", 1)) mat_config.group_sizes.push_back(g);

    // Data: the late layer (--data) for the comparison and semantics, the early layer for semantics.
    sae::examples::require_own_layers(args);
    const auto data = sae::examples::data_flags(args, field_flags);
    sae::examples::require_samples(args, data.data);
    const auto layers = sae::examples::load_two_layers(args, data, flags.train.seed);
    sae::examples::refuse_idle_step_flags(args, flags.train, layers.late.data.train.rows());
    const auto& late = layers.late;
    const auto& early = layers.early;
    mat_config.input_dim = late.data.train.cols();
    mat_config.validate("--mat-*");
    sae::examples::require_outputs_apart(args, {"out"});
    sae::io::RunDirectory run(args["out"].as<std::string>(), "sae-matryoshka");
    sae::examples::write_resolved_config(run, options, args);
    std::cout << "late layer: " << late.data.source << "\nearly layer: " << early.data.source << "\n"
              << late.data.train.rows() << " train, " << late.data.validation.rows() << " validation rows (" << late.data.split
              << "), samples " << layers.samples_path << "\n";

    // 1. The TopK grid and the Matryoshka SAE on the late layer.
    std::vector<sae::report::MatryoshkaRow> topk;
    std::optional<TopK> semantics_late;
    const int count = static_cast<int>(flags.ks.size() * flags.latents.size());
    int index = 0;
    for (index_t d : flags.latents)
      for (index_t k : flags.ks) {
        const std::string name = "TopK K=" + std::to_string(k) + ", d=" + std::to_string(d);
        TopK model = sae::examples::train_topk(late.data, k, d, flags,
                                               "[" + std::to_string(++index) + "/" + std::to_string(count + 1) + " " + name + "]");
        topk.push_back({name, k, d, sae::metrics::evaluate(model, late.data.validation)});
        if (k == sem_k && d == sem_latents) semantics_late = std::move(model);
      }
    Matryoshka mat(mat_config);
    sae::make_trainer<Matryoshka>(flags.train, sae::Adam<float>(flags.adam))
        .fit(mat, late.data.train, &late.data.validation,
             sae::ProgressPrinter(sae::examples::progress_output(), "[" + std::to_string(count + 1) + "/" + std::to_string(count + 1) +
                                                                        " Matryoshka k=" + std::to_string(mat_k) + ", d=" +
                                                                        std::to_string(mat_latents) + "]"));
    const auto comparison = sae::report::compare_matryoshka(mat, late.data.validation, std::move(topk));

    // 2. Semantics of both layers at (sem-k, sem-latents).
    if (!semantics_late)
      semantics_late = sae::examples::train_topk(late.data, sem_k, sem_latents, flags, "[semantics, late layer]");
    const TopK early_model = sae::examples::train_topk(early.data, sem_k, sem_latents, flags, "[semantics, early layer]");
    const auto early_sem = an::layer_semantics("early", early, early_model, top_latents, ranges, top_samples, rule);
    const auto late_sem = an::layer_semantics("late", late, *semantics_late, top_latents, ranges, top_samples, rule);

    // 3. Report (sae/report/matryoshka.hpp) and the Matryoshka checkpoint (sae-convert exports it).
    const sae::report::MatryoshkaSetup setup{&late, &early, flags.train, flags.adam.lr, flags.ks, sem_k, sem_latents,
                                             top_samples, rule, !args.count("no-plots")};
    const std::string summary = sae::report::write_matryoshka_report(run, setup, comparison, early_sem, late_sem);
    sae::save_checkpoint(run.stage("checkpoint"), mat, late.data.metadata);
    sae::examples::test_fault_point("before-commit");
    run.commit();
    std::cout << summary << "wrote " << (run.out() / "report.md").string()
              << ", comparison.json, semantics.json, checkpoint/, figures/\n";
    return 0;
  });
}
