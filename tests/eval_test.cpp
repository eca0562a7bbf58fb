// SAEBench's core metrics (eval/core_metrics.hpp) against a naive, independent implementation that
// follows SAEBench's main.py step by step in plain loops (lists of per-token values, per-batch
// lists, their means), against hand-computed values, streamed in batches against one pass, with
// dead latents; and sae-eval end to end (core.json against the library, refusals in one line).
#define BOOST_TEST_MODULE eval
#include "cli_process.hpp"
#include "test_helpers.hpp"

#include <sae/data/open_rows.hpp>
#include <sae/eval/core_metrics.hpp>
#include <sae/io/json.hpp>
#include <sae/io/npy.hpp>
#include <sae/metrics/evaluate.hpp>
#include <sae/model/checkpoint.hpp>
#include <sae/model/interop.hpp>
#include <sae/model/registry.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

using sae::index_t;
using sae::test::require_throws_with;
namespace tt = boost::test_tools;

namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

// |a - b| <= tol * max(1, |a|, |b|), NaN equal to NaN, infinities equal to themselves.
bool close(double a, double b, double tol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::abs(a - b) <= tol * std::max({1.0, std::abs(a), std::abs(b)});
}

void check_close(double got, double want, double tol, const std::string& what) {
  BOOST_TEST(close(got, want, tol), what << ": " << got << " vs naive " << want);
}
void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol, const std::string& what) {
  BOOST_REQUIRE_EQUAL(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!close(got[i], want[i], tol)) {
      BOOST_TEST(false, what << "[" << i << "]: " << got[i] << " vs naive " << want[i]);
      return;
    }
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

// SAEBench's get_sparsity_and_variance_metrics, get_featurewise_weight_based_metrics,
// calculate_max_cosine_sim and calculate_misc_metrics written out in plain loops over dense
// matrices: x [N, D], the dense codes z [N, F], x_hat [N, D]; batches of `batch` rows, prompts of
// `context` rows.
struct Naive {
  sae::eval::SaebenchScalars s;
  sae::eval::TextbookMetrics t;
  sae::eval::LatentMetrics l;
  sae::eval::MiscMetrics misc;
};

Naive naive_core(const Eigen::MatrixXd& x, const Eigen::MatrixXd& z, const Eigen::MatrixXd& xh, index_t batch, index_t context,
                 const Eigen::MatrixXd& w_enc, const Eigen::VectorXd& b_enc, const Eigen::MatrixXd& w_dec) {
  const index_t n_rows = x.rows(), d = x.cols(), f = z.cols();
  std::vector<double> l2_in, l2_out, ratio, rrb, l0, l1, legacy, mse, cossim, mean_sq, mean_act, mean_resid;
  std::vector<double> acts(static_cast<std::size_t>(f), 0.0);
  for (index_t start = 0; start < n_rows; start += batch) {
    const index_t end = std::min(n_rows, start + batch), n = end - start;
    std::vector<double> batch_mean(static_cast<std::size_t>(d), 0.0);
    for (index_t t = start; t < end; ++t)
      for (index_t j = 0; j < d; ++j) batch_mean[static_cast<std::size_t>(j)] += x(t, j) / static_cast<double>(n);
    double xh2 = 0, xdot = 0, sq = 0, resid_all = 0;
    std::vector<double> per_dim(static_cast<std::size_t>(d), 0.0);
    for (index_t t = start; t < end; ++t) {
      double a = 0, b = 0, dot = 0, r = 0, centred = 0;
      for (index_t j = 0; j < d; ++j) {
        a += x(t, j) * x(t, j), b += xh(t, j) * xh(t, j), dot += x(t, j) * xh(t, j);
        r += (x(t, j) - xh(t, j)) * (x(t, j) - xh(t, j));
        const double c = x(t, j) - batch_mean[static_cast<std::size_t>(j)];
        centred += c * c;
        per_dim[static_cast<std::size_t>(j)] += x(t, j) * x(t, j);
      }
      const double in = std::sqrt(a), out = std::sqrt(b);
      l2_in.push_back(in), l2_out.push_back(out), ratio.push_back(out / (std::abs(in) < 1e-4 ? 1 : in));
      double c = 0;
      for (index_t j = 0; j < d; ++j) c += (x(t, j) / in) * (xh(t, j) / out);
      cossim.push_back(c);
      mse.push_back(r / static_cast<double>(n));
      legacy.push_back(1 - r / centred);
      xh2 += b, xdot += dot, sq += a, resid_all += r;
      double count = 0, sum = 0;
      for (index_t j = 0; j < f; ++j) {
        if (z(t, j) != 0) count += 1, sum += z(t, j);
        if (z(t, j) > 0) acts[static_cast<std::size_t>(j)] += 1;
      }
      l0.push_back(count), l1.push_back(sum);
    }
    rrb.push_back((xh2 / static_cast<double>(n)) / (xdot / static_cast<double>(n)));
    mean_sq.push_back(sq / static_cast<double>(n));
    for (index_t j = 0; j < d; ++j) mean_act.push_back(per_dim[static_cast<std::size_t>(j)] / static_cast<double>(n));
    mean_resid.push_back(resid_all / static_cast<double>(n));
  }
  Naive out;
  out.s.l2_norm_in = mean(l2_in), out.s.l2_norm_out = mean(l2_out), out.s.l2_ratio = mean(ratio);
  out.s.relative_reconstruction_bias = mean(rrb), out.s.l0 = mean(l0), out.s.l1 = mean(l1);
  out.s.explained_variance_legacy = mean(legacy), out.s.mse = mean(mse), out.s.cossim = mean(cossim);
  out.s.explained_variance = 1 - mean(mean_resid) / (mean(mean_sq) - mean(mean_act) * mean(mean_act));

  // Prompts: consecutive runs of `context` rows; a latent counts a prompt once if it fires in it.
  std::vector<double> prompts(static_cast<std::size_t>(f), 0.0);
  for (index_t p = 0; p * context < n_rows; ++p)
    for (index_t j = 0; j < f; ++j) {
      bool any = false;
      for (index_t t = p * context; t < std::min(n_rows, (p + 1) * context); ++t) any = any || z(t, j) > 0;
      if (any) prompts[static_cast<std::size_t>(j)] += 1;
    }
  for (index_t j = 0; j < f; ++j) {
    out.l.feature_density.push_back(acts[static_cast<std::size_t>(j)] / static_cast<double>(n_rows));
    out.l.consistent_activation_heuristic.push_back(acts[static_cast<std::size_t>(j)] / prompts[static_cast<std::size_t>(j)]);
  }
  // Weights: SAEBench's W_enc is [D, F], ours [F, D]: latent i is row i of ours.
  const auto norm = [&](const Eigen::MatrixXd& m, index_t i) {
    double s = 0;
    for (index_t c = 0; c < m.cols(); ++c) s += m(i, c) * m(i, c);
    return std::sqrt(s);
  };
  const auto max_cos = [&](const Eigen::MatrixXd& m) {
    std::vector<double> best;
    for (index_t i = 0; i < m.rows(); ++i) {
      double b = -std::numeric_limits<double>::infinity();
      for (index_t j = 0; j < m.rows(); ++j) {
        if (j == i) continue;
        double dot = 0;
        for (index_t c = 0; c < m.cols(); ++c) dot += m(i, c) * m(j, c);
        b = std::max(b, dot / (std::max(norm(m, i), 1e-12) * std::max(norm(m, j), 1e-12)));
      }
      best.push_back(b);
    }
    return best;
  };
  for (index_t i = 0; i < f; ++i) {
    out.l.encoder_bias.push_back(b_enc[i]);
    out.l.encoder_norm.push_back(norm(w_enc, i));
    double dot = 0;
    for (index_t c = 0; c < d; ++c) dot += w_enc(i, c) * w_dec(i, c);
    out.l.encoder_decoder_cosine_sim.push_back(dot / (norm(w_enc, i) * norm(w_dec, i)));
  }
  out.l.max_encoder_cosine_sim = max_cos(w_enc);
  out.l.max_decoder_cosine_sim = max_cos(w_dec);
  out.misc.average_max_encoder_cosine_sim = mean(out.l.max_encoder_cosine_sim);
  out.misc.average_max_decoder_cosine_sim = mean(out.l.max_decoder_cosine_sim);
  double total = 0, s1 = 0, s10 = 0, alive = 0, o1 = 0, o10 = 0;
  for (double v : out.l.feature_density) {
    total += v;
    alive += v > 0, o1 += v > 0.01, o10 += v > 0.1;
    if (v > 0.01) s1 += v;
    if (v > 0.1) s10 += v;
  }
  out.misc.frac_alive = alive / static_cast<double>(f), out.misc.freq_over_1_percent = o1 / static_cast<double>(f);
  out.misc.freq_over_10_percent = o10 / static_cast<double>(f);
  out.misc.normalized_freq_over_1_percent = total > 0 ? s1 / total : 0;
  out.misc.normalized_freq_over_10_percent = total > 0 ? s10 / total : 0;

  // Ours, over all rows at once.
  std::vector<double> col_mean(static_cast<std::size_t>(d), 0.0);
  for (index_t t = 0; t < n_rows; ++t)
    for (index_t j = 0; j < d; ++j) col_mean[static_cast<std::size_t>(j)] += x(t, j) / static_cast<double>(n_rows);
  double sse = 0, sst = 0, pooled_b = 0, pooled_dot = 0, cos_sum = 0;
  std::int64_t undefined = 0;
  for (index_t t = 0; t < n_rows; ++t) {
    for (index_t j = 0; j < d; ++j) {
      sse += (x(t, j) - xh(t, j)) * (x(t, j) - xh(t, j));
      sst += (x(t, j) - col_mean[static_cast<std::size_t>(j)]) * (x(t, j) - col_mean[static_cast<std::size_t>(j)]);
      pooled_b += xh(t, j) * xh(t, j), pooled_dot += x(t, j) * xh(t, j);
    }
    if (std::isnan(cossim[static_cast<std::size_t>(t)])) ++undefined;
    else cos_sum += cossim[static_cast<std::size_t>(t)];
  }
  out.t.explained_variance = 1 - sse / sst;
  out.t.mse = sse / static_cast<double>(n_rows * d);
  out.t.relative_reconstruction_bias = pooled_b / pooled_dot;
  out.t.rows_without_cossim = undefined;
  out.t.cossim = cos_sum / static_cast<double>(n_rows - undefined);
  out.t.alive_latents = static_cast<std::int64_t>(alive);
  out.t.dead_fraction = 1 - alive / static_cast<double>(f);
  return out;
}

// Every metric of `m` against `n`.
void check_against(const sae::eval::CoreMetrics& m, const Naive& n, double tol) {
  const auto& a = m.saebench;
  const auto& b = n.s;
  check_close(a.explained_variance, b.explained_variance, tol, "explained_variance");
  check_close(a.explained_variance_legacy, b.explained_variance_legacy, tol, "explained_variance_legacy");
  check_close(a.mse, b.mse, tol, "mse");
  check_close(a.cossim, b.cossim, tol, "cossim");
  check_close(a.l2_norm_in, b.l2_norm_in, tol, "l2_norm_in");
  check_close(a.l2_norm_out, b.l2_norm_out, tol, "l2_norm_out");
  check_close(a.l2_ratio, b.l2_ratio, tol, "l2_ratio");
  check_close(a.relative_reconstruction_bias, b.relative_reconstruction_bias, tol, "relative_reconstruction_bias");
  check_close(a.l0, b.l0, tol, "l0");
  check_close(a.l1, b.l1, tol, "l1");
  check_close(m.latents.feature_density, n.l.feature_density, tol, "feature_density");
  check_close(m.latents.consistent_activation_heuristic, n.l.consistent_activation_heuristic, tol, "consistent_activation_heuristic");
  check_close(m.latents.encoder_bias, n.l.encoder_bias, tol, "encoder_bias");
  check_close(m.latents.encoder_norm, n.l.encoder_norm, tol, "encoder_norm");
  check_close(m.latents.encoder_decoder_cosine_sim, n.l.encoder_decoder_cosine_sim, tol, "encoder_decoder_cosine_sim");
  check_close(m.latents.max_encoder_cosine_sim, n.l.max_encoder_cosine_sim, tol, "max_encoder_cosine_sim");
  check_close(m.latents.max_decoder_cosine_sim, n.l.max_decoder_cosine_sim, tol, "max_decoder_cosine_sim");
  check_close(m.misc.frac_alive, n.misc.frac_alive, tol, "frac_alive");
  check_close(m.misc.freq_over_1_percent, n.misc.freq_over_1_percent, tol, "freq_over_1_percent");
  check_close(m.misc.freq_over_10_percent, n.misc.freq_over_10_percent, tol, "freq_over_10_percent");
  check_close(m.misc.normalized_freq_over_1_percent, n.misc.normalized_freq_over_1_percent, tol, "normalized_freq_over_1_percent");
  check_close(m.misc.normalized_freq_over_10_percent, n.misc.normalized_freq_over_10_percent, tol, "normalized_freq_over_10_percent");
  check_close(m.misc.average_max_encoder_cosine_sim, n.misc.average_max_encoder_cosine_sim, tol, "average_max_encoder_cosine_sim");
  check_close(m.misc.average_max_decoder_cosine_sim, n.misc.average_max_decoder_cosine_sim, tol, "average_max_decoder_cosine_sim");
  check_close(m.textbook.explained_variance, n.t.explained_variance, tol, "textbook explained_variance");
  check_close(m.textbook.mse, n.t.mse, tol, "textbook mse");
  check_close(m.textbook.relative_reconstruction_bias, n.t.relative_reconstruction_bias, tol, "textbook rrb");
  check_close(m.textbook.cossim, n.t.cossim, tol, "textbook cossim");
  BOOST_TEST(m.textbook.rows_without_cossim == n.t.rows_without_cossim);
  BOOST_TEST(m.textbook.alive_latents == n.t.alive_latents);
  check_close(m.textbook.dead_fraction, n.t.dead_fraction, tol, "dead_fraction");
}

// The naive metrics of `model` on x: its codes made dense, x_hat decoded by a plain loop.
template <class Model>
Naive naive_of(const Model& model, const sae::Matrix<typename Model::scalar_type>& x_in, index_t batch, index_t context) {
  const Eigen::MatrixXd x = x_in.template cast<double>();
  const Eigen::MatrixXd z = model.encode(x_in).to_dense().template cast<double>();
  const auto& p = model.parameters();
  const Eigen::MatrixXd w_enc = p.w_enc.template cast<double>(), w_dec = p.w_dec.template cast<double>();
  Eigen::MatrixXd xh = Eigen::MatrixXd::Zero(x.rows(), x.cols());
  for (index_t t = 0; t < x.rows(); ++t)
    for (index_t c = 0; c < x.cols(); ++c) {
      double v = p.b_dec.size() ? static_cast<double>(p.b_dec[c]) : 0.0;
      for (index_t j = 0; j < z.cols(); ++j) v += z(t, j) * w_dec(j, c);
      xh(t, c) = v;
    }
  return naive_core(x, z, xh, batch, context, w_enc, p.b_enc.template cast<double>(), w_dec);
}

// A TopK model with a decoder bias, and rows with a mean far from zero (where SAEBench's
// explained_variance and the textbook one differ most).
template <class Scalar>
sae::TopKAutoencoder<Scalar> small_topk(index_t d, index_t f, index_t k, std::uint64_t seed) {
  sae::TopKConfig c{d, f, k, sae::Selection::value, /*decoder_bias=*/true, seed};
  sae::TopKAutoencoder<Scalar> model(c);
  auto& p = model.parameters();
  for (index_t j = 0; j < d; ++j) p.b_dec[j] = static_cast<Scalar>(0.1 * (j % 3));
  return model;
}

template <class Scalar>
sae::Matrix<Scalar> shifted_rows(index_t n, index_t d, std::uint64_t seed) {
  sae::Matrix<Scalar> x = sae::test::random_matrix<Scalar>(n, d, seed);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < d; ++j) x(i, j) += static_cast<Scalar>(2.0 + 0.5 * j);
  return x;
}

}  // namespace

