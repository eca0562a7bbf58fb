#define BOOST_TEST_MODULE report
#include "test_helpers.hpp"

#include <sae/io/npy.hpp>
#include <sae/io/utf8.hpp>
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

// The sweep report of a hand-made sweep over two slices (layers 0 and 1, position 0; K=2, d=16)
// of a zero array saved as `file` in r's folder (10 rows, width 4): EV 0.2 and 50% dead on layer
// 0, EV 0.4 and 25% dead on layer 1. Returns the console summary.
std::string write_two_layer_sweep_report(Run& r, const std::string& file, std::ostream& note) {
  const auto path = r.dir / file;
  std::vector<float> zeros(static_cast<std::size_t>(10 * 2 * 1 * 4), 0.0f);
  sae::io::save_npy(path, zeros.data(), {10, 2, 1, 4});
  const sae::data::ArraySet view(path);
  auto plan = grid_plan();
  plan.ks = {2}, plan.latents = {16};
  plan.slices = {sae::data::LayerPosition{0, 0}, sae::data::LayerPosition{1, 0}};
  auto a = result(2, 16, 0.2, 0.5), b = result(2, 16, 0.4, 0.25);
  a.slice = sae::data::LayerPosition{0, 0}, b.slice = sae::data::LayerPosition{1, 0};
  return sae::report::write_sweep_report(r.run, view, plan, {0, 1}, {0}, {a, b}, false, note);
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
  std::ostringstream note;
  const std::string console = write_two_layer_sweep_report(r, "acts.npy", note);
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

namespace {
// Each kind of invalid UTF-8 a copied path, metadata string or sample text may hold: a truncated
// multibyte sequence, an overlong '/', a lone continuation byte and an encoded surrogate.
const std::string kInvalid = "trunc\xE2\x82 overlong\xC0\xAF lone\x80 surrogate\xED\xA0\x80";

// Every file the report wrote (Markdown, CSV, JSON, figure data and scripts) is valid UTF-8, and
// `file` shows `text` with its invalid bytes as U+FFFD (so the text did reach it).
void require_valid_utf8_output(const std::filesystem::path& root, const std::string& file, const std::string& text) {
  int files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    ++files;
    BOOST_TEST(sae::io::is_valid_utf8(sae::test::read_file(e.path())), e.path().string() << " is not valid UTF-8");
  }
  BOOST_TEST(files > 1);
  const std::string content = sae::test::read_file(root / file);
  BOOST_TEST(content.find(sae::io::valid_utf8(text)) != std::string::npos, file << " lacks the repaired text");
  BOOST_TEST(content.find(text) == std::string::npos);
}
}  // namespace

BOOST_AUTO_TEST_CASE(every_report_writer_writes_valid_utf8) {
  BOOST_TEST(!sae::io::is_valid_utf8(kInvalid));
  const std::string source = "acts-" + kInvalid + ".npy", split = "split " + kInvalid;
  std::ostringstream note;
  {  // sae-grid: report.md, grid_metrics.csv/.json, figures
    Run r("report-utf8-grid");
    const auto plan = grid_plan();
    const std::vector<SweepResult> results = {result(2, 16, 0.5, 0.25), result(4, 16, 0.7, 0.125), result(2, 32, 0.6, 0.5),
                                              result(4, 32, 0.75, 0.375)};
    sae::report::write_grid_report(r.run, sae::report::GridSetup{source, split, 80, 20, 8, 100, &plan, false}, results, note);
    require_valid_utf8_output(r.run.staging(), "report.md", source);
    require_valid_utf8_output(r.run.staging(), "report.md", split);
  }
  {  // sae-compare: report.md, compare.csv/.json, figures
    Run r("report-utf8-compare");
    auto plan = grid_plan();
    plan.ks = {2}, plan.latents = {16};
    const sae::report::CompareOptions o;
    plan.variants = {sae::report::compare_variant("topk", o, 80), sae::report::compare_variant("batchtopk", o, 80)};
    sae::report::write_compare_report(r.run, sae::report::CompareSetup{source, split, 80, 20, 8, &plan, o, false},
                                      {result(2, 16, 0.5, 0.25, "topk"), result(2, 16, 0.52, 0.2, "batchtopk")}, note);
    require_valid_utf8_output(r.run.staging(), "report.md", source);
  }
  {  // sae-sweep: report.md and summary.json name the data file, whose name is not UTF-8
    Run r("report-utf8-sweep");
    write_two_layer_sweep_report(r, "acts-" + kInvalid + ".npy", note);
    require_valid_utf8_output(r.run.staging(), "report.md", kInvalid);
  }
  {  // figures alone: titles, axes, series and tick labels
    sae::test::ScratchDir dir("report-utf8-figures");
    sae::report::Plotter plot(dir.path, false, note);
    sae::report::Plotter::Series series{"series " + kInvalid, {1, 2}, {0.5, 0.6}, {}};
    sae::report::Plotter::LineStyle style;
    style.band = std::make_pair(1.0, 2.0), style.band_label = "band " + kInvalid;
    plot.lines("lines", "title " + kInvalid, "x " + kInvalid, "y", {series}, style);
    plot.heatmap("map", "map " + kInvalid, "rows", {"r" + kInvalid}, "cols", {"c" + kInvalid}, {{0.5}}, "%.1f");
    require_valid_utf8_output(dir.path, "lines.gp", "title " + kInvalid);
    require_valid_utf8_output(dir.path, "lines.dat", "series " + kInvalid);
    require_valid_utf8_output(dir.path, "map.gp", "r" + kInvalid);
  }
}

