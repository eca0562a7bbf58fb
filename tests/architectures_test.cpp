#define BOOST_TEST_MODULE architectures
// BatchTopK and JumpReLU as their own models: gradients against central differences and an
// independent naive implementation, their selections, training on planted data, checkpoints.
#include "test_helpers.hpp"

#include <sae/sae.hpp>

#include <cmath>

using sae::index_t;
using sae::test::random_matrix;
using BatchTopK = sae::BatchTopKAutoencoder<double>;
using JumpRelu = sae::JumpReluAutoencoder<double>;

namespace {
sae::BatchTopKConfig batch_config(bool decoder_bias) {
  sae::BatchTopKConfig c;
  c.input_dim = 6;
  c.num_latents = 12;
  c.k = 3;
  c.decoder_bias = decoder_bias;
  c.seed = 4;
  return c;
}

sae::JumpReluConfig jump_config(bool decoder_bias) {
  sae::JumpReluConfig c;
  c.input_dim = 6;
  c.num_latents = 12;
  c.sparsity_coefficient = 0.7;
  c.bandwidth = 0.4;
  c.decoder_bias = decoder_bias;
  c.seed = 4;
  return c;
}

sae::data::PlantedData<float> planted(index_t rows, std::uint64_t seed) {
  sae::data::PlantedConfig pc;
  pc.num_samples = rows;
  pc.input_dim = 32;
  pc.num_features = 48;
  pc.k_true = 3;
  pc.noise_std = 0.01;
  pc.seed = seed;
  return sae::data::make_planted<float>(pc);
}

// Trains `model` 60 epochs on 8,000 planted rows (48 directions in 32-D, 3 per sample) and scores
// it on 2,000 held-out ones: the mean best cosine of the true directions to a decoder row, and
// every metric.
struct PlantedScore {
  double recovery;
  sae::metrics::Evaluation held_out;
};
template <class Model>
PlantedScore train_on_planted(Model& model) {
  const auto data = planted(10000, 1);
  const sae::Matrix<float> train = data.x.topRows(8000), test = data.x.bottomRows(2000);
  auto trainer = sae::make_trainer<Model>(sae::TrainConfig{60, 128, 0, true}, sae::Adam<float>(sae::AdamConfig{3e-3}));
  trainer.fit(model, train, &test);
  const Eigen::MatrixXf cos = data.dictionary * model.parameters().w_dec.transpose();
  return {cos.rowwise().maxCoeff().mean(), sae::metrics::evaluate(model, test)};
}
}  // namespace

BOOST_AUTO_TEST_CASE(batch_topk_gradient_by_central_differences) {
  for (bool bias : {false, true}) {
    BOOST_TEST_CONTEXT("decoder_bias=" << bias) {
      BatchTopK model(batch_config(bias));
      if (bias) model.parameters().b_dec = random_matrix(6, 1, 9).col(0) * 0.3;
      // (Data where no kept activation lies within the step h of the batch's cut.)
      sae::test::check_gradients_by_central_differences(model, random_matrix(7, 6, 12), bias);
    }
  }
}

