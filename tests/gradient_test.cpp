#define BOOST_TEST_MODULE gradient
#include "test_helpers.hpp"

#include <sae/core/rng.hpp>
#include <sae/model/topk_autoencoder.hpp>

using sae::index_t;
using sae::test::random_matrix;
using Model = sae::TopKAutoencoder<double>;

namespace {
// Central differences of the loss against the analytic gradient, element by element.
template <class Param>
void check_parameter(Model& model, Param& param, const Eigen::MatrixXd& analytic, const sae::Matrix<double>& x,
                     const char* name) {
  typename Model::Gradients unused;
  typename Model::Workspace ws;
  const double h = 1e-6;
  double worst = 0;
  for (index_t i = 0; i < param.size(); ++i) {
    const double saved = param.data()[i];
    param.data()[i] = saved + h;
    const double up = model.loss_and_gradient(x, unused, ws);
    param.data()[i] = saved - h;
    const double down = model.loss_and_gradient(x, unused, ws);
    param.data()[i] = saved;
    const double numeric = (up - down) / (2 * h);
    const double a = analytic.data()[i];
    worst = std::max(worst, std::abs(numeric - a) / std::max(1e-4, std::abs(numeric) + std::abs(a)));
  }
  BOOST_TEST_MESSAGE(name << ": worst relative error " << worst);
  BOOST_TEST(worst < 1e-6, name << " gradient is off: worst relative error " << worst);
}
}  // namespace

BOOST_AUTO_TEST_CASE(central_difference_gradient_check_every_parameter) {
  // F = 10 uses the partial-sort top-k path, F = 40 the bounded-heap path.
  for (index_t f : {10, 40})
  for (bool decoder_bias : {false, true}) {
    for (auto selection : {sae::Selection::value, sae::Selection::magnitude}) {
      BOOST_TEST_CONTEXT("F=" << f << " decoder_bias=" << decoder_bias
                              << " magnitude=" << (selection == sae::Selection::magnitude)) {
        sae::TopKConfig c{6, f, 3, selection, decoder_bias, 5};
        Model model(c);
        if (decoder_bias) model.parameters().b_dec = random_matrix(6, 1, 9).col(0) * 0.3;
        const auto x = random_matrix(7, 6, 11);
        typename Model::Gradients g;
        typename Model::Workspace ws;
        model.loss_and_gradient(x, g, ws);
        // Column-major dense copies, matching each parameter's row-major storage order via transpose.
        auto& p = model.parameters();
        const Eigen::MatrixXd gw_enc = g.w_enc.to_dense().transpose();
        const Eigen::MatrixXd gw_dec = g.w_dec.to_dense().transpose();
        check_parameter(model, p.w_enc, gw_enc, x, "w_enc");
        check_parameter(model, p.w_dec, gw_dec, x, "w_dec");
        check_parameter(model, p.b_enc, Eigen::MatrixXd(g.b_enc), x, "b_enc");
        if (decoder_bias) check_parameter(model, p.b_dec, Eigen::MatrixXd(g.b_dec), x, "b_dec");
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(gradient_rows_are_only_the_selected_latents) {
  Model model(sae::TopKConfig{8, 64, 2});
  const auto x = random_matrix(3, 8, 1);
  typename Model::Gradients g;
  typename Model::Workspace ws;
  model.loss_and_gradient(x, g, ws);
  BOOST_TEST(g.w_enc.rows.size() <= 6u);  // at most B * K latents
  const auto codes = model.encode(x);
  for (auto j : g.w_enc.rows) {
    bool selected = false;
    for (std::size_t e = 0; e < codes.indices.size(); ++e) selected |= codes.indices[e] == j && codes.values[e] > 0;
    BOOST_TEST(selected);
  }
}

BOOST_AUTO_TEST_CASE(sparse_decode_matches_dense_product) {
  sae::TopKConfig c{5, 12, 4};
  c.decoder_bias = true;
  Model model(c);
  model.parameters().b_dec.setConstant(0.25);
  const auto x = random_matrix(6, 5, 2);
  const auto codes = model.encode(x);
  const sae::Matrix<double> dense = codes.to_dense() * model.parameters().w_dec;
  const sae::Matrix<double> expected = dense.rowwise() + model.parameters().b_dec.transpose();
  BOOST_TEST((model.decode(codes) - expected).cwiseAbs().maxCoeff() < 1e-12);
  // And encode itself against the dense definition: ReLU(TopK(W_enc (x - b_dec) + b_enc)).
  const sae::Matrix<double> pre =
      ((x.rowwise() - model.parameters().b_dec.transpose()) * model.parameters().w_enc.transpose()).rowwise() +
      model.parameters().b_enc.transpose();
  for (index_t i = 0; i < x.rows(); ++i)
    for (index_t s = 0; s < c.k; ++s)
      BOOST_TEST(codes.row_values(i)[s] == std::max(0.0, pre(i, codes.row_indices(i)[s])));
}

BOOST_AUTO_TEST_CASE(shape_errors_name_the_caller) {
  Model model(sae::TopKConfig{4, 8, 2});
  sae::test::require_throws_with<sae::invalid_argument>([&] { model.encode(random_matrix(2, 5, 0)); },
                                                        {"encode()", "5 columns", "input_dim=4"});
  sae::test::require_throws_with<sae::invalid_argument>([] { Model(sae::TopKConfig{4, 8, 9}); },
                                                        {"k must be in [1, num_latents=8], got 9"});
}
