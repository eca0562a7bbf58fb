#define BOOST_TEST_MODULE matryoshka
#include "test_helpers.hpp"

#include <sae/sae.hpp>

#include <algorithm>
#include <numeric>
#include <tuple>

using sae::index_t;
using sae::test::random_matrix;
using Model = sae::MatryoshkaAutoencoder<double>;

namespace {
// The naive BatchTopK: sort every positive entry by (value desc, row-major position asc), keep
// the first `total`, as a dense matrix.
sae::Matrix<double> naive_batch_topk(const sae::Matrix<double>& pre, index_t total) {
  std::vector<std::tuple<double, index_t>> entries;
  for (index_t e = 0; e < pre.size(); ++e)
    if (pre.data()[e] > 0) entries.emplace_back(-pre.data()[e], e);
  std::sort(entries.begin(), entries.end());
  sae::Matrix<double> kept = sae::Matrix<double>::Zero(pre.rows(), pre.cols());
  for (index_t s = 0; s < std::min<index_t>(total, static_cast<index_t>(entries.size())); ++s) {
    const index_t e = std::get<1>(entries[static_cast<std::size_t>(s)]);
    kept.data()[e] = pre.data()[e];
  }
  return kept;
}

// Each row's slots must list its latents in ascending order, padding (value 0) last.
void require_ascending_then_padding(const sae::SparseCodes<double>& codes) {
  for (index_t i = 0; i < codes.rows; ++i) {
    bool padding = false;
    for (index_t s = 0; s < codes.k; ++s) {
      if (codes.row_values(i)[s] == 0) padding = true;
      else BOOST_TEST_REQUIRE((!padding && (s == 0 || codes.row_indices(i)[s] > codes.row_indices(i)[s - 1])));
    }
  }
}

sae::MatryoshkaConfig small_config(bool decoder_bias) {
  sae::MatryoshkaConfig c;
  c.input_dim = 6;
  c.num_latents = 12;
  c.k = 3;
  c.group_sizes = {2, 3, 7};
  c.decoder_bias = decoder_bias;
  c.seed = 4;
  return c;
}
}  // namespace

BOOST_AUTO_TEST_CASE(batch_topk_keeps_exactly_k_times_b_activations) {
  for (index_t k : {1, 4, 16}) {
    const auto pre = random_matrix(37, 64, static_cast<std::uint64_t>(k));
    sae::SparseCodes<double> codes;
    const double smallest = sae::ops::batch_topk(sae::cpu{}, pre, k * 37, codes);
    const auto dense = codes.to_dense();
    const auto kept = (dense.array() > 0).count();
    BOOST_TEST(kept == k * 37);
    BOOST_TEST(sae::test::same(dense, naive_batch_topk(pre, k * 37)));
    BOOST_TEST(smallest == (dense.array() > 0).select(dense, 1e300).minCoeff());
    require_ascending_then_padding(codes);
  }
}

BOOST_AUTO_TEST_CASE(batch_topk_ties_and_shortage) {
  // Five entries tie at the cut: the earlier ones in row-major order win.
  sae::Matrix<double> pre(3, 4);
  pre << 1, 5, 1, -2,  //
      1, 0, 1, 3,      //
      1, -1, 2, 1;
  sae::SparseCodes<double> codes;
  BOOST_TEST(sae::ops::batch_topk(sae::cpu{}, pre, 5, codes) == 1.0);
  sae::Matrix<double> expected(3, 4);
  expected << 1, 5, 1, 0,  //
      0, 0, 0, 3,          //
      0, 0, 2, 0;
  BOOST_TEST(sae::test::same(codes.to_dense(), expected));
  BOOST_TEST(sae::test::same(codes.to_dense(), naive_batch_topk(pre, 5)));
  // Fewer positives than asked for: all of them, nothing else.
  sae::ops::batch_topk(sae::cpu{}, pre, 100, codes);
  BOOST_TEST(sae::test::same(codes.to_dense(), pre.cwiseMax(0.0)));
}

