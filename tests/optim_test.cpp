#define BOOST_TEST_MODULE optim
#include "test_helpers.hpp"

#include <sae/model/topk_autoencoder.hpp>
#include <sae/optim/adam.hpp>

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
}

// Adam's square root must be IEEE's on every ISA: Eigen's own psqrt is an rsqrt approximation
// under EIGEN_FAST_MATH, off by a bit or two on some inputs, which this test would catch.
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
