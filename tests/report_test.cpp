#define BOOST_TEST_MODULE report
#include "test_helpers.hpp"

#include <sae/io/npy.hpp>
#include <sae/report/compare.hpp>
#include <sae/report/grid.hpp>
#include <sae/report/matryoshka.hpp>
#include <sae/report/sweep.hpp>
#include <sae/report/text.hpp>

#include <sstream>

using sae::index_t;
using sae::SweepResult;

namespace {
// A result as the sweep would have written it, with hand-chosen metrics.
SweepResult result(index_t k, index_t d, double ev, double dead, const std::string& variant = "") {
  SweepResult r;
  r.k = k, r.latents = d, r.variant = variant;
  r.val.explained_variance = ev, r.val.dead_fraction = dead, r.val.l0 = static_cast<double>(k);
  r.val.alive_latents = static_cast<index_t>(std::lround((1 - dead) * static_cast<double>(d)));
  r.val.mse = 1 - ev;
  r.seconds = 1.5;
  r.fingerprint = sae::io::Json::object();
  r.fingerprint["data"] = "hand-made";
  return r;
}

struct Run {
  sae::test::ScratchDir dir;
  sae::io::RunDirectory run;
  explicit Run(const std::string& tag) : dir(tag), run(dir / "out", "report_test") { run.set_quiet(true); }
  std::string read(const std::string& file) { return sae::test::read_file(run.staging() / file); }
};

sae::SweepPlan grid_plan() {
  sae::SweepPlan plan;
  plan.ks = {2, 4};
  plan.latents = {16, 32};
  return plan;
}
}  // namespace

BOOST_AUTO_TEST_CASE(markdown_table_and_numbers) {
  sae::report::MarkdownTable t({"a", "b"});
  t.row({"1", "x"}).row({"2", "y"});
  BOOST_TEST(t.str() == "| a | b |\n|---|---|\n| 1 | x |\n| 2 | y |\n");
  BOOST_TEST(sae::report::fmt("%.1f%%", 12.345) == "12.3%");
}

BOOST_AUTO_TEST_CASE(grid_report_tables_by_hand) {
  Run r("report-grid");
  const auto plan = grid_plan();
  const std::vector<SweepResult> results = {result(2, 16, 0.5, 0.25), result(4, 16, 0.7, 0.125), result(2, 32, 0.6, 0.5),
                                            result(4, 32, 0.75, 0.375)};
  const sae::report::GridSetup setup{"acts.npy", "a split", 80, 20, 8, 100, &plan, false};
  std::ostringstream note;
  const std::string console = sae::report::write_grid_report(r.run, setup, results, note);
  // EV gain from d=16 to d=32: (0.6 - 0.5) / 0.5 = +20.0%, (0.75 - 0.7) / 0.7 = +7.1%.
  const std::string ev_table = "| K | d=16 EV | d=32 EV | Gain (16→32) |\n|---|---|---|---|\n| 2 | 0.500 | 0.600 | +20.0% |\n"
                               "| 4 | 0.700 | 0.750 | +7.1% |\n";
  BOOST_TEST(console.find(ev_table) == 0u);
  const std::string md = r.read("report.md");
  BOOST_TEST(md.find(ev_table) != std::string::npos);
  BOOST_TEST(md.find("| 2 | 25.0% (12 active) | 50.0% (16 active) |") != std::string::npos);
  // No configuration dominates another (more EV always costs a larger K or latent_dim).
  BOOST_TEST(md.find("4 of 4 configurations are Pareto-optimal") != std::string::npos);
  BOOST_TEST(md.find("EV rises with K at every latent_dim: **holds**") != std::string::npos);
  BOOST_TEST(md.find("Feature death falls with K at every latent_dim: **holds**") != std::string::npos);
  // Mean EV change over K: ((0.7 - 0.5) + (0.75 - 0.6)) / 2 = +0.175; over d: (0.1 + 0.05) / 2 = +0.075.
  BOOST_TEST(md.find("is +0.175, from d=16 to d=32 is +0.075 — **holds**") != std::string::npos);
  const std::string csv = r.read("grid_metrics.csv");
  BOOST_TEST(std::count(csv.begin(), csv.end(), '\n') == 5);
  BOOST_TEST(csv.find("\n2,16,0.500000,") != std::string::npos);
  const auto json = sae::io::read_json_file((r.run.staging() / "grid_metrics.json").string());
  BOOST_TEST(json.at("configs").as_array().size() == 4u);
  BOOST_TEST(sae::test::read_file(r.run.staging() / "figures" / "heatmap_explained_variance.dat").size() > 0u);
}

