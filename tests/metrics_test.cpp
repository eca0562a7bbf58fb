#define BOOST_TEST_MODULE metrics
#include "test_helpers.hpp"

#include <sae/core/rng.hpp>
#include <sae/metrics/evaluate.hpp>
#include <sae/model/topk_autoencoder.hpp>

using sae::index_t;

BOOST_AUTO_TEST_CASE(reconstruction_metrics_hand_values) {
  sae::Matrix<double> x(2, 2), x_hat(2, 2);
  x << 1, 2, 3, 4;
  x_hat << 1, 2, 3, 3;
  // SSE = 1; per-dimension mean (2, 3) gives SST = 4.
  BOOST_TEST(sae::metrics::explained_variance(x, x_hat) == 0.75, boost::test_tools::tolerance(1e-15));
  // Reports: var(0,0,0,1) = 0.25 and var(1,2,3,4) = 5/3 (both unbiased) -> 1 - 0.15.
  BOOST_TEST(sae::metrics::explained_variance_reports(x, x_hat) == 0.85, boost::test_tools::tolerance(1e-15));
  BOOST_TEST(sae::metrics::mse(x, x_hat) == 0.25);
  BOOST_CHECK_THROW(sae::metrics::mse(x, sae::Matrix<double>(3, 2)), sae::invalid_argument);
  // No rows at all: said as such, not as a shape mismatch.
  sae::test::require_throws_with<sae::invalid_argument>(
      [] { sae::metrics::explained_variance(sae::Matrix<double>(0, 4), sae::Matrix<double>(0, 4)); }, {"no data to score", "[0, 4]"});
}

BOOST_AUTO_TEST_CASE(explained_variance_against_naive_loops) {
  sae::Rng rng(4);
  sae::Matrix<float> x(50, 7), x_hat(50, 7);
  for (index_t i = 0; i < x.size(); ++i) {
    x.data()[i] = static_cast<float>(rng.normal() + 3);
    x_hat.data()[i] = x.data()[i] + static_cast<float>(0.3 * rng.normal());
  }
  double mean[7] = {}, all_mean = 0, r_mean = 0;
  for (int i = 0; i < 50; ++i)
    for (int j = 0; j < 7; ++j) {
      mean[j] += x(i, j) / 50.0;
      all_mean += x(i, j) / 350.0;
      r_mean += (double(x(i, j)) - x_hat(i, j)) / 350.0;
    }
  double sse = 0, sst = 0, var_r = 0, var_x = 0;
  for (int i = 0; i < 50; ++i)
    for (int j = 0; j < 7; ++j) {
      const double r = double(x(i, j)) - x_hat(i, j);
      sse += r * r;
      sst += (x(i, j) - mean[j]) * (x(i, j) - mean[j]);
      var_r += (r - r_mean) * (r - r_mean);
      var_x += (x(i, j) - all_mean) * (x(i, j) - all_mean);
    }
  BOOST_TEST(sae::metrics::explained_variance(x, x_hat) == 1 - sse / sst, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(sae::metrics::explained_variance_reports(x, x_hat) == 1 - var_r / var_x, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(sae::metrics::mse(x, x_hat) == sse / 350, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(sparsity_metrics_hand_values) {
  sae::SparseCodes<float> codes;
  codes.resize(3, 2, 5);
  codes.indices = {0, 2, 2, 4, 0, 1};
  codes.values = {1.5f, 0.5f, 3.0f, 0.0f, 2.0f, 1.0f};  // (1, 4) was selected but ReLU'd to 0
  BOOST_TEST(sae::metrics::l0(codes) == 5.0 / 3.0, boost::test_tools::tolerance(1e-15));
  const auto freq = sae::metrics::activation_frequency(codes);
  const std::vector<double> expected = {2.0 / 3, 1.0 / 3, 2.0 / 3, 0, 0};
  for (std::size_t j = 0; j < expected.size(); ++j) BOOST_TEST(freq[j] == expected[j], boost::test_tools::tolerance(1e-15));
  BOOST_TEST(sae::metrics::alive_latents(freq) == 3);
  BOOST_TEST(sae::metrics::dead_fraction(freq) == 0.4, boost::test_tools::tolerance(1e-15));
  BOOST_TEST(sae::metrics::mean_active_activation(codes) == 8.0 / 5.0, boost::test_tools::tolerance(1e-7));
  BOOST_TEST(sae::metrics::max_activation(codes) == 3.0);
  // Report 000: 81.1% EV over 382 alive latents = 0.212% per latent.
  BOOST_TEST(100 * sae::metrics::ev_per_active_latent(0.811, 382) == 0.2123, boost::test_tools::tolerance(1e-3));
}

BOOST_AUTO_TEST_CASE(active_overlap_hand_values) {
  sae::SparseCodes<float> a, b;
  a.resize(2, 2, 5);
  b.resize(2, 2, 5);
  a.indices = {0, 2, 3, 4};
  a.values = {1.0f, 2.0f, 1.0f, 0.0f};  // 3 active: (0,0) (0,2) (1,3)
  b.indices = {2, 1, 3, 0};
  b.values = {5.0f, 1.0f, 0.0f, 1.0f};  // shares (0,2); (1,3) is selected in b but inactive there
  BOOST_TEST(sae::metrics::active_overlap(a, b) == 1.0 / 3.0, boost::test_tools::tolerance(1e-15));
  BOOST_TEST(sae::metrics::active_overlap(b, a) == 1.0 / 3.0, boost::test_tools::tolerance(1e-15));  // (0,2) of (0,2) (0,1) (1,0)
  BOOST_TEST(sae::metrics::active_overlap(a, a) == 1.0);
  b.resize(3, 2, 5);
  BOOST_CHECK_THROW(sae::metrics::active_overlap(a, b), sae::invalid_argument);
}

BOOST_AUTO_TEST_CASE(evaluate_agrees_with_the_pure_functions) {
  sae::TopKAutoencoder<double> model(sae::TopKConfig{6, 16, 3});
  sae::Rng rng(1);
  sae::Matrix<double> x(40, 6);
  for (index_t i = 0; i < x.size(); ++i) x.data()[i] = rng.normal();
  const auto e = sae::metrics::evaluate(model, x);
  const auto x_hat = model.forward(x);
  BOOST_TEST(e.explained_variance == sae::metrics::explained_variance(x, x_hat));
  BOOST_TEST(e.mse == sae::metrics::mse(x, x_hat));
  BOOST_TEST(e.alive_latents + static_cast<index_t>(e.dead_fraction * 16 + 0.5) == 16);
  BOOST_TEST(e.l0 <= 3.0);
  const auto j = sae::metrics::to_json(e);
  BOOST_TEST(j.at("alive_latents").as_int() == e.alive_latents);
}
