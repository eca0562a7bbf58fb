#define BOOST_TEST_MODULE hierarchy
#include "test_helpers.hpp"

#include <sae/analysis/interventions.hpp>
#include <sae/analysis/specialization.hpp>
#include <sae/core/rng.hpp>
#include <sae/data/samples.hpp>
#include <sae/model/topk_autoencoder.hpp>

using sae::index_t;
using sae::test::random_matrix;
using sae::analysis::Operation;
using sae::analysis::SpecializationKind;
using Model = sae::TopKAutoencoder<double>;

namespace {
// n samples: the first `with_op` use `op`, the last `with_other` use subtraction (the two may
// overlap); the first `with_value` contain operand "100", the next `with_value2` contain "7".
std::vector<sae::analysis::CotFeatures> make_samples(int n, Operation op, int with_op, int with_other, int with_value,
                                                     int with_value2) {
  std::vector<sae::analysis::CotFeatures> f(static_cast<std::size_t>(n));
  for (int s = 0; s < n; ++s) {
    auto& x = f[static_cast<std::size_t>(s)];
    if (s < with_op) x.uses[static_cast<std::size_t>(op)] = true;
    if (s >= n - with_other) x.uses[static_cast<std::size_t>(Operation::subtract)] = true;
    if (s < with_value) x.operands.push_back("100");
    else if (s < with_value + with_value2) x.operands.push_back("7");
    x.operands.push_back("unique" + std::to_string(s));  // one value nobody shares
  }
  return f;
}

SpecializationKind kind_of(const std::vector<sae::analysis::CotFeatures>& f) {
  std::vector<const sae::analysis::CotFeatures*> p;
  for (const auto& x : f) p.push_back(&x);
  return sae::analysis::classify_samples(p).kind;
}

// The reconstruction from dense codes, the naive way.
sae::Matrix<double> dense_decode(const Model& model, const sae::Matrix<double>& z) { return z * model.parameters().w_dec; }

struct Fixture {
  Model model{sae::TopKConfig{6, 16, 4, sae::Selection::value, false, 3}};
  sae::Matrix<double> x = random_matrix(25, 6, 7);
  sae::analysis::InterventionEngine<Model> engine{model, model.encode(x)};
};

// Eight samples alternating "*" (even) and "+" (odd), and codes over four latents: latent 0 fires
// on every sample, latent 1 on the "*" ones, latent 2 on the "+" ones, latent 3 never.
std::pair<std::vector<sae::analysis::CotFeatures>, sae::SparseCodes<float>> add_and_multiply_samples() {
  std::vector<sae::analysis::CotFeatures> features(8);
  sae::SparseCodes<float> codes;
  codes.rows = 8, codes.k = 2, codes.num_latents = 4;
  for (index_t i = 0; i < 8; ++i) {
    sae::data::Sample s;
    s.cot_steps = sae::data::parse_cot_steps(i % 2 ? "<<3+4=7>>" : "<<6*2=12>>");
    features[static_cast<std::size_t>(i)] = sae::analysis::cot_features(s);
    codes.indices.push_back(0), codes.values.push_back(1.0f + static_cast<float>(i));
    codes.indices.push_back(i % 2 ? 2 : 1), codes.values.push_back(i % 2 ? 2.0f : 0.5f);
  }
  return {features, codes};
}
}  // namespace

BOOST_AUTO_TEST_CASE(operation_thresholds_are_strict) {
  // 10 samples: multiplication in 8 (> 70%) and subtraction in 2 (< 30%): operation-specialized.
  BOOST_TEST((kind_of(make_samples(10, Operation::multiply, 8, 2, 0, 0)) == SpecializationKind::operation));
  // Exactly 70%: not above the bound.
  BOOST_TEST((kind_of(make_samples(10, Operation::multiply, 7, 2, 0, 0)) == SpecializationKind::general));
  // Other operation at exactly 30%: not below its bound.
  BOOST_TEST((kind_of(make_samples(10, Operation::multiply, 8, 3, 0, 0)) == SpecializationKind::general));
  // 100% and nothing else.
  BOOST_TEST((kind_of(make_samples(4, Operation::add, 4, 0, 0, 0)) == SpecializationKind::operation));
  // One sample using two operations counts for both: 100% add and 100% subtract is general.
  auto both = make_samples(3, Operation::add, 3, 0, 0, 0);
  for (auto& f : both) f.uses[static_cast<std::size_t>(Operation::subtract)] = true;
  BOOST_TEST((kind_of(both) == SpecializationKind::general));
}