BOOST_AUTO_TEST_CASE(hand_computed_batch) {
  // x = [[1, 0], [0, 2]], x_hat = [[1, 0], [0, 1]]; latent 0 fires 1 on row 0, latent 1 fires 1 on row 1.
  sae::Matrix<double> x(2, 2), xh(2, 2);
  x << 1, 0, 0, 2;
  xh << 1, 0, 0, 1;
  sae::SparseCodes<double> codes;
  codes.resize(2, 2, 3);
  codes.indices = {0, 2, 1, 2};
  codes.values = {1.0, 0.0, 1.0, 0.0};  // slot 2 selected but 0: not active
  sae::eval::CoreAccumulator acc(2, 3, /*context_size=*/1);
  acc.add_batch(x, xh, codes);
  const auto s = acc.saebench();
  BOOST_TEST(s.l2_norm_in == 1.5, tt::tolerance(1e-15));
  BOOST_TEST(s.l2_norm_out == 1.0, tt::tolerance(1e-15));
  BOOST_TEST(s.l2_ratio == 0.75, tt::tolerance(1e-15));                          // (1/1 + 1/2) / 2
  BOOST_TEST(s.relative_reconstruction_bias == 2.0 / 3.0, tt::tolerance(1e-15));  // mean ||x_hat||^2 1 / mean x.x_hat 1.5
  BOOST_TEST(s.mse == 0.25, tt::tolerance(1e-15));                                // (0/2 + 1/2) / 2
  BOOST_TEST(s.explained_variance_legacy == 0.6, tt::tolerance(1e-15));           // batch mean (0.5, 1): (1 + (1 - 1/1.25)) / 2
  // A = mean ||x||^2 = 2.5, mean_act_per_dimension = A / 2 = 1.25, residual 0.5: 1 - 0.5 / (2.5 - 1.5625).
  BOOST_TEST(s.explained_variance == 1 - 0.5 / 0.9375, tt::tolerance(1e-15));
  BOOST_TEST(s.cossim == 1.0, tt::tolerance(1e-15));
  BOOST_TEST(s.l0 == 1.0);
  BOOST_TEST(s.l1 == 1.0);
  const auto t = acc.textbook();
  BOOST_TEST(t.explained_variance == 0.6, tt::tolerance(1e-15));  // SSE 1 / SST 2.5
  BOOST_TEST(t.mse == 0.25, tt::tolerance(1e-15));
  BOOST_TEST(t.relative_reconstruction_bias == 2.0 / 3.0, tt::tolerance(1e-15));
  BOOST_TEST(t.alive_latents == 2);
  BOOST_TEST(t.dead_fraction == 1.0 / 3.0, tt::tolerance(1e-15));
  const auto density = acc.feature_density();
  BOOST_TEST(density == (std::vector<double>{0.5, 0.5, 0.0}), tt::per_element());
  const auto heuristic = acc.consistent_activation_heuristic();
  BOOST_TEST(heuristic[0] == 1.0);
  BOOST_TEST(heuristic[1] == 1.0);
  BOOST_TEST(std::isnan(heuristic[2]));
}

