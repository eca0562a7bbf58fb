#define BOOST_TEST_MODULE optim
#include "test_helpers.hpp"

#include <sae/model/topk_autoencoder.hpp>
#include <sae/optim/adam.hpp>
#include <sae/optim/schedule.hpp>
#include <sae/optim/sgd.hpp>
#include <sae/train/trainer.hpp>
#include <sae/data/planted.hpp>

#include <cmath>
#include <limits>
#include <vector>

using sae::index_t;
using Model = sae::TopKAutoencoder<double>;

namespace {
// Gradients with w_enc row 1 = g_row, every other gradient zero.
Model::Gradients one_row_gradient(const Model& m, double g_value, bool list_all_rows) {
  Model::Gradients g;
  const index_t f = m.num_latents(), d = m.input_dim();
  for (auto* r : {&g.w_enc, &g.w_dec}) {
    r->total_rows = f;
    if (list_all_rows) {
      for (index_t j = 0; j < f; ++j) r->rows.push_back(static_cast<std::int32_t>(j));
      r->values.setZero(f, d);
    } else {
      r->values.resize(0, d);
    }
  }
  if (list_all_rows) {
    g.w_enc.values.row(1).setConstant(g_value);
  } else {
    g.w_enc.rows = {1};
    g.w_enc.values.setConstant(1, d, g_value);
  }
  g.b_enc.setZero(f);
  return g;
}
}  // namespace

BOOST_AUTO_TEST_CASE(adam_steps_against_hand_arithmetic) {
  Model model(sae::TopKConfig{3, 4, 1});
  model.parameters().w_enc.setConstant(0.5);
  sae::Adam<double> adam(sae::AdamConfig{0.1, 0.9, 0.999, 1e-8});
  // Step 1: m = 0.02, v = 4e-5, m_hat = 0.2, v_hat = 0.04: the step is lr * g/|g| = 0.1 (minus eps).
  adam.step(model, one_row_gradient(model, 0.2, false));
  BOOST_TEST(std::abs(model.parameters().w_enc(1, 0) - 0.4) < 1e-7);
  BOOST_TEST(model.parameters().w_enc(0, 0) == 0.5);  // zero gradient, zero moments: no move
  // Step 2 with zero gradient: the moments decay and the parameter keeps moving.
  adam.step(model, one_row_gradient(model, 0.0, false));
  const double p1 = 0.5 - (0.1 / 0.1) * 0.02 / (std::sqrt(4e-5) / std::sqrt(1 - 0.999) + 1e-8);
  const double m = 0.9 * 0.02, v = 0.999 * 4e-5;
  const double expected = p1 - (0.1 / (1 - 0.81)) * m / (std::sqrt(v) / std::sqrt(1 - 0.999 * 0.999) + 1e-8);
  BOOST_TEST(std::abs(model.parameters().w_enc(1, 2) - expected) < 1e-12);
  BOOST_TEST(std::abs(p1 - expected - 0.0670059) < 1e-6);  // by hand: 0.1 * 0.0947368 / 0.141386
  BOOST_TEST(adam.steps() == 2);
}

BOOST_AUTO_TEST_CASE(row_sparse_and_dense_gradients_give_identical_updates) {
  Model a(sae::TopKConfig{5, 6, 2}), b(sae::TopKConfig{5, 6, 2});
  sae::Adam<double> adam_a, adam_b;
  for (int step = 0; step < 3; ++step) {
    adam_a.step(a, one_row_gradient(a, 0.3 * (step + 1), false));
    adam_b.step(b, one_row_gradient(b, 0.3 * (step + 1), true));
  }
  BOOST_TEST(sae::test::same(a.parameters().w_enc, b.parameters().w_enc));
  BOOST_TEST(sae::test::same(a.parameters().w_dec, b.parameters().w_dec));
}