BOOST_AUTO_TEST_CASE(compare_report_cells_and_summary_by_hand) {
  Run r("report-compare");
  auto plan = grid_plan();
  plan.ks = {2}, plan.latents = {16};
  const sae::report::CompareOptions o;
  plan.variants = {sae::report::compare_variant("topk", o, 80), sae::report::compare_variant("batchtopk", o, 80),
                   sae::report::compare_variant("jumprelu", o, 80)};
  auto topk = result(2, 16, 0.5, 0.25, "topk"), batch = result(2, 16, 0.52, 0.2, "batchtopk"),
       jump = result(2, 16, 0.4, 0.3, "jumprelu");
  batch.val.l0 = 2.5, jump.val.l0 = 3.1;
  for (auto* x : {&topk, &batch, &jump}) x->extra["train_dead_fraction"] = 0.125;
  jump.extra["sparsity_coefficient"] = 10.0, jump.extra["initial_l0"] = 1, jump.extra["search_runs"] = 3;
  jump.extra["l0_matched"] = false;
  const sae::report::CompareSetup setup{"acts.npy", "a split", 80, 20, 8, &plan, o, false};
  std::ostringstream note;
  const std::string console = sae::report::write_compare_report(r.run, setup, {topk, batch, jump}, note);
  const std::string row = "| 2 | 16 | 0.500 / 25.0% | 0.520 / 20.0% (L0 2.5) | 0.400 / 30.0% (L0 3.1, λ 10, start L0 1, unmatched) |";
  BOOST_TEST(console.find(row) != std::string::npos);
  // BatchTopK: fewer dead and more EV than TopK; JumpReLU: neither.
  BOOST_TEST(console.find("- **BatchTopK**: dead % no higher at 1 of 1 points, EV no lower (within 0.005) at 1, both at 1") !=
             std::string::npos);
  BOOST_TEST(console.find("- **JumpReLU**: dead % no higher at 0 of 1 points, EV no lower (within 0.005) at 0, both at 0") !=
             std::string::npos);
  const std::string md = r.read("report.md");
  BOOST_TEST(md.find(row) != std::string::npos);
  BOOST_TEST(md.find("| 2 | 16 | 12.5% | 12.5% | 12.5% |") != std::string::npos);  // dead on the training rows
  const std::string csv = r.read("compare.csv");
  BOOST_TEST(csv.find("\njumprelu,2,16,0.400000,0.300000,0.125000,3.1000,11,0.6,10,1,false,1.50\n") != std::string::npos);
  BOOST_TEST(csv.find("\ntopk,2,16,0.500000,0.250000,0.125000,2.0000,12,0.5,,,true,1.50\n") != std::string::npos);
  // A missing result is named, not reported as zeros.
  sae::test::require_throws_with<sae::invalid_argument>(
      [&] { sae::report::write_compare_report(r.run, setup, {topk, batch}, note); }, {"jumprelu", "K=2", "d=16"});
  // Unknown variant names list the known ones.
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::report::compare_variant("gated", o, 80); },
                                                        {"'gated'", "matryoshka"});
}

BOOST_AUTO_TEST_CASE(sweep_report_statistics_by_hand) {
  Run r("report-sweep");
  const auto path = r.dir / "acts.npy";
  std::vector<float> zeros(static_cast<std::size_t>(10 * 2 * 1 * 4), 0.0f);
  sae::io::save_npy(path, zeros.data(), {10, 2, 1, 4});
  const sae::data::ArraySet view(path);
  auto plan = grid_plan();
  plan.ks = {2}, plan.latents = {16};
  plan.slices = {sae::data::LayerPosition{0, 0}, sae::data::LayerPosition{1, 0}};
  auto a = result(2, 16, 0.2, 0.5), b = result(2, 16, 0.4, 0.25);
  a.slice = sae::data::LayerPosition{0, 0}, b.slice = sae::data::LayerPosition{1, 0};
  std::ostringstream note;
  const std::string console = sae::report::write_sweep_report(r.run, view, plan, {0, 1}, {0}, {a, b}, false, note);
  // EV 0.2 and 0.4: mean 0.3, population std 0.1; dead 50% and 25%: mean 37.5%, std 12.5%.
  BOOST_TEST(console.find("EV mean 0.3000 ± 0.1000 (range 0.2000–0.4000), dead 37.5% ± 12.5%") == 0u);
  const std::string md = r.read("report.md");
  BOOST_TEST(md.find("| explained variance | 0.3000 | 0.1000 | 0.2000 | 0.4000 |") != std::string::npos);
  BOOST_TEST(md.find("- By EV: layer 1, position 0, K=2, d=16 — EV 0.4000, 25.0% dead") != std::string::npos);
  BOOST_TEST(md.find("| 1 | 0.4000 | 25.0 | layer 1, position 0, K=2, d=16, EV 0.4000 |") != std::string::npos);
  BOOST_TEST(md.find("| 0 | 0.3000 | 37.5 |") != std::string::npos);  // the one position: the mean over layers
}

BOOST_AUTO_TEST_CASE(matryoshka_matches_by_hand) {
  // Matryoshka: 40% dead, 300 alive. TopK rows: the death match is the one 5 points away, the
  // active match the one 20 latents away, the best the highest EV; prefixes' EV from the model.
  sae::report::MatryoshkaComparison c;
  c.matryoshka.val.dead_fraction = 0.4, c.matryoshka.val.alive_latents = 300;
  const auto row = [](const char* name, double dead, index_t alive, double ev) {
    sae::report::MatryoshkaRow r;
    r.name = name, r.val.dead_fraction = dead, r.val.alive_latents = alive, r.val.explained_variance = ev;
    return r;
  };
  c.topk = {row("a", 0.6, 100, 0.5), row("b", 0.45, 500, 0.6), row("c", 0.1, 320, 0.55), row("d", 0.9, 50, 0.7)};
  sae::report::match_topk(c);
  BOOST_TEST(c.death_match.name == "b");
  BOOST_TEST(c.active_match.name == "c");
  BOOST_TEST(c.best_topk.name == "d");

  sae::MatryoshkaConfig mc;
  mc.input_dim = 6, mc.num_latents = 8, mc.k = 2, mc.group_sizes = {2, 6};
  const sae::MatryoshkaAutoencoder<float> mat(mc);
  const sae::Matrix<float> x = sae::test::random_matrix<float>(20, 6, 3);
  const auto full = sae::report::compare_matryoshka(mat, x, c.topk);
  BOOST_REQUIRE_EQUAL(full.prefix_ev.size(), 2u);
  BOOST_TEST(full.prefix_ev[0].first == 2);
  BOOST_TEST(full.prefix_ev[1].first == 8);
  BOOST_TEST(full.prefix_ev[1].second == full.matryoshka.val.explained_variance, boost::test_tools::tolerance(1e-9));
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::report::compare_matryoshka(mat, x, {}); }, {"no TopK"});
}