BOOST_AUTO_TEST_CASE(batch_topk_matches_the_naive_selection_on_large_batches) {
  // Large enough for the sampled guess (every 16th entry) to be used: heavy ties at the cut, a
  // guess that happens to sit exactly on the cut (every value equal), and too few positives (the
  // guess rejected for every positive entry).
  sae::Matrix<double> rounded = random_matrix(200, 96, 5);
  rounded = (rounded.array() * 3).round() / 3;
  sae::Matrix<double> equal = sae::Matrix<double>::Constant(40, 32, 0.5);
  sae::Matrix<double> sparse = random_matrix(200, 96, 6).array() - 2.2;  // ~1.4% positive
  // Exactly `total` entries at or above the guess: 56 large unsampled entries plus the 8 sampled
  // ones at or above the sample's 8th largest (total 64: rank 2 x 64 / 16).
  sae::Matrix<double> exact = sae::Matrix<double>::Constant(100, 16, -1.0);
  for (index_t r = 0; r < 100; ++r) exact(r, 0) = 100.0 - static_cast<double>(r);  // the sampled column
  for (index_t r = 0; r < 56; ++r) exact(r, 5) = 1000.0 + static_cast<double>(r);
  {
    sae::SparseCodes<double> codes;
    sae::ops::batch_topk(sae::cpu{}, exact, 64, codes);
    BOOST_TEST(sae::test::same(codes.to_dense(), naive_batch_topk(exact, 64)));
  }
  for (const sae::Matrix<double>* pre : {&rounded, &equal, &sparse})
    for (index_t total : {1, 37, 640, 1300, 5000}) {
      BOOST_TEST_CONTEXT("rows " << pre->rows() << ", total " << total) {
        sae::SparseCodes<double> codes;
        sae::ops::batch_topk(sae::cpu{}, *pre, total, codes);
        BOOST_TEST(sae::test::same(codes.to_dense(), naive_batch_topk(*pre, total)));
        require_ascending_then_padding(codes);
      }
    }
}

BOOST_AUTO_TEST_CASE(threshold_select_keeps_activations_above_the_threshold) {
  const auto pre = random_matrix(9, 20, 3);
  sae::SparseCodes<double> codes;
  sae::ops::threshold_select(sae::cpu{}, pre, 0.5, codes);
  BOOST_TEST(sae::test::same(codes.to_dense(), (pre.array() > 0.5).select(pre, 0.0).matrix()));
  require_ascending_then_padding(codes);
  sae::ops::threshold_select(sae::cpu{}, pre, -1.0, codes);  // unset threshold: every positive
  BOOST_TEST(sae::test::same(codes.to_dense(), pre.cwiseMax(0.0)));
}