BOOST_AUTO_TEST_CASE(hand_computed_prompts_and_weights) {
  // Four rows, prompts of two: latent 0 fires on rows 0, 1, 2 (both prompts), latent 1 on row 3.
  sae::Matrix<double> x = sae::Matrix<double>::Ones(4, 2);
  sae::SparseCodes<double> codes;
  codes.resize(4, 1, 2);
  codes.indices = {0, 0, 0, 1};
  codes.values = {2.0, 1.0, 0.5, 3.0};
  sae::eval::CoreAccumulator acc(2, 2, 2);
  acc.add_batch<double>(x.topRows(3), x.topRows(3), [&] {  // the rows in two batches: 3 + 1
    sae::SparseCodes<double> c;
    c.resize(3, 1, 2);
    c.indices = {0, 0, 0}, c.values = {2.0, 1.0, 0.5};
    return c;
  }());
  sae::SparseCodes<double> last;
  last.resize(1, 1, 2);
  last.indices = {1}, last.values = {3.0};
  acc.add_batch<double>(x.bottomRows(1), x.bottomRows(1), last);
  BOOST_TEST(acc.feature_density() == (std::vector<double>{0.75, 0.25}), tt::per_element());
  BOOST_TEST(acc.consistent_activation_heuristic() == (std::vector<double>{1.5, 1.0}), tt::per_element());
  BOOST_TEST(acc.saebench().l1 == 6.5 / 4, tt::tolerance(1e-15));
  BOOST_TEST(acc.batches() == 2);
  BOOST_TEST(acc.last_batch_rows() == 1);

  // Weights: encoder rows (1, 0), (1, 1), (0, -1); decoder rows (1, 0), (0, 1), (0, 1).
  sae::Matrix<double> w_enc(3, 2), w_dec(3, 2);
  w_enc << 1, 0, 1, 1, 0, -1;
  w_dec << 1, 0, 0, 1, 0, 1;
  sae::Vector<double> b_enc(3);
  b_enc << 0.1, 0.2, 0.3;
  sae::eval::LatentMetrics l;
  l.feature_density = {0.5, 0.005, 0.2, 0.0};  // misc metrics from these (four latents: only the densities count)
  sae::eval::weight_metrics(w_enc, b_enc, w_dec, l);
  const double r = 1 / std::sqrt(2.0);
  BOOST_TEST(l.encoder_norm == (std::vector<double>{1, std::sqrt(2.0), 1}), tt::tolerance(1e-15) << tt::per_element());
  BOOST_TEST(l.encoder_bias == (std::vector<double>{0.1, 0.2, 0.3}), tt::per_element());
  BOOST_TEST(l.encoder_decoder_cosine_sim == (std::vector<double>{1, r, -1}), tt::tolerance(1e-15) << tt::per_element());
  BOOST_TEST(l.max_encoder_cosine_sim == (std::vector<double>{r, r, 0}), tt::tolerance(1e-15) << tt::per_element());
  BOOST_TEST(l.max_decoder_cosine_sim == (std::vector<double>{0, 1, 1}), tt::tolerance(1e-15) << tt::per_element());
  const auto misc = sae::eval::misc_metrics(l);
  BOOST_TEST(misc.frac_alive == 0.75);
  BOOST_TEST(misc.freq_over_1_percent == 0.5);
  BOOST_TEST(misc.freq_over_10_percent == 0.5);
  BOOST_TEST(misc.normalized_freq_over_1_percent == 0.7 / 0.705, tt::tolerance(1e-14));
  BOOST_TEST(misc.normalized_freq_over_10_percent == 0.7 / 0.705, tt::tolerance(1e-14));
  BOOST_TEST(misc.average_max_encoder_cosine_sim == 2 * r / 3, tt::tolerance(1e-15));
  BOOST_TEST(misc.average_max_decoder_cosine_sim == 2.0 / 3, tt::tolerance(1e-15));
  // A zero encoder row: cosine with its decoder row undefined (SAEBench divides by its norm), and
  // cosine 0 with every other row (torch's normalize keeps it zero).
  w_enc.row(2).setZero();
  sae::eval::weight_metrics(w_enc, b_enc, w_dec, l);
  BOOST_TEST(std::isnan(l.encoder_decoder_cosine_sim[2]));
  BOOST_TEST(l.max_encoder_cosine_sim[2] == 0.0);
  BOOST_TEST(l.max_encoder_cosine_sim[0] == r, tt::tolerance(1e-15));
}

