// sae-compare: the report-001 grid trained once per architecture on the same data and split —
// TopK as the reports train it, TopK + AuxK, TopK under --recipe modern, BatchTopK, and JumpReLU
// with its sparsity coefficient searched at each grid point to match K's L0 — then one table and
// one figure of validation EV and dead % side by side (and dead % on the training rows).
#include "layer_analysis.hpp"

#include <sae/train/l0_search.hpp>
#include "plots.hpp"

#include <chrono>
#include <cmath>
#include <map>
#include <sstream>

namespace {

using sae::index_t;
using sae::examples::fmt;

struct Variant {
  const char *key, *label;
};
constexpr Variant kVariants[] = {{"topk", "TopK (reports)"},
                                 {"auxk", "TopK + AuxK"},
                                 {"modern", "TopK, recipe modern"},
                                 {"batchtopk", "BatchTopK"},
                                 {"jumprelu", "JumpReLU"},
                                 {"matryoshka", "Matryoshka"}};

struct Cell {
  sae::metrics::Evaluation val;
  double train_dead = 0, seconds = 0;
  double lambda = -1;  // JumpReLU: the sparsity coefficient chosen
  index_t initial_l0 = 0;  // JumpReLU: the L0 its thresholds started at
  int runs = 1;        // JumpReLU: trainings the L0 search took
  bool matched = true;
};

struct Setup {
  const sae::data::ActivationSplit& data;
  sae::TrainConfig train;
  sae::AdamConfig adam;
};

template <class Model>
Cell train_and_score(Model model, const Setup& s, const std::string& label) {
  const auto start = std::chrono::steady_clock::now();
  auto trainer = sae::make_trainer<Model>(s.train, sae::Adam<float>(s.adam));
  trainer.fit(model, s.data.train, &s.data.validation, sae::ProgressPrinter(sae::examples::progress_output(), label));
  Cell c;
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  c.val = sae::metrics::evaluate(model, s.data.validation);
  c.train_dead = sae::metrics::evaluate(model, s.data.train).dead_fraction;
  return c;
}

// JumpReLU at K's L0 (train/l0_search.hpp): the run closest to K, with the trainings it took.
Cell jumprelu_at_l0(const sae::JumpReluConfig& c, index_t k, const Setup& s, int runs, double tolerance, const std::string& label) {
  std::vector<Cell> cells;
  const auto search = sae::search_jumprelu_l0(c, k, runs, tolerance, [&](const sae::JumpReluConfig& config) {
    Cell cell = train_and_score(sae::JumpReluAutoencoder<float>(config), s,
                                label + " lambda=" + fmt("%.3g", config.sparsity_coefficient) + " start L0 " +
                                    std::to_string(config.initial_l0));
    cell.lambda = config.sparsity_coefficient;
    cell.initial_l0 = config.initial_l0;
    cells.push_back(cell);
    return cell.val.l0;
  });
  Cell best = cells[search.best];
  best.runs = static_cast<int>(search.steps.size());
  best.matched = search.matched;
  return best;
}

std::string ev_dead(const Cell& c) { return fmt("%.3f", c.val.explained_variance) + " / " + fmt("%.1f%%", 100 * c.val.dead_fraction); }

}  // namespace

