#define BOOST_TEST_MODULE gradient
#include "test_helpers.hpp"

#include <sae/core/rng.hpp>
#include <sae/model/topk_autoencoder.hpp>

using sae::index_t;
using sae::test::random_matrix;
using Model = sae::TopKAutoencoder<double>;

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
        sae::test::check_gradients_by_central_differences(model, random_matrix(7, 6, 11), decoder_bias);
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