// Every metric against the naive implementation, for a double and a float model, in SAEBench
// batches that do not divide the rows (the last batch shorter) and prompts that do not divide a batch.
BOOST_AUTO_TEST_CASE(every_metric_against_the_naive_implementation) {
  for (const auto& [prompts, context] : {std::pair<index_t, index_t>{3, 5}, {2, 7}, {1, 1}, {1000, 4}}) {
    BOOST_TEST_CONTEXT("batch " << prompts << " x " << context) {
      const auto model = small_topk<double>(8, 24, 3, 11);
      const sae::Matrix<double> x = shifted_rows<double>(100, 8, 5);
      const sae::data::MatrixRows<double> rows(x);
      const auto m = sae::eval::core_metrics(model, rows, {prompts, context});
      check_against(m, naive_of(model, x, prompts * context, context), 1e-12);
      const index_t batch = prompts * context;
      BOOST_TEST(m.batches == (100 + batch - 1) / batch);
      BOOST_TEST(m.rows == 100);
    }
  }
  const auto model = small_topk<float>(16, 40, 4, 3);
  const sae::Matrix<float> x = shifted_rows<float>(300, 16, 9);
  const auto m = sae::eval::core_metrics(model, sae::data::MatrixRows<float>(x), {4, 16});
  check_against(m, naive_of(model, x, 64, 16), 2e-5);
}