BOOST_AUTO_TEST_CASE(batch_topk_matches_one_group_matryoshka) {
  // The same selection and loss by another code path: a Matryoshka model with one group.
  for (bool bias : {false, true}) {
    BatchTopK model(batch_config(bias));
    sae::MatryoshkaConfig mc;
    mc.input_dim = 6, mc.num_latents = 12, mc.k = 3, mc.group_sizes = {12}, mc.decoder_bias = bias, mc.seed = 4;
    sae::MatryoshkaAutoencoder<double> reference(mc);
    if (bias) model.parameters().b_dec = reference.parameters().b_dec = random_matrix(6, 1, 9).col(0) * 0.3;
    const auto x = random_matrix(9, 6, 2);
    BatchTopK::Gradients g, gr;
    BatchTopK::Workspace ws;
    sae::MatryoshkaAutoencoder<double>::Workspace wr;
    const auto a = model.loss_and_gradient(x, g, ws), b = reference.loss_and_gradient(x, gr, wr);
    BOOST_TEST(a.loss == b.loss, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(a.reconstruction_mse == a.loss);
    BOOST_TEST((g.w_enc.to_dense() - gr.w_enc.to_dense()).cwiseAbs().maxCoeff() < 1e-12);
    BOOST_TEST((g.w_dec.to_dense() - gr.w_dec.to_dense()).cwiseAbs().maxCoeff() < 1e-12);
    BOOST_TEST((g.b_enc - gr.b_enc).cwiseAbs().maxCoeff() < 1e-12);
    if (bias) BOOST_TEST((g.b_dec - gr.b_dec).cwiseAbs().maxCoeff() < 1e-12);
    BOOST_TEST(model.threshold() == reference.threshold());
    // Exactly k x B activations are kept over the batch, however they fall per sample.
    BOOST_TEST((model.encode_batch(x).to_dense().array() > 0).count() == 3 * 9);
  }
}

BOOST_AUTO_TEST_CASE(batch_topk_trains_and_its_threshold_needs_no_batch) {
  sae::BatchTopKConfig c;
  c.input_dim = 32, c.num_latents = 96, c.k = 3;
  sae::BatchTopKAutoencoder<float> model(c);
  const auto [recovery, eval] = train_on_planted(model);
  BOOST_TEST_MESSAGE("BatchTopK: mean max cosine " << recovery << ", EV " << eval.explained_variance << ", L0 " << eval.l0);
  BOOST_TEST(recovery > 0.9);
  BOOST_TEST(eval.explained_variance > 0.85);
  BOOST_TEST(eval.l0 > 2.0);  // the threshold encoder keeps about k per sample
  BOOST_TEST(eval.l0 < 4.5);
}

// The naive JumpReLU step, dense and in double, straight from the paper's formulas: the loss and
// dL/dlog(theta).
struct NaiveJump {
  double loss;
  Eigen::VectorXd dlog_theta;
};
NaiveJump naive_jumprelu(const JumpRelu& m, const sae::Matrix<double>& x) {
  const auto& p = m.parameters();
  const auto& c = m.config();
  const index_t b = x.rows(), d = x.cols(), f = c.num_latents;
  const Eigen::VectorXd theta = p.log_threshold.array().exp();
  sae::Matrix<double> in = x;
  if (c.decoder_bias) in.rowwise() -= p.b_dec.transpose();
  const sae::Matrix<double> pre = (in * p.w_enc.transpose()).rowwise() + p.b_enc.transpose();
  sae::Matrix<double> z = sae::Matrix<double>::Zero(b, f);
  double l0 = 0;
  for (index_t i = 0; i < b; ++i)
    for (index_t j = 0; j < f; ++j)
      if (pre(i, j) > theta[j]) z(i, j) = pre(i, j), l0 += 1;
  sae::Matrix<double> x_hat = z * p.w_dec;
  if (c.decoder_bias) x_hat.rowwise() += p.b_dec.transpose();
  const double n = static_cast<double>(b * d), weight = c.sparsity_coefficient * m.data_scale() * m.data_scale() / d;
  const sae::Matrix<double> dz = (2.0 / n) * (x_hat - x) * p.w_dec.transpose();  // dL/dz, [B, F]
  const double eps = c.bandwidth * m.data_scale();
  Eigen::VectorXd dtheta = Eigen::VectorXd::Zero(f);
  for (index_t i = 0; i < b; ++i)
    for (index_t j = 0; j < f; ++j)
      if (std::abs(pre(i, j) - theta[j]) < eps / 2)
        dtheta[j] += dz(i, j) * (-theta[j] / eps) + weight / static_cast<double>(b) * (-1.0 / eps);
  return {(x_hat - x).squaredNorm() / n + weight * l0 / static_cast<double>(b), theta.cwiseProduct(dtheta)};
}

BOOST_AUTO_TEST_CASE(jumprelu_weight_gradients_by_central_differences) {
  // Away from threshold crossings the L0 term is constant: the weights' gradients are exact.
  for (bool bias : {false, true}) {
    BOOST_TEST_CONTEXT("decoder_bias=" << bias) {
      JumpRelu model(jump_config(bias));
      model.parameters().log_threshold = (random_matrix(12, 1, 3).col(0).array() * 0.5 - 1.5).exp().log();
      if (bias) model.parameters().b_dec = random_matrix(6, 1, 9).col(0) * 0.3;
      const auto x = random_matrix(7, 6, 11);
      sae::test::check_gradients_by_central_differences(model, x, bias);
      JumpRelu::Gradients g;
      JumpRelu::Workspace ws;
      const double loss = model.loss_and_gradient(x, g, ws).loss;
      BOOST_TEST(loss == naive_jumprelu(model, x).loss, boost::test_tools::tolerance(1e-12));
    }
  }
}

BOOST_AUTO_TEST_CASE(jumprelu_threshold_gradient_is_the_papers_pseudo_derivative) {
  for (bool bias : {false, true}) {
    JumpRelu model(jump_config(bias));
    model.parameters().log_threshold = (random_matrix(12, 1, 3).col(0).array() * 0.3 - 1.0);
    if (bias) model.parameters().b_dec = random_matrix(6, 1, 9).col(0) * 0.3;
    const auto x = random_matrix(40, 6, 5);
    JumpRelu::Gradients g;
    JumpRelu::Workspace ws;
    model.loss_and_gradient(x, g, ws);
    const auto naive = naive_jumprelu(model, x);
    BOOST_TEST((naive.dlog_theta.array() != 0).count() >= 6);  // the band catches samples for most latents
    BOOST_TEST((g.log_threshold - naive.dlog_theta).cwiseAbs().maxCoeff() < 1e-12);
  }
}

BOOST_AUTO_TEST_CASE(jumprelu_l0_pseudo_gradient_estimates_the_density_at_the_threshold) {
  // One latent reading one input: pre = x with x evenly spread over [0, 2] (density 1/2). The L0
  // term's expected value is weight * P(x > theta); its derivative in theta is -weight / 2, and
  // the kernel estimate must give that (the reconstruction part cancels between two lambdas).
  sae::JumpReluConfig c;
  c.input_dim = 1, c.num_latents = 1, c.bandwidth = 0.1;
  const auto grad_at = [&](double lambda) {
    c.sparsity_coefficient = lambda;
    JumpRelu model(c);
    model.parameters().w_enc.setOnes();
    model.parameters().b_enc.setZero();
    model.parameters().w_dec.setOnes();
    model.parameters().log_threshold.setConstant(std::log(1.0));
    sae::Matrix<double> x(20000, 1);
    for (index_t i = 0; i < x.rows(); ++i) x(i, 0) = 2.0 * (static_cast<double>(i) + 0.5) / static_cast<double>(x.rows());
    JumpRelu::Gradients g;
    JumpRelu::Workspace ws;
    model.loss_and_gradient(x, g, ws);
    return g.log_threshold[0];  // theta = 1: d/dlog(theta) = d/dtheta
  };
  const double weight = 3.0;  // lambda * ms / D with ms = 1 (no data scale measured), D = 1
  BOOST_TEST(grad_at(weight) - grad_at(0) == -weight / 2, boost::test_tools::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE(jumprelu_data_scale_and_initial_l0) {
  const auto data = planted(3000, 2);
  sae::JumpReluConfig c;
  c.input_dim = 32, c.num_latents = 96, c.initial_l0 = 4;
  sae::JumpReluAutoencoder<float> model(c);
  model.initialize_from_data(data.x);
  const double ms = static_cast<double>(data.x.cast<double>().squaredNorm()) / static_cast<double>(data.x.size());
  BOOST_TEST(model.data_scale() == std::sqrt(ms), boost::test_tools::tolerance(1e-9));
  BOOST_TEST(model.l0_weight() == c.sparsity_coefficient * ms / 32, boost::test_tools::tolerance(1e-9));
  // One shared threshold, at the cut that keeps 4 per sample on average (every row sampled here).
  const auto t = model.thresholds();
  BOOST_TEST(t.maxCoeff() == t.minCoeff());
  BOOST_TEST(sae::metrics::evaluate(model, data.x).l0 == 4.0, boost::test_tools::tolerance(0.01));
  // Without initial_l0 the thresholds start at initial_threshold x the data's RMS entry.
  c.initial_l0 = 0;
  sae::JumpReluAutoencoder<float> plain(c);
  plain.initialize_from_data(data.x);
  BOOST_TEST(plain.thresholds()[5] == 1e-3 * std::sqrt(ms), boost::test_tools::tolerance(1e-5));
  c.bandwidth = 0;
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::JumpReluAutoencoder<float> m(c); },
                                                        {"JumpReluAutoencoder", "bandwidth must be positive"});
}

BOOST_AUTO_TEST_CASE(jumprelu_trains_to_a_sparse_planted_dictionary) {
  sae::JumpReluConfig c;
  c.input_dim = 32, c.num_latents = 96, c.initial_l0 = 3, c.sparsity_coefficient = 0.05;
  sae::JumpReluAutoencoder<float> model(c);
  const auto [recovery, eval] = train_on_planted(model);
  BOOST_TEST_MESSAGE("JumpReLU: mean max cosine " << recovery << ", EV " << eval.explained_variance << ", L0 " << eval.l0
                                                  << ", thresholds " << model.thresholds().minCoeff() << " .. "
                                                  << model.thresholds().maxCoeff());
  BOOST_TEST(recovery > 0.9);
  BOOST_TEST(eval.explained_variance > 0.85);
  BOOST_TEST(eval.l0 < 6.0);
}

BOOST_AUTO_TEST_CASE(checkpoints_round_trip_both_architectures) {
  sae::test::ScratchDir dir("architectures");
  const auto data = planted(400, 8);
  {
    using Model = sae::BatchTopKAutoencoder<float>;
    sae::BatchTopKConfig c;
    c.input_dim = 32, c.num_latents = 64, c.k = 3, c.decoder_bias = true, c.tied_init = true, c.seed = 5;
    Model model(c);
    auto trainer = sae::make_trainer<Model>(sae::TrainConfig{2, 128, 0, true}, sae::Adam<float>());
    trainer.fit(model, data.x, nullptr, sae::Checkpointer(dir / "batch", 1));
    const Model back = sae::load_model<Model>(dir / "batch");
    BOOST_TEST(back.threshold() == model.threshold());
    BOOST_TEST(back.config().tied_init);
    BOOST_TEST(sae::test::same(back.parameters().w_enc, model.parameters().w_enc));
    BOOST_TEST(sae::test::same(back.forward(data.x), model.forward(data.x)));
    BOOST_TEST(sae::checkpoint_architecture(dir / "batch") == "batchtopk");
  }
  {
    using Model = sae::JumpReluAutoencoder<float>;
    sae::JumpReluConfig c;
    c.input_dim = 32, c.num_latents = 64, c.initial_l0 = 3, c.sparsity_coefficient = 0.2, c.seed = 5;
    Model model(c);
    auto trainer = sae::make_trainer<Model>(sae::TrainConfig{2, 128, 0, true}, sae::Adam<float>());
    trainer.fit(model, data.x, nullptr, sae::Checkpointer(dir / "jump", 1));
    const Model back = sae::load_model<Model>(dir / "jump");
    BOOST_TEST(back.data_scale() == model.data_scale());
    BOOST_TEST(back.config().sparsity_coefficient == 0.2);
    BOOST_TEST(sae::test::same(back.parameters().log_threshold, model.parameters().log_threshold));
    BOOST_TEST(sae::test::same(back.forward(data.x), model.forward(data.x)));
    sae::test::require_throws_with<sae::io_error>([&] { sae::load_model<sae::BatchTopKAutoencoder<float>>(dir / "jump"); },
                                                  {"holds a 'jumprelu' SAE, not 'batchtopk'"});
  }
}