BOOST_AUTO_TEST_CASE(matryoshka_report_repairs_invalid_utf8_from_samples) {
  // sae-matryoshka copies sample text (CoT steps) and the layers' sources into report.md; its JSON
  // was always clean, its Markdown now is too.
  const auto layer_of = [](const std::string& source, std::uint64_t seed) {
    sae::analysis::AnnotatedLayer l;
    l.data.source = source;
    l.data.split = "split " + kInvalid;
    l.data.train = sae::test::random_matrix<float>(20, 6, seed);
    l.data.validation = sae::test::random_matrix<float>(12, 6, seed + 1);
    for (index_t i = 0; i < 12; ++i) {
      sae::data::Sample s;
      s.question = "How many " + kInvalid + "?";
      s.answer = "x";
      s.cot_steps = {{"48/2" + kInvalid, "24"}};
      l.data.validation_rows.push_back(i);
      l.validation_samples.push_back(s);
      l.validation_features.push_back(sae::analysis::cot_features(s));
    }
    return l;
  };
  const auto late = layer_of("late-" + kInvalid + ".npy", 3), early = layer_of("early-" + kInvalid + ".npy", 5);
  const sae::TopKAutoencoder<float> model(sae::TopKConfig{6, 8, 2});
  const sae::analysis::PatternRule rule;
  const auto late_sem = sae::analysis::layer_semantics("late", late, model, 3, {{4, 5}}, 3, rule);
  const auto early_sem = sae::analysis::layer_semantics("early", early, model, 3, {}, 3, rule);
  BOOST_REQUIRE(!late_sem.top.empty() && !late_sem.top.front().top.empty());  // sample text reaches the report
  sae::MatryoshkaConfig mc;
  mc.input_dim = 6, mc.num_latents = 8, mc.k = 2, mc.group_sizes = {2, 6};
  const sae::MatryoshkaAutoencoder<float> mat(mc);
  sae::report::MatryoshkaRow topk;
  topk.name = "TopK " + kInvalid, topk.k = 2, topk.latents = 8;
  const auto comparison = sae::report::compare_matryoshka(mat, late.data.validation, {topk});
  sae::report::MatryoshkaSetup setup;
  setup.late = &late, setup.early = &early, setup.ks = {2}, setup.semantics_k = 2, setup.semantics_latents = 8;
  setup.top_samples = 3, setup.rule = rule, setup.plots = false;
  Run r("report-utf8-matryoshka");
  std::ostringstream note;
  sae::report::write_matryoshka_report(r.run, setup, comparison, early_sem, late_sem, note);
  require_valid_utf8_output(r.run.staging(), "report.md", "`48/2" + kInvalid + "=24`");
  require_valid_utf8_output(r.run.staging(), "report.md", "late-" + kInvalid + ".npy");
  require_valid_utf8_output(r.run.staging(), "report.md", "TopK " + kInvalid);
  require_valid_utf8_output(r.run.staging(), "semantics.json", "48/2" + kInvalid + "=24");
}