// The textbook metrics and every per-row SAEBench metric do not depend on the batch; streamed in
// small batches they equal one pass over all rows, and one batch of everything equals the naive
// formulas over the whole set. A file read through its memory map gives what the matrix gives.
BOOST_AUTO_TEST_CASE(streaming_in_batches_equals_one_pass) {
  const auto model = small_topk<double>(6, 20, 2, 4);
  const sae::Matrix<double> x = shifted_rows<double>(77, 6, 13);
  const sae::data::MatrixRows<double> rows(x);
  const auto one = sae::eval::core_metrics(model, rows, {1, 77});
  BOOST_TEST(one.batches == 1);
  check_against(one, naive_of(model, x, 77, 77), 1e-12);
  const auto streamed = sae::eval::core_metrics(model, rows, {2, 5});  // batches of 10
  BOOST_TEST(streamed.batches == 8);
  check_close(streamed.textbook.explained_variance, one.textbook.explained_variance, 1e-12, "textbook EV");
  check_close(streamed.textbook.mse, one.textbook.mse, 1e-12, "textbook mse");
  check_close(streamed.textbook.relative_reconstruction_bias, one.textbook.relative_reconstruction_bias, 1e-12, "textbook rrb");
  for (const auto& [a, b, name] : {std::tuple{streamed.saebench.l2_norm_in, one.saebench.l2_norm_in, "l2_norm_in"},
                                   {streamed.saebench.l2_norm_out, one.saebench.l2_norm_out, "l2_norm_out"},
                                   {streamed.saebench.l2_ratio, one.saebench.l2_ratio, "l2_ratio"},
                                   {streamed.saebench.cossim, one.saebench.cossim, "cossim"},
                                   {streamed.saebench.l0, one.saebench.l0, "l0"},
                                   {streamed.saebench.l1, one.saebench.l1, "l1"}})
    check_close(a, b, 1e-12, name);
  check_close(streamed.latents.feature_density, one.latents.feature_density, 0, "feature_density");
  // The batch-level ones do depend on it (SAEBench's formulas): the per-batch mse divisor.
  BOOST_TEST(!close(streamed.saebench.mse, one.saebench.mse, 1e-3));
  // Against the library's own metrics (metrics::evaluate, one pass).
  const auto e = sae::metrics::evaluate(model, x);
  check_close(streamed.textbook.explained_variance, e.explained_variance, 1e-12, "evaluate() EV");
  check_close(streamed.textbook.mse, e.mse, 1e-12, "evaluate() mse");
  check_close(streamed.saebench.l0, e.l0, 1e-12, "evaluate() l0");
  check_close(streamed.latents.feature_density, e.activation_frequency, 1e-15, "evaluate() frequency");

  // The same rows as a float32 .npy file, streamed through its memory map.
  sae::test::ScratchDir dir("eval-stream");
  const sae::Matrix<float> xf = x.cast<float>();
  sae::io::save_npy(dir / "x.npy", xf);
  const auto model_f = small_topk<float>(6, 20, 2, 4);
  const auto mapped = sae::data::open_rows<float>((dir / "x.npy").string());
  const auto from_file = sae::eval::core_metrics(model_f, *mapped, {2, 5});
  const auto from_memory = sae::eval::core_metrics(model_f, sae::data::MatrixRows<float>(xf), {2, 5});
  BOOST_TEST(from_file.saebench.explained_variance == from_memory.saebench.explained_variance);
  BOOST_TEST(from_file.saebench.mse == from_memory.saebench.mse);
  check_close(from_file.latents.consistent_activation_heuristic, from_memory.latents.consistent_activation_heuristic, 0,
              "heuristic from the file");
}

