// sae-sweep: report 002 — TopK SAEs for every (layer, position) x K x latent_dim of one 4-D
// activation array read through a memory map, resumable, with the report's summary sections.
#include "common.hpp"
#include "mpi_mode.hpp"
#include "plots.hpp"

#include <sae/analysis/summary_stats.hpp>
#include <sae/analysis/sweep_effects.hpp>

#include <algorithm>
#include <map>
#include <sstream>

namespace {

using sae::examples::fmt;

using sae::SweepResult;
using sae::index_t;

std::string config_label(const SweepResult& r) {
  return sae::data::describe(*r.slice) + ", K=" + std::to_string(r.k) + ", d=" + std::to_string(r.latents);
}

sae::io::Json describe_json(const sae::analysis::Summary& s) {
  sae::io::Json j = sae::io::Json::object();
  j["mean"] = s.mean;
  j["std"] = s.std;
  j["min"] = s.min;
  j["max"] = s.max;
  return j;
}

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

// The folders of a sharded run's shards under `out` (and their unfinished runs' staging folders),
// whose results the assembling run reuses.
std::vector<std::filesystem::path> shard_folders(const std::filesystem::path& out) {
  std::vector<std::filesystem::path> found;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(out / "shards", ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    found.push_back(it->path());
    for (auto s = std::filesystem::directory_iterator(it->path(), ec); !ec && s != std::filesystem::directory_iterator(); s.increment(ec))
      if (s->path().filename().string().rfind(sae::io::RunDirectory::kStagingPrefix, 0) == 0) found.push_back(s->path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace

int main(int argc, char** argv) {
  sae::examples::MpiMode mpi(argc, argv);
  const int status = sae::examples::run_main("sae-sweep", [&] {
    cxxopts::Options options("sae-sweep", "Report 002: TopK SAEs for every layer x position x (K, latent_dim), resumable.");
    // clang-format off
    options.add_options()
      ("data", "4-D activations .npy [N, layers, positions, D] (read through a memory map)", cxxopts::value<std::string>())
      ("layers", "layers to sweep (default: all)", cxxopts::value<std::vector<long>>())
      ("positions", "positions to sweep (default: all)", cxxopts::value<std::vector<long>>())
      ("val-fraction", "hold out this fraction at random instead of the reports' split", cxxopts::value<double>())
      ("out", "output directory", cxxopts::value<std::string>()->default_value("results/sweep"))
      ("keep-weights", "save every SAE's checkpoint under <out>/weights/")
      ("max-groups", "train at most this many (layer, position) groups in this run (0 = all)", cxxopts::value<long>()->default_value("0"))
      ("mpi", "run across the ranks of an MPI job (mpirun -np N sae-sweep --mpi ...): SAEs handed out largest first")
      ("shard", "train only shard i of n (0 <= i < n) into <out>/shards/i-of-n, for job arrays; a run without --shard "
                "then reuses the shards' results and writes the report", cxxopts::value<std::string>());
    // clang-format on
    sae::examples::FieldFlags field_flags(options);
    sae::examples::add_grid_options(options, field_flags);
    const auto parsed = sae::examples::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    sae::examples::check_flag(args.count("data") > 0, "--data is required (a 4-D [N, layers, positions, D] .npy)");
    const auto grid = sae::examples::read_grid_flags(args, field_flags);
    const auto fraction = sae::examples::val_fraction_flag(args);
    const int max_slices = static_cast<int>(sae::examples::int_flag(args, "max-groups", 0, 1 << 30));
    const std::filesystem::path out_root = args["out"].as<std::string>();
    std::pair<int, int> shard{0, 1};
    if (args.count("shard")) shard = shard_flag(args["shard"].as<std::string>());
    const bool sharded = args.count("shard") > 0;
    sae::examples::check_flag(!(sharded && args.count("mpi")), "--shard and --mpi: choose one (an MPI job hands out the SAEs itself)");
    sae::examples::check_flag(!(max_slices > 0 && (sharded || args.count("mpi"))),
                              "--max-groups works in a single-process run only; --shard and --mpi already split the work");
    mpi.start(args.count("mpi") > 0, "sae-sweep");
    // A shard is a run of its own in <out>/shards/i-of-n; the other runs reuse what the shards finished.
    const std::filesystem::path out_dir =
        sharded ? out_root / "shards" / (std::to_string(shard.first) + "-of-" + std::to_string(shard.second)) : out_root;
    std::optional<sae::io::RunDirectory> run_folder;
    if (mpi.root()) run_folder.emplace(out_dir, "sae-sweep");
    const sae::io::ArrayFile view(args["data"].as<std::string>());
    const auto& shape = view.shape();
    if (shape.size() != 4)
      throw sae::io_error(view.path(), "the sweep needs a 4-D [N, layers, positions, D] array but shape is " +
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
    if (!sharded) plan.reuse_from = shard_folders(out_root);
    if (!mpi.root()) {  // another rank of an MPI job: train what rank 0 hands out
#if SAE_HAVE_MPI
      sae::mpi::run_sweep(view, plan, nullptr, sae::examples::progress_output(), mpi.comm());
#endif
      return 0;
    }
    auto& run = *run_folder;
    sae::examples::write_resolved_config(run, options, args);
    std::cout << "data: " << view.path() << " " << view.shape_string() << " '" << view.dtype()
              << "', memory-mapped\n";
    std::vector<SweepResult> results;
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

    // ---- summary ----
    std::vector<double> evs, deads;
    for (const auto& r : results) evs.push_back(r.val.explained_variance), deads.push_back(r.val.dead_fraction);
    const auto ev_stats = sae::analysis::describe(evs), dead_stats = sae::analysis::describe(deads);
    const auto best_ev = *std::max_element(results.begin(), results.end(), [](const auto& a, const auto& b) {
      return a.val.explained_variance < b.val.explained_variance;
    });
    const auto least_dead = *std::min_element(results.begin(), results.end(), [](const auto& a, const auto& b) {
      return a.val.dead_fraction < b.val.dead_fraction || (a.val.dead_fraction == b.val.dead_fraction && a.val.explained_variance > b.val.explained_variance);
    });
    const auto effects = sae::analysis::sweep_effects(results, layers, positions);

    sae::io::Json doc = sae::io::Json::object();
    doc["report"] = "002 multi-layer sweep";
    doc["data"] = view.path();
    doc["shape"] = view.shape_string();
    doc["saes"] = static_cast<long>(results.size());
    doc["epochs"] = plan.train.epochs;
    doc["batch_size"] = plan.train.batch_size;
    doc["lr"] = plan.adam.lr;
    doc["fingerprint"] = sae::sweep_run_fingerprint(results.front().fingerprint.at("data"), plan, shape[0]);
    doc["explained_variance"] = describe_json(ev_stats);
    doc["dead_fraction"] = describe_json(dead_stats);
    doc["best_by_ev"] = sae::to_json(best_ev);
    doc["best_by_lowest_death"] = sae::to_json(least_dead);

    std::ostringstream md;
    md << "# Multi-layer TopK SAE sweep (report 002)\n\n- **Data**: " << view.path() << " " << view.shape_string()
       << "\n- **SAEs**: " << results.size() << " = " << layers.size() << " layers x " << positions.size()
       << " positions x " << plan.ks.size() << " K x " << plan.latents.size() << " latent_dim\n- **Training**: Adam lr "
       << plan.adam.lr << ", " << plan.train.epochs << " epochs, batch " << plan.train.batch_size
       << "; metrics on the validation rows\n\n## Overall\n\n| metric | mean | std | min | max |\n|---|---|---|---|---|\n"
       << "| explained variance | " << fmt("%.4f", ev_stats.mean) << " | " << fmt("%.4f", ev_stats.std) << " | "
       << fmt("%.4f", ev_stats.min) << " | " << fmt("%.4f", ev_stats.max) << " |\n| dead latents (%) | "
       << fmt("%.1f", 100 * dead_stats.mean) << " | " << fmt("%.1f", 100 * dead_stats.std) << " | "
       << fmt("%.1f", 100 * dead_stats.min) << " | " << fmt("%.1f", 100 * dead_stats.max) << " |\n\n"
       << "## Best configurations\n\n- By EV: " << config_label(best_ev) << " — EV " << fmt("%.4f", best_ev.val.explained_variance)
       << ", " << fmt("%.1f%%", 100 * best_ev.val.dead_fraction) << " dead\n- By lowest death: " << config_label(least_dead)
       << " — " << fmt("%.1f%%", 100 * least_dead.val.dead_fraction) << " dead, EV " << fmt("%.4f", least_dead.val.explained_variance) << "\n\n";

    md << "## Layer effects (mean over positions and configs)\n\n| layer | mean EV | mean dead % | best config (EV) |\n|---|---|---|---|\n";
    sae::io::Json layer_json = sae::io::Json::array();
    for (const auto& le : effects.layers) {
      const SweepResult& best = results[le.best];
      md << "| " << le.layer << " | " << fmt("%.4f", le.mean_ev) << " | " << fmt("%.1f", 100 * le.mean_dead) << " | "
         << config_label(best) << ", EV " << fmt("%.4f", best.val.explained_variance) << " |\n";
      sae::io::Json j = sae::io::Json::object();
      j["layer"] = le.layer;
      j["mean_ev"] = le.mean_ev;
      j["mean_dead_fraction"] = le.mean_dead;
      j["best"] = sae::to_json(best);
      layer_json.push_back(j);
    }
    doc["layers"] = layer_json;
    md << "\n## Position effects (mean over layers and configs)\n\n| position | mean EV | mean dead % |\n|---|---|---|\n";
    sae::io::Json pos_json = sae::io::Json::array();
    for (const auto& pe : effects.positions) {
      md << "| " << pe.position << " | " << fmt("%.4f", pe.mean_ev) << " | " << fmt("%.1f", 100 * pe.mean_dead) << " |\n";
      sae::io::Json j = sae::io::Json::object();
      j["position"] = pe.position;
      j["mean_ev"] = pe.mean_ev;
      j["mean_dead_fraction"] = pe.mean_dead;
      pos_json.push_back(j);
    }
    doc["positions"] = pos_json;

    md << "\n## Layer x position interaction\n\nMean EV per cell (over configs); in brackets the interaction "
          "term = cell − layer mean − position mean + grand mean.\n\n| layer \\ position |";
    for (index_t p : positions) md << ' ' << p << " |";
    md << "\n|---|";
    for (std::size_t i = 0; i < positions.size(); ++i) md << "---|";
    md << '\n';
    for (std::size_t a = 0; a < layers.size(); ++a) {
      md << "| " << layers[a] << " |";
      for (std::size_t b = 0; b < positions.size(); ++b)
        md << ' ' << fmt("%.4f", effects.cell_ev[a][b]) << " (" << fmt("%+.4f", effects.interaction[a][b]) << ") |";
      md << '\n';
    }
    const std::string max_cell = effects.largest_interaction == 0 ? "" : sae::data::describe(effects.largest_cell);
    md << "\nLargest interaction: " << fmt("%+.4f", effects.largest_interaction) << " EV at " << max_cell << ".\n\n";
    doc["largest_interaction"] = effects.largest_interaction;
    doc["largest_interaction_cell"] = max_cell;

    // ---- heatmaps per K ----
    sae::examples::Plotter plot(run.stage("figures"), !args.count("no-plots"));
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
          ev_grid.back().push_back(sae::analysis::sweep_mean(results, l, p, k, sae::analysis::ev_of));
          dead_grid.back().push_back(100 * sae::analysis::sweep_mean(results, l, p, k, sae::analysis::dead_of));
        }
      }
      const std::string ks = std::to_string(k);
      plot.heatmap("ev_K" + ks, "Explained variance, K=" + ks, "layer", layer_labels, "position", pos_labels, ev_grid, "%.3f");
      plot.heatmap("dead_K" + ks, "Dead latents (%), K=" + ks, "layer", layer_labels, "position", pos_labels, dead_grid, "%.0f");
      md << "![EV K=" << ks << "](figures/ev_K" << ks << ".png) ![dead K=" << ks << "](figures/dead_K" << ks << ".png)\n";
    }
    sae::io::Json all = sae::io::Json::array();
    for (const auto& r : results) all.push_back(sae::to_json(r));
    doc["results"] = all;
    sae::io::write_text_atomically(run.stage("summary.json"), doc.dump() + "\n");
    sae::io::write_text_atomically(run.stage("report.md"), md.str());
    sae::examples::test_fault_point("before-commit");
    run.commit({"configs", "weights"});
    std::cout << "EV mean " << fmt("%.4f", ev_stats.mean) << " ± " << fmt("%.4f", ev_stats.std) << " (range "
              << fmt("%.4f", ev_stats.min) << "–" << fmt("%.4f", ev_stats.max) << "), dead "
              << fmt("%.1f%%", 100 * dead_stats.mean) << " ± " << fmt("%.1f%%", 100 * dead_stats.std) << "\n"
              << "best by EV: " << config_label(best_ev) << " (" << fmt("%.4f", best_ev.val.explained_variance) << ")\n"
              << "wrote " << (run.out() / "report.md").string() << ", summary.json, configs/, figures/\n";
    return 0;
  });
  return mpi.finish(status);
}