BOOST_AUTO_TEST_CASE(loss_is_the_mean_of_prefix_losses) {
  for (bool bias : {false, true}) {
    Model model(small_config(bias));
    if (bias) model.parameters().b_dec = random_matrix(6, 1, 8).col(0) * 0.3;
    const auto x = random_matrix(10, 6, 5);
    Model::Gradients g;
    Model::Workspace ws;
    const sae::StepLoss step = model.loss_and_gradient(x, g, ws);
    const double loss = step.loss;
    // Naive: dense codes, columns past each prefix zeroed, dense decode.
    const sae::Matrix<double> z = model.encode_batch(x).to_dense();
    const auto& p = model.parameters();
    double expected = 0, full = 0;
    const index_t ends[] = {2, 5, 12};
    for (index_t end : ends) {
      sae::Matrix<double> zm = z;
      zm.rightCols(12 - end).setZero();
      sae::Matrix<double> x_hat = zm * p.w_dec;
      if (bias) x_hat.rowwise() += p.b_dec.transpose();
      const double mse = (x_hat - x).squaredNorm() / static_cast<double>(x.size());
      expected += mse / 3;
      full = mse;
      BOOST_TEST((model.decode_prefix(model.encode_batch(x), end == 2 ? 1 : end == 5 ? 2 : 3) - x_hat).cwiseAbs().maxCoeff() <
                 1e-12);
    }
    BOOST_TEST(loss == expected, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(step.reconstruction_mse == full, boost::test_tools::tolerance(1e-12));
    BOOST_TEST((z.array() > 0).count() == 3 * 10);
  }
}

BOOST_AUTO_TEST_CASE(central_difference_gradient_check) {
  for (bool bias : {false, true}) {
    BOOST_TEST_CONTEXT("decoder_bias=" << bias) {
      Model model(small_config(bias));
      if (bias) model.parameters().b_dec = random_matrix(6, 1, 9).col(0) * 0.3;
      sae::test::check_gradients_by_central_differences(model, random_matrix(7, 6, 11), bias);
    }
  }
}

BOOST_AUTO_TEST_CASE(one_group_is_batch_topk_with_the_topk_loss) {
  // With a single group the loss is plain MSE; compare with the same codes decoded by hand.
  auto c = small_config(false);
  c.group_sizes = {12};
  Model model(c);
  const auto x = random_matrix(8, 6, 2);
  Model::Gradients g;
  Model::Workspace ws;
  const double loss = model.loss_and_gradient(x, g, ws).loss;
  const double mse = (model.encode_batch(x).to_dense() * model.parameters().w_dec - x).squaredNorm() / 48.0;
  BOOST_TEST(loss == mse, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(threshold_tracks_the_smallest_kept_activation) {
  auto c = small_config(false);
  c.threshold_beta = 0.5;
  Model model(c);
  BOOST_TEST(model.threshold() < 0);
  const auto x1 = random_matrix(10, 6, 1), x2 = random_matrix(10, 6, 2);
  Model::Gradients g;
  Model::Workspace ws;
  const auto smallest = [&](const sae::Matrix<double>& x) {
    const auto z = model.encode_batch(x).to_dense();
    return (z.array() > 0).select(z, 1e300).minCoeff();
  };
  const double m1 = smallest(x1);
  model.loss_and_gradient(x1, g, ws);
  BOOST_TEST(model.threshold() == m1);
  const double m2 = smallest(x2);
  model.loss_and_gradient(x2, g, ws);
  BOOST_TEST(model.threshold() == 0.5 * m1 + 0.5 * m2, boost::test_tools::tolerance(1e-15));
}

BOOST_AUTO_TEST_CASE(config_errors_are_clear) {
  auto c = small_config(false);
  c.group_sizes = {2, 3, 6};
  sae::test::require_throws_with<sae::invalid_argument>([&] { Model m(c); },
                                                        {"MatryoshkaAutoencoder", "group sizes sum to 11", "num_latents is 12"});
  c.group_sizes = {2, 0, 10};
  sae::test::require_throws_with<sae::invalid_argument>([&] { Model m(c); }, {"group sizes must be positive"});
  BOOST_TEST((sae::default_matryoshka_groups(2048) == std::vector<index_t>{128, 128, 256, 512, 1024}));
  BOOST_TEST((sae::default_matryoshka_groups(20) == std::vector<index_t>{1, 1, 2, 5, 11}));
}

BOOST_AUTO_TEST_CASE(training_recovers_a_planted_dictionary_and_calibrates_the_threshold) {
  // The core's planted test: 48 directions in 32-D, 3 per sample; Matryoshka with F = 96, k = 3.
  sae::data::PlantedConfig pc;
  pc.num_samples = 10000;
  pc.input_dim = 32;
  pc.num_features = 48;
  pc.k_true = 3;
  pc.noise_std = 0.01;
  pc.seed = 1;
  const auto data = sae::data::make_planted<float>(pc);
  const sae::Matrix<float> train = data.x.topRows(8000), test = data.x.bottomRows(2000);
  sae::MatryoshkaConfig c;
  c.input_dim = 32;
  c.num_latents = 96;
  c.k = 3;
  using FloatModel = sae::MatryoshkaAutoencoder<float>;
  FloatModel model(c);
  auto trainer = sae::make_trainer<FloatModel>(sae::TrainConfig{60, 128, 0, true}, sae::Adam<float>(sae::AdamConfig{3e-3}));
  const auto summary = trainer.fit(model, train, &test);
  const Eigen::MatrixXf cos = data.dictionary * model.parameters().w_dec.transpose();
  const double recovery = cos.rowwise().maxCoeff().mean();
  const auto eval = sae::metrics::evaluate(model, test);
  BOOST_TEST_MESSAGE("mean max cosine " << recovery << ", held-out EV " << eval.explained_variance << ", L0 " << eval.l0
                                        << ", threshold " << model.threshold());
  BOOST_TEST(recovery > 0.9);
  BOOST_TEST(eval.explained_variance > 0.85);
  // The threshold encoder fires about k latents per sample without seeing a batch.
  BOOST_TEST(eval.l0 > 2.0);
  BOOST_TEST(eval.l0 < 4.5);
  // The trainer scores the threshold encoder's full reconstruction, as evaluate() does.
  BOOST_TEST(*summary.history.back().validation_ev == eval.explained_variance, boost::test_tools::tolerance(1e-6));
}