int main(int argc, char** argv) {
  return sae::examples::run_main("sae-compare", [&] {
    cxxopts::Options options("sae-compare",
                             "The report-001 grid once per architecture (TopK, TopK + AuxK, TopK recipe modern, BatchTopK, "
                             "JumpReLU at matched L0): one table and one figure of EV and dead % side by side.");
    sae::examples::add_data_options(options, SAE_DEFAULT_DATA);
    // clang-format off
    options.add_options("grid")
      ("ks", "K values (BatchTopK's mean k, JumpReLU's target L0)", cxxopts::value<std::vector<long>>()->default_value("5,10,20,100"))
      ("latents", "latent_dim values (dictionary sizes)", cxxopts::value<std::vector<long>>()->default_value("512,1024,2048"));
    sae::examples::FieldFlags field_flags(options);
    field_flags.declare("grid", sae::TrainConfig{}, {"epochs", "batch_size"}).declare("grid", sae::AdamConfig{}, {"lr"})
        .declare("grid", sae::TrainConfig{}, {"seed"});
    options.add_options("grid")
      ("threads", "OpenMP threads (0 = default)", cxxopts::value<long>()->default_value("0"))
      ("variants", "which of topk, auxk, modern, batchtopk, jumprelu, matryoshka to train (topk always: the others are "
                   "compared with it)",
       cxxopts::value<std::vector<std::string>>()->default_value("topk,auxk,modern,batchtopk,jumprelu"))
      ("aux-k", "the AuxK variant's k_aux (dead window: two epochs, alpha 1/32, as --recipe modern)",
       cxxopts::value<long>()->default_value("4"))
      ("jumprelu-bandwidth", "JumpReLU's kernel bandwidth, in units of the data's RMS entry (the paper's 0.001 needs far "
                             "longer training than the reports' 25 epochs for the thresholds to move)",
       cxxopts::value<double>()->default_value("0.1"))
      ("jumprelu-runs", "JumpReLU: trainings per grid point for the L0 search", cxxopts::value<long>()->default_value("6"))
      ("l0-tolerance", "JumpReLU: validation L0 within this fraction of K counts as matched", cxxopts::value<double>()->default_value("0.1"))
      ("no-plots", "write figure data and scripts but do not run gnuplot")
      ("out", "output directory", cxxopts::value<std::string>()->default_value("results-compare"));
    // clang-format on
    const auto parsed = sae::examples::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    using sae::examples::check_flag;
    using sae::examples::int_flag;
    sae::examples::set_threads(int_flag(args, "threads", 0, 4096));
    const auto ks = sae::examples::sorted_unique(sae::examples::int_list_flag(args, "ks", 1));
    const auto ds = sae::examples::sorted_unique(sae::examples::int_list_flag(args, "latents", 1));
    sae::examples::check_k_within_latents(ks, ds);
    sae::TrainConfig train;
    field_flags.read(args, train);
    const std::uint64_t seed = train.seed;
    sae::AdamConfig adam;
    field_flags.read(args, adam);
    const long aux_k = int_flag(args, "aux-k", 1, ds.front());
    const double bandwidth = sae::examples::number_flag(args, "jumprelu-bandwidth", 0, 1e6, true);
    const int runs = static_cast<int>(int_flag(args, "jumprelu-runs", 1, 50));
    const double tolerance = sae::examples::number_flag(args, "l0-tolerance", 0, 10);
    std::vector<Variant> variants{kVariants[0]};
    for (const auto& v : args["variants"].as<std::vector<std::string>>()) {
      const auto it = std::find_if(std::begin(kVariants), std::end(kVariants), [&](const Variant& x) { return v == x.key; });
      check_flag(it != std::end(kVariants), "--variants: expected names from topk, auxk, modern, batchtopk, jumprelu, matryoshka; got '" + v + "'");
      if (std::none_of(variants.begin(), variants.end(), [&](const Variant& x) { return v == x.key; })) variants.push_back(*it);
    }

    sae::io::RunDirectory run(args["out"].as<std::string>(), "sae-compare");
    sae::examples::write_resolved_config(run, options, args);
    const auto file = sae::examples::load_data_flag(args);
    const auto data = sae::data::split_activations(file.all, file.source, {sae::examples::val_fraction_flag(args), seed});
    const index_t input_dim = data.train.cols(), train_rows = data.train.rows();
    const Setup setup{data, train, adam};
    std::cout << "data: " << data.source << " — " << train_rows << " train, " << data.validation.rows() << " validation, D="
              << input_dim << " (" << data.split << ")\n"
              << variants.size() << " variants x " << ks.size() * ds.size() << " grid points, " << train.epochs << " epochs, batch "
              << train.batch_size << ", Adam lr " << adam.lr << ", " << sae::max_threads() << " threads\n";

    std::map<std::tuple<std::string, index_t, index_t>, Cell> cells;
    const int points = static_cast<int>(ks.size() * ds.size());
    int point = 0;
    for (index_t d : ds)
      for (index_t k : ks) {
        ++point;
        const std::string where = "K=" + std::to_string(k) + ", d=" + std::to_string(d);
        for (const auto& v : variants) {
          const std::string key = v.key, label = "[" + std::to_string(point) + "/" + std::to_string(points) + " " + where + " " + v.label + "]";
          Cell cell;
          if (key == "batchtopk") {
            sae::BatchTopKConfig c;
            c.input_dim = input_dim, c.num_latents = d, c.k = k, c.seed = seed;
            cell = train_and_score(sae::BatchTopKAutoencoder<float>(c), setup, label);
          } else if (key == "matryoshka") {  // the registry's config, by key: the default nested groups
            sae::MatryoshkaConfig c;
            sae::io::assign_shared_fields(sae::TopKConfig{input_dim, d, k, sae::Selection::value, false, seed}, c);
            cell = train_and_score(sae::MatryoshkaAutoencoder<float>(c), setup, label);
          } else if (key == "jumprelu") {
            sae::JumpReluConfig c;
            c.input_dim = input_dim, c.num_latents = d, c.bandwidth = bandwidth, c.seed = seed;
            cell = jumprelu_at_l0(c, k, setup, runs, tolerance, label);
          } else {
            sae::TopKConfig c{input_dim, d, k};
            c.seed = seed;
            if (key == "auxk") c.aux_k = std::min<index_t>(aux_k, d), c.dead_window = 2 * train_rows;
            if (key == "modern") c = sae::apply_recipe(c, sae::Recipe::modern, train_rows);
            cell = train_and_score(sae::TopKAutoencoder<float>(c), setup, label);
          }
          cells[{key, k, d}] = cell;
        }
      }
    sae::examples::test_fault_point("after-training");

    // ---- CSV + JSON ----
    std::ostringstream csv;
    csv << "variant,k,latent_dim,explained_variance,dead_fraction,train_dead_fraction,l0,alive_latents,mse,"
           "sparsity_coefficient,initial_l0,l0_matched,seconds\n";
    sae::io::Json doc = sae::io::Json::object();
    doc["data"] = data.source;
    doc["split"] = data.split;
    doc["epochs"] = train.epochs;
    doc["batch_size"] = train.batch_size;
    doc["lr"] = adam.lr;
    doc["aux_k"] = aux_k;
    doc["jumprelu_bandwidth"] = bandwidth;
    doc["metrics_on"] = "validation";
    doc["results"] = sae::io::Json::array();
    // Every result in variant, then grid order.
    const auto each_result = [&](auto&& fn) {
      for (const auto& v : variants)
        for (index_t d : ds)
          for (index_t k : ks) fn(v, k, d, cells.at({v.key, k, d}));
    };
    each_result([&](const Variant& v, index_t k, index_t d, const Cell& c) {
      csv << v.key << ',' << k << ',' << d << ',' << fmt("%.6f", c.val.explained_variance) << ','
          << fmt("%.6f", c.val.dead_fraction) << ',' << fmt("%.6f", c.train_dead) << ',' << fmt("%.4f", c.val.l0) << ','
          << c.val.alive_latents << ',' << fmt("%.6g", c.val.mse) << ','
          << (c.lambda >= 0 ? fmt("%.6g", c.lambda) + ',' + std::to_string(c.initial_l0) : ",") << ','
          << (c.matched ? "true" : "false") << ',' << fmt("%.2f", c.seconds) << '\n';
      sae::io::Json j = sae::metrics::to_json(c.val);
      j["variant"] = v.key;
      j["k"] = k;
      j["latent_dim"] = d;
      j["train_dead_fraction"] = c.train_dead;
      if (c.lambda >= 0)
        j["sparsity_coefficient"] = c.lambda, j["initial_l0"] = c.initial_l0, j["search_runs"] = c.runs, j["l0_matched"] = c.matched;
      j["seconds"] = c.seconds;
      doc["results"].push_back(j);
    });
    sae::io::write_text_atomically(run.stage("compare.csv"), csv.str());
    sae::io::write_text_atomically(run.stage("compare.json"), doc.dump() + "\n");

    // ---- figure: EV against dead %, one point per grid point and variant ----
    sae::examples::Plotter plot(run.stage("figures"), !args.count("no-plots"));
    std::vector<sae::examples::Plotter::Series> series;
    each_result([&](const Variant& v, index_t, index_t, const Cell& c) {
      if (series.empty() || series.back().label != v.label) series.push_back({v.label, {}, {}, {}});
      series.back().x.push_back(100 * c.val.dead_fraction);
      series.back().y.push_back(c.val.explained_variance);
    });
    sae::examples::Plotter::LineStyle style;
    style.connect = false;
    style.key = "top right";
    plot.lines("ev_vs_dead", "Validation EV against dead latents, every grid point", "dead latents (%)", "explained variance",
               series, style);

    // ---- Markdown ----
    const auto cell_text = [&](const std::string& key, index_t k, index_t d) {
      const Cell& c = cells.at({key, k, d});
      std::string s = ev_dead(c);
      const bool varying_l0 = key == "batchtopk" || key == "jumprelu" || key == "matryoshka";
      if (varying_l0) s += " (L0 " + fmt("%.1f", c.val.l0);
      if (key == "jumprelu") s += ", λ " + fmt("%.3g", c.lambda) + (c.initial_l0 != k ? ", start L0 " + std::to_string(c.initial_l0) : "") +
                                    (c.matched ? "" : ", unmatched");
      if (varying_l0) s += ")";
      return s;
    };
    std::ostringstream table, train_table;
    table << "| K | latent_dim |";
    train_table << "| K | latent_dim |";
    for (const auto& v : variants) table << ' ' << v.label << " |", train_table << ' ' << v.label << " |";
    table << "\n|---|---|";
    train_table << "\n|---|---|";
    for (std::size_t i = 0; i < variants.size(); ++i) table << "---|", train_table << "---|";
    table << '\n';
    train_table << '\n';
    for (index_t d : ds)
      for (index_t k : ks) {
        table << "| " << k << " | " << d << " |";
        train_table << "| " << k << " | " << d << " |";
        for (const auto& v : variants) {
          table << ' ' << cell_text(v.key, k, d) << " |";
          train_table << ' ' << fmt("%.1f%%", 100 * cells.at({v.key, k, d}).train_dead) << " |";
        }
        table << '\n';
        train_table << '\n';
      }
    // Where each variant stands against the reports' TopK at the same grid point.
    std::ostringstream summary;
    for (const auto& v : variants) {
      if (std::string(v.key) == "topk") continue;
      int no_more_dead = 0, no_worse_ev = 0, both = 0;
      for (index_t d : ds)
        for (index_t k : ks) {
          const Cell &c = cells.at({v.key, k, d}), &base = cells.at({"topk", k, d});
          const bool dead_ok = c.val.dead_fraction <= base.val.dead_fraction, ev_ok = c.val.explained_variance >= base.val.explained_variance - 0.005;
          no_more_dead += dead_ok, no_worse_ev += ev_ok, both += dead_ok && ev_ok;
        }
      summary << "- **" << v.label << "**: dead % no higher at " << no_more_dead << " of " << points << " points, EV no lower "
              << "(within 0.005) at " << no_worse_ev << ", both at " << both << "\n";
    }
    std::ostringstream md;
    md << "# Architectures against dead latents on the report-001 grid\n\n"
       << "- **Data**: " << data.source << "; " << data.split << " (" << train_rows << " train, " << data.validation.rows()
       << " validation), D = " << input_dim << "\n- **Training**: Adam lr " << adam.lr << ", " << train.epochs << " epochs, batch "
       << train.batch_size << ", seed " << seed << ", the same split and batch order for every model\n"
       << "- **Variants**: TopK as the reports train it; TopK + AuxK (k_aux " << aux_k
       << ", two-epoch dead window, alpha 1/32); TopK under `--recipe modern`; BatchTopK (k x B per batch, a threshold at "
          "inference); JumpReLU (L0 penalty, bandwidth "
       << bandwidth << " x the data's RMS entry, λ and the thresholds' starting L0 searched over up to "
       << runs << " trainings per point to bring the validation L0 within " << fmt("%.0f%%", 100 * tolerance)
       << " of K: λ in [1e-3, 1e3] with the thresholds started at K's L0, then the start moved when λ alone cannot get there "
          "in this many steps)"
       << (std::any_of(variants.begin(), variants.end(), [](const Variant& v) { return std::string(v.key) == "matryoshka"; })
               ? "; Matryoshka (BatchTopK over the default nested groups, F/16, F/16, F/8, F/4, F/2)"
               : "")
       << "\n"
       << "- **Cells**: validation EV / dead % (the reports' definition: never fired on a validation row); "
          "BatchTopK and JumpReLU also show their L0, which is not fixed per sample\n\n"
       << "## EV and dead latents (validation)\n\n" << table.str() << "\n![EV against dead %](figures/ev_vs_dead.png)\n\n"
       << "## Against the reports' TopK, point by point\n\n" << summary.str()
       << "\n## Dead latents on the training rows\n\n" << train_table.str();
    sae::io::write_text_atomically(run.stage("report.md"), md.str());
    sae::examples::test_fault_point("before-commit");
    run.commit();
    std::cout << "\n" << table.str() << "\n" << summary.str() << "wrote " << (run.out() / "report.md").string()
              << ", compare.csv, compare.json, figures/" << (plot.available() ? "" : " (no PNGs: gnuplot unavailable or --no-plots)")
              << "\n";
    return 0;
  });
}