// Adam applies the decoder's unit-norm constraint to each row in its own pass; the trainer's
// normalize_decoder() that follows is then skipped.
BOOST_AUTO_TEST_CASE(adam_renormalizes_decoder_rows_in_its_pass) {
  Model model(sae::TopKConfig{3, 4, 1});
  const sae::Matrix<double> before = model.parameters().w_dec;
  auto g = one_row_gradient(model, 0.2, false);
  g.w_dec.rows = {2};
  g.w_dec.values.setConstant(1, 3, -0.5);
  sae::Adam<double> adam(sae::AdamConfig{0.1});
  adam.step(model, g);
  // First step: m = -0.05, v = 2.5e-4, step size lr / 0.1 = 1, denominator 0.5: every element of
  // row 2 moves by +0.1, then the row is rescaled to unit norm. Rows without gradient stay put.
  const Eigen::RowVectorXd moved = (before.row(2).array() + 0.1).matrix();
  const auto& w_dec = model.parameters().w_dec;
  BOOST_TEST((w_dec.row(2) - moved / moved.norm()).norm() < 1e-7);
  for (index_t j : {0, 1, 3}) BOOST_TEST((w_dec.row(j) - before.row(j)).norm() < 1e-14);
  for (index_t j = 0; j < 4; ++j) BOOST_TEST(std::abs(w_dec.row(j).norm() - 1.0) < 1e-12);
  // A change through parameters() re-arms the model's own renormalisation.
  model.parameters().w_dec.row(1) *= 3.0;
  model.normalize_decoder();
  BOOST_TEST(std::abs(model.parameters().w_dec.row(1).norm() - 1.0) < 1e-12);
}

BOOST_AUTO_TEST_CASE(bad_hyperparameters_are_rejected) {
  BOOST_CHECK_THROW(sae::Adam<float>(sae::AdamConfig{0.0}), sae::invalid_argument);
  BOOST_CHECK_THROW(sae::Adam<float>(sae::AdamConfig{1e-3, 1.0}), sae::invalid_argument);
  BOOST_CHECK_THROW(sae::Adam<float>(sae::AdamConfig{1e-3, 0.9, 0.999, 0.0}), sae::invalid_argument);
  BOOST_CHECK_THROW(sae::Adam<float>(sae::AdamConfig{1e-3, 0.9, 0.999, 1e-8, -0.1}), sae::invalid_argument);
  BOOST_CHECK_THROW(sae::Sgd<float>(sae::SgdConfig{0.0}), sae::invalid_argument);
  BOOST_CHECK_THROW(sae::Sgd<float>(sae::SgdConfig{0.1, 1.0}), sae::invalid_argument);
  BOOST_CHECK_THROW(sae::Sgd<float>(sae::SgdConfig{0.1, 0.9, -1.0}), sae::invalid_argument);
}

// Adam's square root must be IEEE's on every ISA: Eigen's own psqrt is an rsqrt approximation
// under EIGEN_FAST_MATH, off by a bit or two on some inputs, which this test would catch.
// AdamW: the parameter first shrinks by 1 - lr * weight_decay, then takes Adam's step; a
// parameter with no gradient still decays.
BOOST_AUTO_TEST_CASE(adamw_steps_against_hand_arithmetic) {
  Model model(sae::TopKConfig{3, 4, 1});
  model.parameters().w_enc.setConstant(0.5);
  model.parameters().b_enc.setConstant(2.0);
  sae::AdamConfig c{0.1, 0.9, 0.999, 1e-8};
  c.weight_decay = 0.5;
  sae::Adam<double> adamw(c);
  adamw.step(model, one_row_gradient(model, 0.2, false));
  // 0.5 * (1 - 0.05) = 0.475, then Adam's first step of lr * g/|g| = 0.1 (minus eps).
  BOOST_TEST(std::abs(model.parameters().w_enc(1, 0) - 0.375) < 1e-7);
  BOOST_TEST(std::abs(model.parameters().w_enc(0, 0) - 0.475) < 1e-15);  // decay only
  BOOST_TEST(std::abs(model.parameters().b_enc(3) - 1.9) < 1e-15);
  // With a learning-rate factor the decay uses the scaled rate: 0.475 * (1 - 0.5 * 0.1 * 0.5).
  adamw.step(model, one_row_gradient(model, 0.0, false), 0.5);
  BOOST_TEST(std::abs(model.parameters().w_enc(0, 0) - 0.475 * 0.975) < 1e-15);
}