// Latents that never fire: density 0, heuristic undefined (SAEBench's 0/0), counted in frac_alive.
BOOST_AUTO_TEST_CASE(dead_latents_are_counted) {
  auto model = small_topk<double>(8, 30, 3, 21);
  auto& p = model.parameters();
  for (index_t j = 0; j < 7; ++j) p.w_enc.row(j).setZero(), p.b_enc[j] = -1e3;  // never above any other latent, never > 0
  const sae::Matrix<double> x = shifted_rows<double>(120, 8, 2);
  const auto m = sae::eval::core_metrics(model, sae::data::MatrixRows<double>(x), {2, 8});
  check_against(m, naive_of(model, x, 16, 8), 1e-12);
  for (index_t j = 0; j < 7; ++j) {
    BOOST_TEST(m.latents.feature_density[static_cast<std::size_t>(j)] == 0.0);
    BOOST_TEST(std::isnan(m.latents.consistent_activation_heuristic[static_cast<std::size_t>(j)]));
    BOOST_TEST(std::isnan(m.latents.encoder_decoder_cosine_sim[static_cast<std::size_t>(j)]));  // zero encoder column
  }
  index_t alive = 0;
  for (double v : m.latents.feature_density) alive += v > 0;
  BOOST_TEST(alive <= 23);
  BOOST_TEST(m.textbook.alive_latents == alive);
  BOOST_TEST(m.misc.frac_alive == static_cast<double>(alive) / 30, tt::tolerance(1e-15));
  BOOST_TEST(m.textbook.dead_fraction == 1 - static_cast<double>(alive) / 30, tt::tolerance(1e-15));
  // All dead: every density 0, the normalized frequencies 0 (SAEBench's "total_sum > 0" branch).
  for (index_t j = 0; j < 30; ++j) p.w_enc.row(j).setZero(), p.b_enc[j] = -1;
  const auto none = sae::eval::core_metrics(model, sae::data::MatrixRows<double>(x), {2, 8});
  BOOST_TEST(none.misc.frac_alive == 0.0);
  BOOST_TEST(none.misc.normalized_freq_over_1_percent == 0.0);
  BOOST_TEST(none.saebench.l0 == 0.0);
  check_against(none, naive_of(model, x, 16, 8), 1e-12);
}

