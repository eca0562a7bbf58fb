#define BOOST_TEST_MODULE analysis
#include "test_helpers.hpp"

#include <sae/analysis/grid.hpp>
#include <sae/analysis/pareto.hpp>
#include <sae/analysis/summary_stats.hpp>
#include <sae/analysis/sweep_effects.hpp>
#include <sae/metrics/evaluate.hpp>
#include <sae/report/compare.hpp>

#include <cmath>
#include <map>

using sae::analysis::Direction;
using sae::analysis::Objective;

BOOST_AUTO_TEST_CASE(pareto_two_objectives_hand_case) {
  // Maximise quality, minimise cost.
  const std::vector<Objective> obj = {{"quality", Direction::maximize}, {"cost", Direction::minimize}};
  const std::vector<std::vector<double>> p = {
      {0.9, 10},  // 0: front
      {0.8, 5},   // 1: front
      {0.8, 10},  // 2: dominated by 0 (better quality) and 1 (cheaper)
      {0.7, 5},   // 3: dominated by 1
      {0.95, 20}, // 4: front
      {0.8, 5},   // 5: equal to 1: neither dominates the other
  };
  const auto r = sae::analysis::pareto_front(p, obj);
  const std::vector<bool> front = {true, true, false, false, true, true};
  BOOST_TEST(r.on_front == front, boost::test_tools::per_element());
  BOOST_TEST(r.dominated_by[2] == std::vector<int>({0, 1, 5}), boost::test_tools::per_element());
  BOOST_TEST(r.dominated_by[3] == std::vector<int>({1, 5}), boost::test_tools::per_element());
  BOOST_TEST(r.dominated_by[1].empty());
}

BOOST_AUTO_TEST_CASE(pareto_three_objectives_as_report_001) {
  // (EV, K, d): maximise EV, minimise K and d. A bigger dictionary with lower EV at the same K is dominated.
  const std::vector<Objective> obj = {
      {"EV", Direction::maximize}, {"K", Direction::minimize}, {"d", Direction::minimize}};
  const std::vector<std::vector<double>> p = {{0.890, 100, 512}, {0.887, 100, 2048}, {0.616, 5, 512}, {0.650, 5, 2048}};
  const auto r = sae::analysis::pareto_front(p, obj);
  BOOST_TEST(r.on_front == std::vector<bool>({true, false, true, true}), boost::test_tools::per_element());
  BOOST_TEST(r.dominated_by[1] == std::vector<int>({0}), boost::test_tools::per_element());
  // Direction matters: maximising d instead puts the d=2048 configs on the front and drops d=512 at K=5.
  const std::vector<Objective> flipped = {
      {"EV", Direction::maximize}, {"K", Direction::minimize}, {"d", Direction::maximize}};
  const auto f = sae::analysis::pareto_front(p, flipped);
  BOOST_TEST(f.on_front == std::vector<bool>({true, true, false, true}), boost::test_tools::per_element());
  BOOST_CHECK_THROW(sae::analysis::pareto_front({{1.0, 2.0}}, obj), sae::invalid_argument);
}

BOOST_AUTO_TEST_CASE(describe_by_hand) {
  const auto s = sae::analysis::describe({4.0, 1.0, 3.0, 2.0});
  BOOST_TEST(s.mean == 2.5);
  BOOST_TEST(s.median == 2.5);  // even count: mean of the middle two
  BOOST_TEST(s.min == 1.0);
  BOOST_TEST(s.max == 4.0);
  BOOST_TEST(s.std == std::sqrt(1.25));
  BOOST_TEST(sae::analysis::describe({5.0, 1.0, 9.0}).median == 5.0);
  BOOST_CHECK_THROW(sae::analysis::describe({}), sae::invalid_argument);
}