// torch.optim.SGD (momentum 0.9, dampening 0): buf = g on the first step, then 0.9 buf + g;
// p -= lr * buf. A row without gradient keeps moving on its momentum.
BOOST_AUTO_TEST_CASE(sgd_with_momentum_steps_against_hand_arithmetic) {
  Model model(sae::TopKConfig{3, 4, 1});
  model.parameters().w_enc.setConstant(0.5);
  sae::Sgd<double> sgd(sae::SgdConfig{0.1, 0.9});
  sgd.step(model, one_row_gradient(model, 0.2, false));
  BOOST_TEST(std::abs(model.parameters().w_enc(1, 0) - (0.5 - 0.1 * 0.2)) < 1e-15);  // 0.48
  BOOST_TEST(model.parameters().w_enc(0, 0) == 0.5);
  sgd.step(model, one_row_gradient(model, 0.0, false));
  BOOST_TEST(std::abs(model.parameters().w_enc(1, 0) - (0.48 - 0.1 * 0.18)) < 1e-15);  // buf = 0.9 * 0.2
  sgd.step(model, one_row_gradient(model, 1.0, false), 0.5);  // buf = 0.162 + 1, lr 0.05
  BOOST_TEST(std::abs(model.parameters().w_enc(1, 0) - (0.462 - 0.05 * 1.162)) < 1e-14);
  BOOST_TEST(sgd.steps() == 3);
  // Coupled weight decay: d = g + wd * p.
  Model decayed(sae::TopKConfig{3, 4, 1});
  decayed.parameters().w_enc.setConstant(0.5);
  sae::Sgd<double> sgd_wd(sae::SgdConfig{0.1, 0.9, 0.2});
  sgd_wd.step(decayed, one_row_gradient(decayed, 0.2, false));
  BOOST_TEST(std::abs(decayed.parameters().w_enc(1, 0) - (0.5 - 0.1 * (0.2 + 0.1))) < 1e-15);
  BOOST_TEST(std::abs(decayed.parameters().w_enc(0, 0) - (0.5 - 0.1 * 0.1)) < 1e-15);
  // The decoder keeps unit-norm rows under SGD too.
  auto g = one_row_gradient(model, 0.0, false);
  g.w_dec.rows = {2};
  g.w_dec.values.setConstant(1, 3, -3.0);
  sgd.step(model, g);
  for (index_t r = 0; r < 4; ++r) BOOST_TEST(std::abs(model.parameters().w_dec.row(r).norm() - 1.0) < 1e-12);
}