BOOST_AUTO_TEST_CASE(value_thresholds_are_strict) {
  // "100" in 6 of 10 (> 50%), "7" in 1 (< 20%), no dominant operation: value-specialized.
  BOOST_TEST((kind_of(make_samples(10, Operation::add, 5, 0, 6, 1)) == SpecializationKind::value));
  BOOST_TEST((kind_of(make_samples(10, Operation::add, 5, 0, 5, 1)) == SpecializationKind::general));  // exactly 50%
  BOOST_TEST((kind_of(make_samples(10, Operation::add, 5, 0, 6, 2)) == SpecializationKind::general));  // other at 20%
  // Both: highly specialized, and the label names both.
  const auto f = make_samples(10, Operation::divide, 9, 1, 7, 1);
  std::vector<const sae::analysis::CotFeatures*> p;
  for (const auto& x : f) p.push_back(&x);
  const auto s = sae::analysis::classify_samples(p);
  BOOST_TEST((s.kind == SpecializationKind::highly));
  BOOST_TEST(s.label() == "division + value 100");
  BOOST_TEST(s.top_value_share == 0.7);
  BOOST_TEST(s.operation_share[static_cast<std::size_t>(Operation::divide)] == 0.9);
  // Thresholds are parameters: relax the value bound and 5 of 10 qualifies.
  sae::analysis::SpecializationThresholds loose;
  loose.value_dominant = 0.45;
  const auto g = make_samples(10, Operation::add, 5, 0, 5, 1);
  std::vector<const sae::analysis::CotFeatures*> q;
  for (const auto& x : g) q.push_back(&x);
  BOOST_TEST((sae::analysis::classify_samples(q, loose).kind == SpecializationKind::value));
  BOOST_TEST((sae::analysis::classify_samples({}).kind == SpecializationKind::none));
}

BOOST_AUTO_TEST_CASE(taxonomy_counts_by_range) {
  std::vector<sae::analysis::LatentProfile> latents(4);
  std::vector<sae::analysis::Specialization> classes(4);
  const double freq[] = {0.5, 0.2, 0.0, 0.1};
  const SpecializationKind kinds[] = {SpecializationKind::general, SpecializationKind::operation,
                                      SpecializationKind::none, SpecializationKind::highly};
  for (int i = 0; i < 4; ++i) {
    latents[static_cast<std::size_t>(i)].frequency = freq[i];
    latents[static_cast<std::size_t>(i)].active_samples = freq[i] > 0 ? 1 : 0;
    classes[static_cast<std::size_t>(i)].kind = kinds[i];
  }
  const auto t = sae::analysis::taxonomy({5, 8}, latents, classes);
  BOOST_TEST(t.latents == 3);
  BOOST_TEST(t.dead == 1);
  BOOST_TEST(t.specialized == 2);
  BOOST_TEST(t.general == 1);
  BOOST_TEST(t.min_frequency == 0.1);
  BOOST_TEST(t.max_frequency == 0.5);
  BOOST_TEST(t.specialized_rate() == 2.0 / 3.0);
}

BOOST_FIXTURE_TEST_CASE(identities_hold_exactly, Fixture) {
  const auto none = engine.ablate({});
  BOOST_TEST(sae::test::same(none.reconstruction, engine.reconstruction()));
  BOOST_TEST(none.mean_abs == 0.0);
  BOOST_TEST(none.affected_samples == 0);
  const auto once = engine.amplify({0, 3, 5, 9}, 1.0);
  BOOST_TEST(sae::test::same(once.reconstruction, engine.reconstruction()));
  BOOST_TEST(once.max_abs == 0.0);
  // Swap twice: the codes and the reconstruction come back exactly, for any pair and latent set.
  for (index_t a = 0; a < 25; a += 3)
    for (index_t b : {1, 11, 24}) {
      const std::vector<index_t> latents{0, 2, 5, 7, 11, 15};
      const auto first = engine.swap(a, b, latents);
      const auto second = engine.swap_in(first.codes, a, b, latents);
      BOOST_TEST(sae::test::same(second.codes.to_dense(), engine.codes().to_dense()));
      BOOST_TEST(sae::test::same(second.reconstruction, engine.reconstruction()),
                 "max difference " << (second.reconstruction - engine.reconstruction()).cwiseAbs().maxCoeff() << " codes k "
                                   << second.codes.k << " vs " << engine.codes().k);
    }
}