BOOST_AUTO_TEST_CASE(grid_findings_by_hand) {
  // A 3 x 2 grid (K in {5, 10, 20}, d in {256, 512}) with EV and dead fractions set by hand.
  std::map<std::pair<sae::index_t, sae::index_t>, sae::metrics::Evaluation> g;
  const auto set = [&](sae::index_t k, sae::index_t d, double ev, double dead) {
    g[{k, d}].explained_variance = ev;
    g[{k, d}].dead_fraction = dead;
  };
  set(5, 256, 0.50, 0.40), set(10, 256, 0.60, 0.30), set(20, 256, 0.70, 0.20);
  set(5, 512, 0.52, 0.50), set(10, 512, 0.63, 0.45), set(20, 512, 0.69, 0.35);
  const auto eval = [&](sae::index_t k, sae::index_t d) -> const sae::metrics::Evaluation& { return g.at({k, d}); };
  auto a = sae::analysis::analyse_grid({5, 10, 20}, {256, 512}, eval);
  BOOST_TEST(a.order.size() == 6u);
  BOOST_TEST((a.order[1] == std::pair<sae::index_t, sae::index_t>{5, 512}));
  BOOST_TEST(a.ev_rises_with_k);
  BOOST_TEST(a.dead_falls_with_k);
  BOOST_TEST(a.dead_rises_with_d);
  // Mean EV change over K: ((0.70 - 0.50) + (0.69 - 0.52)) / 2; over d: (0.02 + 0.03 - 0.01) / 3.
  BOOST_TEST(a.ev_change_over_k == 0.185, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(a.ev_change_over_d == 0.04 / 3, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(a.d_matters_less_than_k());
  // (20, 512) has lower EV than (20, 256) at a larger d: dominated by it, and only by it.
  BOOST_TEST(a.on_front == 5);
  BOOST_TEST(!a.pareto.on_front[5]);
  BOOST_TEST(a.pareto.dominated_by[5] == std::vector<int>{4});
  BOOST_TEST(sae::analysis::grid_label(20, 512) == "K=20, d=512");
  // One violation anywhere turns a finding off.
  set(10, 512, 0.63, 0.55);  // dead rises from K=5 to K=10 at d=512
  a = sae::analysis::analyse_grid({5, 10, 20}, {256, 512}, eval);
  BOOST_TEST(!a.dead_falls_with_k);
  BOOST_TEST(a.dead_rises_with_d);
  set(10, 512, 0.63, 0.30);  // now equal to (10, 256): not strictly rising with d
  a = sae::analysis::analyse_grid({5, 10, 20}, {256, 512}, eval);
  BOOST_TEST(!a.dead_rises_with_d);
}

// Report 002's effects, hand-computed: 3 layers x 3 positions, two SAEs per cell (EV c - 0.1 and
// c + 0.1, so the cell mean is c), every cell 0.5 but (2, 2) at 0.8. Layer and position means .5,
// .5, .6; grand mean 4.8 / 9; the interaction is largest, .8 - .6 - .6 + 4.8 / 9 = 0.1333, at (2, 2).
BOOST_AUTO_TEST_CASE(sweep_effects_by_hand) {
  std::vector<sae::SweepResult> results;
  for (sae::index_t l = 0; l < 3; ++l)
    for (sae::index_t p = 0; p < 3; ++p)
      for (int side : {-1, 1}) {
        sae::SweepResult r;
        r.slice = sae::data::LayerPosition{l, p};
        r.k = side < 0 ? 5 : 20;
        r.val.explained_variance = (l == 2 && p == 2 ? 0.8 : 0.5) + 0.1 * side;
        r.val.dead_fraction = 0.1 * static_cast<double>(l + 1);
        results.push_back(r);
      }
  const auto e = sae::analysis::sweep_effects(results, {0, 1, 2}, {0, 1, 2});
  const auto tol = boost::test_tools::tolerance(1e-12);
  const double grand = 4.8 / 9;
  BOOST_TEST(e.grand_ev == grand, tol);
  BOOST_TEST(e.layers[1].mean_ev == 0.5, tol);
  BOOST_TEST(e.layers[2].mean_ev == 0.6, tol);
  BOOST_TEST(e.layers[2].mean_dead == 0.3, tol);
  BOOST_TEST(e.positions[2].mean_ev == 0.6, tol);
  BOOST_TEST(e.positions[0].mean_dead == 0.2, tol);
  BOOST_TEST(e.layers[0].best == 1u);   // layer 0's first +0.1 SAE (EV 0.6; later equals do not replace it)
  BOOST_TEST(e.layers[2].best == 17u);  // (2, 2), the +0.1 SAE: EV 0.9
  BOOST_TEST(e.cell_ev[2][2] == 0.8, tol);
  BOOST_TEST(e.interaction[2][2] == 0.8 - 0.6 - 0.6 + grand, tol);
  BOOST_TEST(e.interaction[0][0] == 0.5 - 0.5 - 0.5 + grand, tol);
  BOOST_TEST(e.interaction[0][2] == 0.5 - 0.5 - 0.6 + grand, tol);
  BOOST_TEST(e.largest_cell.layer == 2);
  BOOST_TEST(e.largest_cell.position == 2);
  BOOST_TEST(e.largest_interaction == 0.8 - 1.2 + grand, tol);
  // A K's mean in one cell (the heatmaps).
  BOOST_TEST(sae::analysis::sweep_mean(results, 2, 2, 20, sae::analysis::ev_of) == 0.9, tol);
}

// An EV over rows without variance (one validation row) is undefined: NaN from the metric, null in
// JSON and back, and left out of every comparison, win count, front and mean.
BOOST_AUTO_TEST_CASE(undefined_ev_is_never_compared_or_counted) {
  const double nan = std::nan("");
  sae::Matrix<double> one_row(1, 3);
  one_row << 1, 2, 3;
  sae::Matrix<double> off = one_row;
  off(0, 0) = 0;
  BOOST_TEST(std::isnan(sae::metrics::explained_variance(one_row, off)));
  BOOST_TEST(std::isnan(sae::metrics::explained_variance(one_row, one_row)));  // even a perfect fit
  BOOST_TEST(!sae::metrics::defined(sae::metrics::explained_variance(one_row, one_row)));
  sae::metrics::Evaluation e;
  e.explained_variance = e.explained_variance_reports = e.ev_per_active_latent = nan;
  const auto written = sae::io::Json::parse(sae::metrics::to_json(e).dump());
  BOOST_TEST(written.at("explained_variance").is_null());
  BOOST_TEST(std::isnan(sae::metrics::evaluation_from_json(written).explained_variance));

  // sae-compare's point-by-point summary: an undefined EV on either side is no "no lower".
  sae::metrics::Evaluation topk, variant, undefined;
  topk.explained_variance = 0.5, topk.dead_fraction = 0.2;
  variant.explained_variance = 0.6, variant.dead_fraction = 0.1;
  undefined.explained_variance = nan, undefined.dead_fraction = 0.1;
  sae::report::CompareTally tally;
  tally.add(variant, topk);
  tally.add(undefined, topk);
  tally.add(variant, undefined);
  BOOST_TEST(tally.points == 3);
  BOOST_TEST(tally.no_more_dead == 3);
  BOOST_TEST(tally.ev_points == 1);
  BOOST_TEST(tally.no_worse_ev == 1);
  BOOST_TEST(tally.both == 1);
  BOOST_TEST(tally.words() == "dead % no higher at 3 of 3 points, EV no lower (within 0.005) at 1 of the 1 with a defined EV "
                              "(2 undefined), both at 1");
  sae::report::CompareTally none;
  none.add(undefined, undefined);
  BOOST_TEST(none.no_worse_ev == 0);
  BOOST_TEST(none.words().find("EV undefined at every point") != std::string::npos);

  // Summaries and means leave undefined values out; a front never holds one.
  const auto s = sae::analysis::describe({0.2, nan, 0.4});
  BOOST_TEST(s.count == 2u);
  BOOST_TEST(s.undefined == 1u);
  BOOST_TEST(s.mean == 0.3, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(s.max == 0.4);
  BOOST_TEST(std::isnan(sae::analysis::describe({nan}).mean));
  const auto front = sae::analysis::pareto_front({{nan, 1}, {0.5, 2}}, {{"EV", Direction::maximize}, {"K", Direction::minimize}});
  BOOST_TEST(!front.on_front[0]);
  BOOST_TEST(front.on_front[1]);  // not dominated by an undefined EV at a smaller K
  std::vector<sae::SweepResult> results(2);
  results[0].slice = results[1].slice = sae::data::LayerPosition{0, 0};
  results[0].val.explained_variance = nan, results[1].val.explained_variance = 0.7;
  const auto effects = sae::analysis::sweep_effects(results, {0}, {0});
  BOOST_TEST(effects.grand_ev == 0.7);
  BOOST_TEST(effects.layers[0].best == 1u);
  BOOST_TEST(!sae::analysis::detail::strictly_monotone({0.1, nan, 0.3}, +1));
}