BOOST_AUTO_TEST_CASE(learning_rate_schedules_against_hand_arithmetic) {
  sae::LrSchedule warm;
  warm.warmup_steps = 4;
  BOOST_TEST(warm.factor(1, 100) == 0.25);
  BOOST_TEST(warm.factor(4, 100) == 1.0);
  BOOST_TEST(warm.factor(50, 100) == 1.0);
  sae::LrSchedule linear{2, sae::LrDecay::linear, 0.1};
  // After 2 warmup steps, steps 3..12 go linearly from 1 to 0.1.
  BOOST_TEST(linear.factor(2, 12) == 1.0);
  BOOST_TEST(linear.factor(3, 12) == 1.0);
  BOOST_TEST(linear.factor(12, 12) == 0.1, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(linear.factor(7, 12) == 0.1 + 0.9 * (1.0 - 4.0 / 9.0), boost::test_tools::tolerance(1e-12));
  sae::LrSchedule cosine{0, sae::LrDecay::cosine, 0.0};
  BOOST_TEST(cosine.factor(1, 11) == 1.0);
  BOOST_TEST(cosine.factor(6, 11) == 0.5, boost::test_tools::tolerance(1e-12));  // half way: cos(pi/2)
  BOOST_TEST(cosine.factor(11, 11) == 0.0, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(cosine.factor(3, 11) == 0.5 * (1 + std::cos(M_PI * 0.2)), boost::test_tools::tolerance(1e-12));
  BOOST_TEST((sae::parse_lr_decay("cosine") == sae::LrDecay::cosine));
  sae::test::require_throws_with<sae::invalid_argument>([] { sae::parse_lr_decay("step"); }, {"'step'"});
  sae::test::require_throws_with<sae::invalid_argument>([] { sae::LrSchedule{-1}.validate(); }, {"warmup_steps"});
  sae::test::require_throws_with<sae::invalid_argument>(
      [] { sae::LrSchedule{0, sae::LrDecay::linear, 1.5}.validate(); }, {"final_fraction"});
}

// The trainer hands step t (counted over all epochs) its factor(t, epochs x batches).
namespace {
struct RecordingOptimizer {
  std::vector<double> factors;
  template <class M>
  void step(M&, const typename M::Gradients&, double f = 1.0) { factors.push_back(f); }
};
}  // namespace
BOOST_AUTO_TEST_CASE(the_trainer_applies_the_schedule_step_by_step) {
  using FloatModel = sae::TopKAutoencoder<float>;
  sae::data::PlantedConfig pc;
  pc.num_samples = 40, pc.input_dim = 8, pc.num_features = 8, pc.k_true = 2;
  const auto data = sae::data::make_planted<float>(pc);
  sae::TrainConfig tc{6, 20, 0, true, 0};  // 2 batches per epoch, 12 steps
  tc.schedule = sae::LrSchedule{3, sae::LrDecay::linear, 0.0};
  FloatModel model(sae::TopKConfig{8, 16, 2});
  auto trainer = sae::make_trainer<FloatModel>(tc, RecordingOptimizer{});
  trainer.fit(model, data.x, nullptr);  // fit() steps the trainer's own optimizer
  std::vector<double> expected;
  for (int t = 1; t <= 12; ++t) expected.push_back(tc.schedule.factor(t, 12));
  const auto& got = trainer.optimizer().factors;
  BOOST_REQUIRE_EQUAL(got.size(), expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) BOOST_TEST(got[i] == expected[i]);
  BOOST_TEST(got[0] == 1.0 / 3.0, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(got[11] == 0.0);
  // A constant schedule calls the two-argument step (factor 1): existing optimizers are unaffected.
  sae::TrainConfig plain{1, 20, 0, true, 0};
  auto trainer2 = sae::make_trainer<FloatModel>(plain, RecordingOptimizer{});
  trainer2.fit(model, data.x, nullptr);
  BOOST_TEST(trainer2.optimizer().factors == std::vector<double>(2, 1.0));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(packet_sqrt_is_exact_on_every_lane, T, sae::test::float_types) {
  using P = sae::simd::Packet<T>;
  constexpr index_t lanes = sae::simd::kLanes<T>;
  sae::Rng rng(5);
  std::vector<T> in, special = {T(0), T(1), T(2), T(1e-30), std::numeric_limits<T>::denorm_min(),
                                std::numeric_limits<T>::min(), std::numeric_limits<T>::max(),
                                std::numeric_limits<T>::infinity()};
  for (int i = 0; i < 20000; ++i) in.push_back(static_cast<T>(std::exp(20 * rng.normal())));
  in.insert(in.end(), special.begin(), special.end());
  while (in.size() % lanes) in.push_back(T(3));
  index_t wrong = 0;
  for (std::size_t i = 0; i < in.size(); i += lanes) {
    T out[lanes];
    Eigen::internal::pstoreu(out, sae::simd::exact_sqrt(Eigen::internal::ploadu<P>(in.data() + i)));
    for (index_t l = 0; l < lanes; ++l) wrong += out[l] != std::sqrt(in[i + l]);
  }
  BOOST_TEST(wrong == 0);
}