BOOST_FIXTURE_TEST_CASE(interventions_match_a_naive_dense_recomputation, Fixture) {
  const sae::Matrix<double> z = engine.codes().to_dense();
  const sae::Matrix<double> base = dense_decode(model, z);
  const auto compare = [&](const sae::analysis::Intervention<double>& r, const sae::Matrix<double>& z_edit) {
    const sae::Matrix<double> diff = (dense_decode(model, z_edit) - base).cwiseAbs();
    BOOST_TEST(sae::test::same(r.codes.to_dense(), z_edit));
    BOOST_TEST(r.mean_abs == diff.mean(), boost::test_tools::tolerance(1e-9));
    BOOST_TEST(r.max_abs == diff.maxCoeff(), boost::test_tools::tolerance(1e-9));
    for (index_t i = 0; i < z.rows(); ++i) {
      BOOST_TEST(r.sample_mean_abs[static_cast<std::size_t>(i)] == diff.row(i).mean(), boost::test_tools::tolerance(1e-9));
      BOOST_TEST(r.sample_max_abs[static_cast<std::size_t>(i)] == diff.row(i).maxCoeff(), boost::test_tools::tolerance(1e-9));
    }
  };
  for (index_t j = 0; j < 16; ++j) {  // every single-latent ablation
    sae::Matrix<double> ze = z;
    ze.col(j).setZero();
    const auto r = engine.ablate({j});
    compare(r, ze);
    BOOST_TEST(r.affected_samples == (z.col(j).array() > 0).count());  // exactly the rows where it fired
    BOOST_TEST(engine.active_samples(j) == (z.col(j).array() > 0).count());
  }
  sae::Matrix<double> za = z;
  za.col(2) *= 2.5, za.col(9) *= 2.5;
  compare(engine.amplify({2, 9}, 2.5), za);
  sae::Matrix<double> zs = z;
  for (index_t j : {1, 4, 8, 13}) std::swap(zs(3, j), zs(17, j));
  compare(engine.swap(3, 17, {1, 4, 8, 13}), zs);
}

BOOST_AUTO_TEST_CASE(swap_widens_full_rows) {
  // Every slot active: swapping in a latent the row lacks needs a new slot.
  Model model(sae::TopKConfig{4, 6, 2, sae::Selection::value, false, 1});
  sae::SparseCodes<double> codes;
  codes.resize(2, 2, 6);
  codes.indices = {0, 1, 2, 3};
  codes.values = {1.0, 2.0, 3.0, 4.0};
  sae::analysis::InterventionEngine<Model> engine(model, codes);
  const auto r = engine.swap(0, 1, {1, 2});
  sae::Matrix<double> expected = codes.to_dense();
  std::swap(expected(0, 1), expected(1, 1));
  std::swap(expected(0, 2), expected(1, 2));
  BOOST_TEST(sae::test::same(r.codes.to_dense(), expected));
  BOOST_TEST(r.codes.k >= 2);
  sae::test::require_throws_with<sae::invalid_argument>([&] { engine.ablate({6}); }, {"ablate()", "latent 6"});
  sae::test::require_throws_with<sae::invalid_argument>([&] { engine.swap(0, 2, {1}); }, {"swap()", "samples"});
}