// Every registered architecture goes through core_metrics (its own encode/decode), against the naive loops.
BOOST_AUTO_TEST_CASE(every_architecture) {
  const sae::Matrix<double> x = shifted_rows<double>(40, 6, 8);
  sae::for_each_architecture<double>([&](auto tag) {
    using Model = typename decltype(tag)::type;
    BOOST_TEST_CONTEXT(Model::architecture) {
      typename Model::Config c{};
      sae::io::assign_shared_fields(sae::TopKConfig{6, 16, 3, sae::Selection::value, true, 5}, c);
      Model model(c);
      const auto m = sae::eval::core_metrics(model, sae::data::MatrixRows<double>(x), {3, 4});
      check_against(m, naive_of(model, x, 12, 4), 1e-12);
    }
  });
}

BOOST_AUTO_TEST_CASE(bad_input_is_refused) {
  const auto model = small_topk<double>(8, 24, 3, 1);
  const sae::Matrix<double> narrow = sae::test::random_matrix(10, 7, 1);
  require_throws_with<sae::invalid_argument>(
      [&] { sae::eval::core_metrics(model, sae::data::MatrixRows<double>(narrow)); },
      {"core_metrics()", "rows of 7 values, the SAE takes 8"});
  const sae::Matrix<double> empty(0, 8);
  require_throws_with<sae::invalid_argument>([&] { sae::eval::core_metrics(model, sae::data::MatrixRows<double>(empty)); },
                                             {"no rows to score"});
  const sae::Matrix<double> x = sae::test::random_matrix(10, 8, 1);
  require_throws_with<sae::invalid_argument>([&] { sae::eval::core_metrics(model, sae::data::MatrixRows<double>(x), {0, 4}); },
                                             {"batch_size_prompts and context_size must be positive"});
  sae::eval::CoreAccumulator acc(8, 24, 4);
  require_throws_with<sae::invalid_argument>([&] { acc.saebench(); }, {"no rows were added"});
  require_throws_with<sae::invalid_argument>([&] { acc.add_batch(x, narrow, model.encode(x)); }, {"x_hat [10, 7]"});
  require_throws_with<sae::invalid_argument>(
      [&] { acc.add_batch<double>(x, x, model.encode(x.topRows(5))); }, {"codes are 5 rows of 24 latents, expected 10"});
}

