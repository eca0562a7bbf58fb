// sae-sweep: report 002 — TopK SAEs for every (layer, position) x K x latent_dim of one 4-D
// activation array read through a memory map, resumable (sharded, or across MPI ranks), with the
// report's summary sections (sae/report/sweep.hpp).
#include "common.hpp"
#include "output_paths.hpp"
#include "mpi_mode.hpp"

#include <sae/report/sweep.hpp>

namespace {

using sae::index_t;

// "--shard i/n" as (i, n).
std::pair<int, int> shard_flag(const std::string& text) {
  const std::string expected = "--shard: expected i/n with 0 <= i < n (e.g. 0/8 for the first of 8 tasks), got '" + text + "'";
  const auto slash = text.find('/');
  const auto digits = [&](std::size_t from, std::size_t to) {  // 1 to 9 digits: no overflow below
    return to > from && to - from <= 9 && text.find_first_not_of("0123456789", from) >= to;
  };
  sae::examples::check_flag(slash != std::string::npos && digits(0, slash) && digits(slash + 1, text.size()), expected);
  const int i = std::stoi(text.substr(0, slash)), n = std::stoi(text.substr(slash + 1));
  sae::examples::check_flag(n >= 1 && i < n, expected);
  return {i, n};
}

}  // namespace

int main(int argc, char** argv) {
  sae::examples::MpiMode mpi(argc, argv);
  const int status = sae::examples::run_main("sae-sweep", [&] {
    cxxopts::Options options("sae-sweep", "Report 002: TopK SAEs for every layer x position x (K, latent_dim), resumable.");
    // clang-format off
    options.add_options()
      ("layers", "layers to sweep (default: all)", cxxopts::value<std::vector<long>>())
      ("positions", "positions to sweep (default: all)", cxxopts::value<std::vector<long>>())
      ("out", "output directory", cxxopts::value<std::string>()->default_value("results/sweep"))
      ("keep-weights", "save every SAE's checkpoint under <out>/weights/")
      ("max-groups", "train at most this many (layer, position) groups in this run (0 = all)", cxxopts::value<long>()->default_value("0"))
      ("mpi", "run across the ranks of an MPI job (mpirun -np N sae-sweep --mpi ...): SAEs handed out largest first")
      ("shard", "train only shard i of n (0 <= i < n) into <out>/shards/i-of-n, for job arrays; a run without --shard "
                "then reuses the shards' results and writes the report", cxxopts::value<std::string>());
    // clang-format on
    sae::examples::FieldFlags field_flags(options);
    sae::examples::add_data_options(field_flags, "", {"data", "val_fraction"});  // the whole 4-D array, memory-mapped
    sae::examples::add_grid_options(options, field_flags);
    const auto parsed = sae::examples::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    sae::examples::check_flag(args.count("data") > 0, "--data is required (a 4-D [N, layers, positions, D] .npy)");
    const auto grid = sae::examples::read_grid_flags(args, field_flags);
    const auto data = sae::examples::data_flags(args, field_flags);
    const auto fraction = data.val_fraction;
    const int max_slices = static_cast<int>(sae::examples::int_flag(args, "max-groups", 0, 1 << 30));
    const std::filesystem::path out_root = args["out"].as<std::string>();
    std::pair<int, int> shard{0, 1};
    if (args.count("shard")) shard = shard_flag(args["shard"].as<std::string>());
    const bool sharded = args.count("shard") > 0;
    sae::examples::check_flag(!(sharded && args.count("mpi")), "--shard and --mpi: choose one (an MPI job hands out the SAEs itself)");
    sae::examples::check_flag(!(max_slices > 0 && (sharded || args.count("mpi"))),
                              "--max-groups works in a single-process run only; --shard and --mpi already split the work");
    sae::examples::refuse_idle_step_flags_early(args, grid.train, data);
    mpi.start(args.count("mpi") > 0, "sae-sweep");
    // A shard is a run of its own in <out>/shards/i-of-n; the other runs reuse what the shards finished.
    sae::examples::require_outputs_apart(args, {"out"});
    const std::filesystem::path out_dir =
        sharded ? sae::sweep_shard_folder(out_root, shard.first, shard.second, "sae-sweep") : out_root;
    std::optional<sae::io::RunDirectory> run_folder;
    if (mpi.root()) run_folder.emplace(out_dir, "sae-sweep");
    const sae::data::ArraySet view(data.data);
    const auto& shape = view.shape();
    if (shape.size() != 4)
      throw sae::io_error(view.spec(), "the sweep needs a 4-D [N, layers, positions, D] array but shape is " +
                                           view.shape_string());
    const auto listed = [&](const char* flag, index_t count) {
      std::vector<index_t> v;
      if (args.count(flag)) {
        v = sae::examples::sorted_unique(sae::examples::int_list_flag(args, flag, 0, count - 1));
      } else {
        for (index_t i = 0; i < count; ++i) v.push_back(i);
      }
      return v;
    };
    const auto layers = listed("layers", shape[1]), positions = listed("positions", shape[2]);
    // The report-002 sweep: every (layer, position), each slice's SAEs in one shared pass.
    sae::SweepPlan plan;
    plan.slices.clear();
    for (index_t l : layers)
      for (index_t p : positions) plan.slices.push_back(sae::data::LayerPosition{l, p});
    plan.ks = grid.ks, plan.latents = grid.latents, plan.train = grid.train, plan.adam = grid.adam;
    plan.validation_fraction = fraction;
    plan.model = grid.model_options(static_cast<index_t>(sae::data::choose_split(shape[0], {fraction, grid.train.seed}).train.size()));
    plan.recipe = grid.recipe;
    plan.force = args.count("force") > 0;
    plan.keep_weights = args.count("keep-weights") > 0;
    plan.max_slices = max_slices;
    plan.shard_index = shard.first, plan.shard_count = shard.second;
    if (!sharded) plan.reuse_from = sae::sweep_shard_folders(out_root);
    if (!mpi.root()) {  // another rank of an MPI job: train what rank 0 hands out
#if SAE_HAVE_MPI
      sae::mpi::run_sweep(view, plan, nullptr, sae::examples::progress_output(), mpi.comm());
#endif
      return 0;
    }
    auto& run = *run_folder;
    sae::examples::write_resolved_config(run, options, args);
    std::cout << "data: " << view.spec() << " " << view.shape_string() << " '" << view.dtype()
              << "', memory-mapped\n";
    std::vector<sae::SweepResult> results;
#if SAE_HAVE_MPI
    if (mpi.on()) results = sae::mpi::run_sweep(view, plan, &run, sae::examples::progress_output(), mpi.comm());
#endif
    if (!mpi.on()) results = sae::run_sweep(view, plan, run, sae::examples::progress_output());
    const std::size_t expected = layers.size() * positions.size() * plan.ks.size() * plan.latents.size();
    std::cout << results.size() << " of " << expected << " SAEs finished" << (sharded ? " in " + run.out().string() : "") << "\n";
    if (results.size() < expected) {
      run.commit({"configs", "weights"});
      if (sharded)
        std::cout << "shard " << shard.first << "/" << shard.second << " done; when every shard is, run again without "
                  << "--shard (same --out and settings) to collect their results and write the report.\n";
      else
        std::cout << "the sweep is incomplete (--max-groups); run again to continue. No summary written yet.\n";
      return 0;
    }

    const std::string summary = sae::report::write_sweep_report(run, view, plan, layers, positions, results, !args.count("no-plots"));
    sae::examples::test_fault_point("before-commit");
    run.commit({"configs", "weights"});
    std::cout << summary << "wrote " << (run.out() / "report.md").string() << ", summary.json, configs/, figures/\n";
    return 0;
  });
  return mpi.finish(status);
}