BOOST_FIXTURE_TEST_CASE(ablation_grades_follow_the_thresholds, Fixture) {
  // Pick the latent that fires most, then place the thresholds around its measured impact.
  const sae::Matrix<double> z = engine.codes().to_dense();
  index_t j = 0;
  for (index_t c = 1; c < 16; ++c)
    if ((z.col(c).array() > 0).count() > (z.col(j).array() > 0).count()) j = c;
  const double m = engine.ablate({j}).mean_abs;
  const index_t active = engine.active_samples(j);
  const auto grade = [&](double high, double medium, index_t min_active) {
    return sae::analysis::ablation_impact(engine, {j}, {high, medium, min_active}).front().grade;
  };
  using G = sae::analysis::ImpactGrade;
  BOOST_TEST((grade(m, m / 2, active) == G::high));           // at the bound: HIGH
  BOOST_TEST((grade(m * 1.001, m, active) == G::medium));
  BOOST_TEST((grade(m * 2, m * 1.001, active) == G::low));
  BOOST_TEST((grade(0, 0, active + 1) == G::too_rare));       // too few samples beats any impact
  const auto li = sae::analysis::ablation_impact(engine, {j}).front();
  BOOST_TEST(li.active_samples == active);
  BOOST_TEST(li.mean_abs_on_active == li.mean_abs * 25.0 / active, boost::test_tools::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE(a_range_analysed_whole_is_its_parts_composed) {
  // Four latents, eight samples: latent 2 fires on the "+" samples only (operation-specialized),
  // latent 0 on everything (general), latent 3 never (dead).
  const auto [features, codes] = add_and_multiply_samples();
  const std::vector<index_t> ranking = {0, 1, 2, 3};
  const auto r = sae::analysis::analyse_range(codes, ranking, {1, 4}, 3, features);
  BOOST_REQUIRE_EQUAL(r.latents.size(), 4u);
  BOOST_TEST(r.classes[2].specialized());
  BOOST_TEST(!r.classes[0].specialized());
  BOOST_TEST(r.taxonomy.dead == 1);
  BOOST_TEST(r.taxonomy.latents == 3);
  // The same as the pieces called one by one.
  const auto profiles = sae::analysis::profile_rank_range(codes, ranking, {1, 4}, 3);
  for (std::size_t i = 0; i < 4; ++i) {
    BOOST_TEST(r.latents[i].latent == profiles[i].latent);
    BOOST_TEST(r.classes[i].label() == sae::analysis::classify_latent(profiles[i], features).label());
  }
}

BOOST_FIXTURE_TEST_CASE(sanity_checks_pass_on_an_exact_engine_and_impacts_serialise, Fixture) {
  const auto checks = sae::analysis::sanity_checks(engine, {0, 3, 5});
  BOOST_REQUIRE_EQUAL(checks.size(), 4u);
  for (const auto& c : checks) BOOST_TEST(c.ok, c.name);
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::analysis::sanity_checks(engine, {}); },
                                                        {"sanity_checks()", "at least one latent"});
  const auto li = sae::analysis::ablation_impact(engine, {3}).front();
  const auto j = sae::analysis::to_json(li);
  BOOST_TEST(j.at("latent").as_int() == 3);
  BOOST_TEST(j.at("active_samples").as_int() == li.active_samples);
  BOOST_TEST(j.at("mean_impact").as_number() == li.mean_abs);
  BOOST_TEST(j.at("grade").as_string() == sae::analysis::name(li.grade));
}

BOOST_AUTO_TEST_CASE(specialized_latents_are_listed_once_across_ranges) {
  // Latent 1 fires on the "*" samples only, latent 2 on the "+" ones: both operation-specialized.
  // Two overlapping ranges hold both; each is listed once, in range order.
  const auto [features, codes] = add_and_multiply_samples();
  const std::vector<index_t> ranking = {0, 1, 2, 3};
  sae::analysis::LayerSpecialization layer;
  for (auto range : {sae::analysis::RankRange{1, 3}, sae::analysis::RankRange{2, 4}})
    layer.ranges.emplace_back(range, sae::analysis::analyse_range(codes, ranking, range, 3, features));
  const auto spec = layer.specialized();
  BOOST_REQUIRE_EQUAL(spec.size(), 2u);
  BOOST_TEST(spec[0].first == 1);
  BOOST_TEST(spec[1].first == 2);
  BOOST_TEST(spec[1].second == layer.ranges.front().second.classes[2].label());
  BOOST_TEST(spec[1].second.find("addition") != std::string::npos, spec[1].second);
}

BOOST_AUTO_TEST_CASE(samples_pair_with_rows_by_index) {
  std::vector<sae::data::Sample> samples(5);
  for (std::size_t i = 0; i < samples.size(); ++i) samples[i].question = "q" + std::to_string(i);
  const auto picked = sae::data::samples_of_rows(samples, {4, 0, 2});
  BOOST_REQUIRE_EQUAL(picked.size(), 3u);
  BOOST_TEST(picked[0].question == "q4");
  BOOST_TEST(picked[1].question == "q0");
  BOOST_TEST(picked[2].question == "q2");
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::data::samples_of_rows(samples, {5}); },
                                                        {"row 5 has no sample", "there are 5"});
}