// sae-eval end to end: core.json in SAEBench's schema with the library's numbers, from our
// checkpoint and from its SAELens export alike; refusals in one line.
BOOST_AUTO_TEST_CASE(sae_eval_program) {
  namespace fs = std::filesystem;
  sae::test::ScratchDir dir("eval-cli");
  const auto model = small_topk<float>(16, 48, 4, 7);
  sae::save_checkpoint(dir / "ckpt", model);
  sae::export_saelens(dir / "saelens", model);
  const sae::Matrix<float> x = shifted_rows<float>(200, 16, 3);
  sae::io::save_npy(dir / "x.npy", x);
  const auto expected = sae::eval::core_metrics(model, sae::data::MatrixRows<float>(x), {2, 32});
  for (const std::string sae_dir : {"ckpt", "saelens"}) {
    BOOST_TEST_CONTEXT(sae_dir) {
      const fs::path out = dir / ("out-" + sae_dir);
      const auto e = sae::test::cli::run("sae-eval", {"--sae", (dir / sae_dir).string(), "--data", (dir / "x.npy").string(),
                                                      "--batch-size-prompts", "2", "--context-size", "32", "--out", out.string()},
                                         dir / ("log-" + sae_dir));
      BOOST_TEST_REQUIRE(e.code == 0, e.err);
      BOOST_TEST(e.out.find("not computed (need the language model)") != std::string::npos);
      const auto j = sae::io::read_json_file((out / "core.json").string());
      BOOST_TEST(j.at("eval_type_id").as_string() == "core");
      BOOST_TEST(j.at("eval_config").at("batch_size_prompts").as_int() == 2);
      BOOST_TEST(j.at("eval_config").at("n_eval_sparsity_variance_batches").as_int() == 4);  // 200 rows in batches of 64
      BOOST_TEST(!j.at("eval_config").at("compute_kl").as_bool());
      BOOST_TEST(j.at("eval_id").as_string().size() == 36u);
      const auto& metrics = j.at("eval_result_metrics");
      BOOST_TEST(!metrics.find("model_behavior_preservation"));
      BOOST_TEST(metrics.at("reconstruction_quality").at("explained_variance").as_number() == expected.saebench.explained_variance,
                 tt::tolerance(1e-12));
      BOOST_TEST(metrics.at("reconstruction_quality").at("mse").as_number() == expected.saebench.mse, tt::tolerance(1e-12));
      BOOST_TEST(metrics.at("shrinkage").at("relative_reconstruction_bias").as_number() ==
                     expected.saebench.relative_reconstruction_bias, tt::tolerance(1e-12));
      BOOST_TEST(metrics.at("sparsity").at("l0").as_number() == expected.saebench.l0, tt::tolerance(1e-12));
      BOOST_TEST(metrics.at("token_stats").at("total_tokens_eval_sparsity_variance").as_int() == 200);
      BOOST_TEST(metrics.at("misc_metrics").at("frac_alive").as_number() == expected.misc.frac_alive, tt::tolerance(1e-12));
      const auto& details = j.at("eval_result_details").as_array();
      BOOST_TEST_REQUIRE(details.size() == 48u);
      for (std::size_t i = 0; i < details.size(); ++i) {
        const double h = expected.latents.consistent_activation_heuristic[i];
        BOOST_TEST(details[i].at("index").as_int() == static_cast<long long>(i));
        BOOST_TEST(details[i].at("consistent_activation_heuristic").as_number() == (std::isnan(h) ? -1.0 : h), tt::tolerance(1e-12));
        BOOST_TEST(details[i].at("max_decoder_cosine_sim").as_number() == expected.latents.max_decoder_cosine_sim[i],
                   tt::tolerance(1e-12));
      }
      const auto& not_computed = j.at("eval_result_unstructured").at("not_computed");
      BOOST_TEST(not_computed.at("model_performance_preservation").as_array().size() == 4u);
      BOOST_TEST(fs::exists(out / "report.md"));
      BOOST_TEST(sae::test::read_file(out / "report.md").find("## Not computed") != std::string::npos);
    }
  }
  // A SAELens folder whose b_dec is not applied to the input: its own b_enc is reported, as SAEBench
  // does (the imported model folds W_enc b_dec into its bias).
  fs::copy(dir / "saelens", dir / "saelens-off");
  std::string cfg = sae::test::read_file(dir / "saelens-off" / "cfg.json");
  const std::string on = "\"apply_b_dec_to_input\": true";
  BOOST_REQUIRE(cfg.find(on) != std::string::npos);
  cfg.replace(cfg.find(on), on.size(), "\"apply_b_dec_to_input\": false");
  std::ofstream(dir / "saelens-off" / "cfg.json") << cfg;
  const auto off = sae::test::cli::run("sae-eval", {"--sae", (dir / "saelens-off").string(), "--data", (dir / "x.npy").string(),
                                                    "--out", (dir / "out-off").string()},
                                       dir / "log-off");
  BOOST_TEST_REQUIRE(off.code == 0, off.err);
  const auto off_details = sae::io::read_json_file((dir / "out-off" / "core.json").string()).at("eval_result_details").as_array();
  const auto folded = std::get<sae::TopKAutoencoder<float>>(sae::import_any<float>(dir / "saelens-off"));
  BOOST_TEST(!close(folded.parameters().b_enc[0], model.parameters().b_enc[0], 1e-3));  // the model's bias differs ...
  for (index_t i = 0; i < 48; ++i)  // ... but the folder's is reported
    BOOST_TEST(off_details[static_cast<std::size_t>(i)].at("encoder_bias").as_number() == model.parameters().b_enc[i]);
  BOOST_TEST(sae::test::read_file(dir / "out-off" / "report.md").find("is the folder's `b_enc`") != std::string::npos);

  // Rows of another width: one line naming both widths, exit 2, nothing written.
  sae::io::save_npy(dir / "narrow.npy", sae::Matrix<float>(sae::test::random_matrix<float>(10, 12, 1)));
  const auto narrow = sae::test::cli::run("sae-eval", {"--sae", (dir / "ckpt").string(), "--data", (dir / "narrow.npy").string(),
                                                       "--out", (dir / "out-narrow").string()},
                                          dir / "log-narrow");
  BOOST_TEST(narrow.code == 2);
  BOOST_TEST(narrow.err.find("has rows of 12 values, the SAE takes 16") != std::string::npos, narrow.err);
  BOOST_TEST(std::count(narrow.err.begin(), narrow.err.end(), '\n') == 1);
  BOOST_TEST(!fs::exists(dir / "out-narrow"));
  const auto no_sae = sae::test::cli::run("sae-eval", {"--data", (dir / "x.npy").string()}, dir / "log-no-sae");
  BOOST_TEST(no_sae.code == 2);
  BOOST_TEST(no_sae.err.find("--sae is required") != std::string::npos, no_sae.err);
  const auto inside = sae::test::cli::run("sae-eval", {"--sae", (dir / "ckpt").string(), "--data", (dir / "x.npy").string(),
                                                       "--out", (dir / "ckpt" / "eval").string()},
                                          dir / "log-inside");
  BOOST_TEST(inside.code == 2);
  BOOST_TEST(inside.err.find("is inside the input --sae") != std::string::npos, inside.err);
  const auto missing = sae::test::cli::run("sae-eval", {"--sae", (dir / "nowhere").string(), "--data", (dir / "x.npy").string(),
                                                        "--out", (dir / "out-missing").string()},
                                           dir / "log-missing");
  BOOST_TEST(missing.code == 1);
  BOOST_TEST(missing.err.find("no such folder") != std::string::npos, missing.err);
}
