// SAEBench's core metrics (eval/core_metrics.hpp) against a naive, independent implementation that
// follows SAEBench's main.py step by step in plain loops (lists of per-token values, per-batch
// lists, their means), against hand-computed values, streamed in batches against one pass, with
// dead latents; and sae-eval end to end (core.json against the library, refusals in one line).
// SAEBench's MDL eval (eval/mdl.hpp) likewise: against its mdl/main.py in plain loops, by hand, the
// binning against torch's, edge cases, and mdl.json from sae-eval.
#define BOOST_TEST_MODULE eval
#include "cli_process.hpp"
#include "test_helpers.hpp"

#include <sae/data/open_rows.hpp>
#include <sae/eval/core_metrics.hpp>
#include <sae/eval/mdl.hpp>
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

// f(model) for each registered architecture, in double, with 6 inputs, 16 latents and K 3 (the
// TopK fields every config shares).
template <class F>
void for_each_small_model(F&& f) {
  sae::for_each_architecture<double>([&](auto tag) {
    using Model = typename decltype(tag)::type;
    BOOST_TEST_CONTEXT(Model::architecture) {
      typename Model::Config c{};
      sae::io::assign_shared_fields(sae::TopKConfig{6, 16, 3, sae::Selection::value, true, 5}, c);
      f(Model(c));
    }
  });
}

// Every registered architecture goes through core_metrics (its own encode/decode), against the naive loops.
BOOST_AUTO_TEST_CASE(every_architecture) {
  const sae::Matrix<double> x = shifted_rows<double>(40, 6, 8);
  for_each_small_model([&](const auto& model) {
    const auto m = sae::eval::core_metrics(model, sae::data::MatrixRows<double>(x), {3, 4});
    check_against(m, naive_of(model, x, 12, 4), 1e-12);
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

// ---------------------------------------------------------------------------------------------
// SAEBench's MDL eval (eval/mdl.hpp)

namespace {

// SAEBench's mdl/main.py written out in plain loops over the dense codes z [N, F] (the model's own
// encode made dense): get_min_max_activations (max from 100), build_bins (linspace(0, max, nb + 1)
// as torch writes it, without a fused multiply-add), calculate_dl (histogram with left-closed bins,
// the last closed, zeros included; H(p) + p H(hist)), TopK(k) + quantize_features_to_bin_midpoints
// (bucketize: the first edge >= v, clamped to [1, nb], minus 1) + decode + sqrt(MSE) / d_in.
template <class Model>
std::vector<sae::eval::MdlResult> naive_mdl(const Model& model, const sae::Matrix<typename Model::scalar_type>& x_in,
                                            const sae::eval::MdlEvalConfig& config) {
  using Scalar = typename Model::scalar_type;
  const sae::Matrix<Scalar> z = model.encode(x_in).to_dense();
  const index_t n = z.rows(), f = z.cols(), d = x_in.cols();
  const auto& p = model.parameters();
  std::vector<Scalar> max_act(static_cast<std::size_t>(f), Scalar(100));
  for (index_t j = 0; j < f; ++j)
    for (index_t i = 0; i < n; ++i) max_act[static_cast<std::size_t>(j)] = std::max(max_act[static_cast<std::size_t>(j)], z(i, j));
  std::vector<sae::eval::MdlResult> out;
  for (index_t nb : config.num_bins_values) {
    std::vector<std::vector<Scalar>> edges(static_cast<std::size_t>(f));
    for (index_t j = 0; j < f; ++j) {
      const Scalar mx = max_act[static_cast<std::size_t>(j)], step = mx / static_cast<Scalar>(nb);
      for (index_t i = 0; i <= nb; ++i)
        edges[static_cast<std::size_t>(j)].push_back(i < (nb + 1) / 2 ? step * static_cast<Scalar>(i)
                                                                      : mx - step * static_cast<Scalar>(nb - i));
    }
    double dl = 0;
    for (index_t j = 0; j < f; ++j) {
      const auto& e = edges[static_cast<std::size_t>(j)];
      double fired = 0;
      for (index_t i = 0; i < n; ++i) fired += z(i, j) > 0;
      const double pb = fired / static_cast<double>(n);
      const double bool_entropy = (pb == 0 || pb == 1) ? 0.0 : -pb * std::log2(pb) - (1 - pb) * std::log2(1 - pb);
      std::vector<double> counts(static_cast<std::size_t>(nb), 0.0);
      for (index_t i = 0; i < n; ++i)
        for (index_t b = 0; b < nb; ++b) {
          const auto bs = static_cast<std::size_t>(b);
          if (z(i, j) >= e[bs] && (z(i, j) < e[bs + 1] || (b == nb - 1 && z(i, j) <= e[bs + 1]))) {
            counts[bs] += 1;
            break;
          }
        }
      double total = 0, float_entropy = 0;
      for (double c : counts) total += c;
      for (double c : counts) {
        const double q = c / total;
        if (q > 0 && q < 1) float_entropy -= q * std::log2(q);
      }
      dl += bool_entropy + pb * float_entropy;
    }
    for (index_t k : config.k_values) {
      sae::Matrix<Scalar> zk = z;
      if (k > 0)
        for (index_t i = 0; i < n; ++i) {
          std::vector<std::pair<Scalar, index_t>> row;
          for (index_t j = 0; j < f; ++j) row.push_back({z(i, j), j});
          std::sort(row.begin(), row.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
          zk.row(i).setZero();
          for (index_t r = 0; r < k; ++r) zk(i, row[static_cast<std::size_t>(r)].second) = std::max(row[static_cast<std::size_t>(r)].first, Scalar(0));
        }
      double sse = 0;
      for (index_t i = 0; i < n; ++i) {
        std::vector<double> xh(static_cast<std::size_t>(d), 0.0);
        for (index_t c = 0; c < d; ++c) xh[static_cast<std::size_t>(c)] = p.b_dec.size() ? static_cast<double>(p.b_dec[c]) : 0.0;
        for (index_t j = 0; j < f; ++j) {
          const auto& e = edges[static_cast<std::size_t>(j)];
          index_t idx = nb + 1;
          for (index_t b = 0; b <= nb; ++b)
            if (zk(i, j) <= e[static_cast<std::size_t>(b)]) {
              idx = b;
              break;
            }
          const index_t bin = std::min(std::max(idx, index_t{1}), nb) - 1;
          const double q = static_cast<double>(Scalar(0.5) * (e[static_cast<std::size_t>(bin)] + e[static_cast<std::size_t>(bin) + 1]));
          for (index_t c = 0; c < d; ++c) xh[static_cast<std::size_t>(c)] += q * static_cast<double>(p.w_dec(j, c));
        }
        for (index_t c = 0; c < d; ++c) {
          const double diff = xh[static_cast<std::size_t>(c)] - static_cast<double>(x_in(i, c));
          sse += diff * diff;
        }
      }
      sae::eval::MdlResult r;
      r.num_bins = nb, r.k = k, r.description_length = dl;
      r.mse_loss = std::sqrt(sse / static_cast<double>(n * d)) / static_cast<double>(d);
      r.within_threshold = r.mse_loss < config.mse_epsilon_threshold;
      out.push_back(r);
    }
  }
  return out;
}

void check_mdl(const sae::eval::MdlMetrics& m, const std::vector<sae::eval::MdlResult>& want, double tol) {
  BOOST_REQUIRE_EQUAL(m.results.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    const auto& a = m.results[i];
    const auto& b = want[i];
    BOOST_TEST_CONTEXT("num_bins " << b.num_bins << ", k " << b.k) {
      BOOST_TEST(a.num_bins == b.num_bins);
      BOOST_TEST(a.k == b.k);
      check_close(a.description_length, b.description_length, tol, "description_length");
      check_close(a.mse_loss, b.mse_loss, tol, "mse_loss");
      BOOST_TEST(a.within_threshold == b.within_threshold);
    }
  }
}

// Identity encoder and decoder, D = F = 2, TopK with K = 2 (so the codes are relu(x)), no bias.
sae::TopKAutoencoder<double> identity_sae() {
  sae::TopKAutoencoder<double> model(sae::TopKConfig{2, 2, 2, sae::Selection::value, /*decoder_bias=*/false, 1});
  auto& p = model.parameters();
  p.w_enc.setIdentity(), p.w_dec.setIdentity(), p.b_enc.setZero();
  return model;
}

}  // namespace

// By hand. Rows (0, 0), (75, 0), (150, 0), (0, 25): latent 0 takes 0, 75, 150, 0 (max 150), latent 1
// 0, 0, 0, 25 (max 100, SAEBench's floor).
BOOST_AUTO_TEST_CASE(mdl_hand_computed) {
  const auto model = identity_sae();
  sae::Matrix<double> x(4, 2);
  x << 0, 0, 75, 0, 150, 0, 0, 25;
  sae::eval::MdlEvalConfig config;
  config.num_bins_values = {2, 4};
  const auto m = sae::eval::mdl_metrics(model, sae::data::MatrixRows<double>(x), config, 3);
  BOOST_REQUIRE_EQUAL(m.results.size(), 2u);
  BOOST_TEST(m.max_activation == (std::vector<double>{150, 100}), tt::per_element());
  BOOST_TEST(m.active_fraction == (std::vector<double>{0.5, 0.25}), tt::per_element());
  BOOST_TEST(m.latents_above_floor == 1);
  const double h_quarter = -0.25 * std::log2(0.25) - 0.75 * std::log2(0.75);  // H(1/4) = 0.811278...
  // num_bins 2. Latent 0: edges 0, 75, 150; the histogram puts 0, 0 in bin 0 and 75 (on the edge), 150
  // (the top edge) in bin 1: H = 1; H(p = 1/2) = 1, so 1 + 0.5 * 1. Latent 1: edges 0, 50, 100, every
  // value in bin 0: H = 0; H(1/4). Quantised (bucketize: 75 <= edge 75 is bin 0): latent 0 -> 37.5,
  // 37.5, 112.5, 37.5, latent 1 -> 25 everywhere; squared errors 37.5² + 25², 37.5² + 25²,
  // 37.5² + 25², 37.5² + 0 = 7500 over 8 values.
  BOOST_TEST(m.results[0].num_bins == 2);
  BOOST_TEST(m.results[0].k == 0);
  BOOST_TEST(m.results[0].description_length == 1.5 + h_quarter, tt::tolerance(1e-15));
  BOOST_TEST(m.results[0].mse_loss == std::sqrt(7500.0 / 8) / 2, tt::tolerance(1e-15));
  BOOST_TEST(!m.results[0].within_threshold);
  // num_bins 4. Latent 0: edges 0, 37.5, 75, 112.5, 150: counts 2, 0, 1, 1: H = 1.5 -> 1 + 0.5 * 1.5.
  // Latent 1: edges 0, 25, 50, 75, 100: 25 opens bin 1: counts 3, 1: H(1/4) -> H(1/4) + 0.25 H(1/4).
  // Quantised: latent 0 -> 18.75, 56.25 (75 in bin 1), 131.25, 18.75; latent 1 -> 12.5 (25 in bin 0):
  // each row's error 18.75² + 12.5² = 507.8125.
  BOOST_TEST(m.results[1].description_length == 1.75 + 1.25 * h_quarter, tt::tolerance(1e-15));
  BOOST_TEST(m.results[1].mse_loss == std::sqrt(4 * 507.8125 / 8) / 2, tt::tolerance(1e-15));
  check_mdl(m, naive_mdl(model, x, config), 1e-14);
  // A threshold above the loss: within.
  config.mse_epsilon_threshold = 20;
  const auto loose = sae::eval::mdl_metrics(model, sae::data::MatrixRows<double>(x), config);
  BOOST_TEST(loose.results[0].within_threshold);
  BOOST_TEST(loose.results[1].within_threshold);
}

// The binning as torch does it: linspace's edges bit for bit (one rounding, as torch 2.15 gives for
// linspace(0, 589.2625, 65) in float32, where start + step * i in two roundings differs), the
// histogram's bins [e_b, e_b+1) and bucketize's (e_b, e_b+1], entropies.
BOOST_AUTO_TEST_CASE(mdl_binning_as_torch) {
  const auto e = sae::eval::mdl::bin_edges<float>(589.2625122070312f, 64);
  BOOST_REQUIRE_EQUAL(e.size(), 65u);
  BOOST_TEST(e[0] == 0.0f);
  BOOST_TEST(e[64] == 589.2625122070312f);
  BOOST_TEST(e[38] == 349.8746032714844f);  // torch.linspace(0, 589.2625122070312, 65)[38]
  BOOST_TEST(e[41] == 377.4963073730469f);
  const auto h = sae::eval::mdl::bin_edges<double>(100.0, 8);  // 0, 12.5, ..., 100
  const double* edges = h.data();
  using sae::eval::mdl::histogram_bin;
  using sae::eval::mdl::quantize_bin;
  // torch.histogram(tensor([0, 12.4999, 12.5, 25, 100, 100.1, -1]), bins=linspace(0, 100, 9)) and
  // torch.bucketize of the same, clamped and less one (checked in torch 2.15).
  BOOST_TEST(histogram_bin(edges, 8, 0.0) == 0);
  BOOST_TEST(histogram_bin(edges, 8, 12.4999) == 0);
  BOOST_TEST(histogram_bin(edges, 8, 12.5) == 1);
  BOOST_TEST(histogram_bin(edges, 8, 25.0) == 2);
  BOOST_TEST(histogram_bin(edges, 8, 100.0) == 7);
  BOOST_TEST(histogram_bin(edges, 8, 100.1) == -1);
  BOOST_TEST(histogram_bin(edges, 8, -1.0) == -1);
  BOOST_TEST(quantize_bin(edges, 8, 0.0) == 0);
  BOOST_TEST(quantize_bin(edges, 8, 12.4999) == 0);
  BOOST_TEST(quantize_bin(edges, 8, 12.5) == 0);
  BOOST_TEST(quantize_bin(edges, 8, 25.0) == 1);
  BOOST_TEST(quantize_bin(edges, 8, 100.0) == 7);
  BOOST_TEST(quantize_bin(edges, 8, 100.1) == 7);
  BOOST_TEST(quantize_bin(edges, 8, -1.0) == 0);
  BOOST_TEST(sae::eval::mdl::bin_midpoint(edges, 0) == 6.25);
  BOOST_TEST(sae::eval::mdl::binary_entropy(0.5) == 1.0);
  BOOST_TEST(sae::eval::mdl::binary_entropy(0.0) == 0.0);
  BOOST_TEST(sae::eval::mdl::binary_entropy(1.0) == 0.0);
  const std::int64_t counts[] = {2, 0, 1, 1};
  BOOST_TEST(sae::eval::mdl::histogram_entropy(counts, 4) == 1.5);
  const std::int64_t one[] = {0, 5, 0};
  BOOST_TEST(sae::eval::mdl::histogram_entropy(one, 3) == 0.0);  // p = 1 is filtered out, as SAEBench does
}

// Against the naive loops, for a double and a float model with activations above the floor of 100
// (rows scaled), num_bins that do not divide anything, k None and below/above the model's K, in
// batches that do not divide the rows; the batch size changes nothing.
BOOST_AUTO_TEST_CASE(mdl_against_the_naive_implementation) {
  sae::eval::MdlEvalConfig config;
  config.num_bins_values = {3, 8, 64};
  config.k_values = {0, 2, 5};
  config.mse_epsilon_threshold = 36.5;  // between this untrained SAE's losses (35.9 to 37.2): some within, some not
  const auto model = small_topk<double>(8, 24, 4, 11);
  const sae::Matrix<double> x = shifted_rows<double>(90, 8, 5) * 60.0;
  const auto want = naive_mdl(model, x, config);
  for (index_t batch : {index_t{1}, index_t{7}, index_t{90}, index_t{1000}}) {
    BOOST_TEST_CONTEXT("batch " << batch) {
      const auto m = sae::eval::mdl_metrics(model, sae::data::MatrixRows<double>(x), config, batch);
      check_mdl(m, want, 1e-12);
      BOOST_TEST(m.latents_above_floor > 0);
    }
  }
  // k only changes mse_loss: the description lengths of one num_bins are equal.
  const auto m = sae::eval::mdl_metrics(model, sae::data::MatrixRows<double>(x), config, 16);
  BOOST_TEST(m.results[0].description_length == m.results[1].description_length);
  BOOST_TEST(m.results[0].mse_loss != m.results[1].mse_loss);  // k = 2 < K = 4 drops latents
  BOOST_TEST(m.results[0].mse_loss == m.results[2].mse_loss, tt::tolerance(1e-12));  // k = 5 >= K keeps them all
  bool some_within = false, some_not = false;
  for (const auto& r : m.results) (r.within_threshold ? some_within : some_not) = true;
  BOOST_TEST((some_within && some_not));

  const auto model_f = small_topk<float>(16, 40, 4, 3);
  const sae::Matrix<float> xf = shifted_rows<float>(150, 16, 9) * 40.0f;
  check_mdl(sae::eval::mdl_metrics(model_f, sae::data::MatrixRows<float>(xf), config, 64), naive_mdl(model_f, xf, config), 2e-5);
  // At the activations' own scale (all below 100) most values share bin 0, as in SAEBench.
  const sae::Matrix<float> small = shifted_rows<float>(150, 16, 9);
  const auto m_small = sae::eval::mdl_metrics(model_f, sae::data::MatrixRows<float>(small), config, 64);
  check_mdl(m_small, naive_mdl(model_f, small, config), 2e-5);
  BOOST_TEST(m_small.latents_above_floor == 0);
}

// Every registered architecture through mdl_metrics (its own encode/decode) against the naive loops.
BOOST_AUTO_TEST_CASE(mdl_every_architecture) {
  const sae::Matrix<double> x = shifted_rows<double>(40, 6, 8) * 80.0;
  sae::eval::MdlEvalConfig config;
  config.num_bins_values = {4, 16};
  config.k_values = {0, 2};
  for_each_small_model([&](const auto& model) {
    check_mdl(sae::eval::mdl_metrics(model, sae::data::MatrixRows<double>(x), config, 9), naive_mdl(model, x, config), 1e-12);
  });
}

// Edge cases: a latent that never fires (it adds nothing: H(0) = 0 and p = 0), a single row (SAEBench's
// squeeze() would make its codes 1-D and fail; here it is scored), NaN refused naming the row.
BOOST_AUTO_TEST_CASE(mdl_edge_cases) {
  auto model = small_topk<double>(8, 30, 3, 21);
  auto& p = model.parameters();
  for (index_t j = 0; j < 7; ++j) p.w_enc.row(j).setZero(), p.b_enc[j] = -1e3;
  const sae::Matrix<double> x = shifted_rows<double>(60, 8, 2) * 50.0;
  sae::eval::MdlEvalConfig config;
  config.num_bins_values = {4, 32};
  const auto m = sae::eval::mdl_metrics(model, sae::data::MatrixRows<double>(x), config);
  check_mdl(m, naive_mdl(model, x, config), 1e-12);
  for (std::size_t j = 0; j < 7; ++j) {
    BOOST_TEST(m.active_fraction[j] == 0.0);
    BOOST_TEST(m.max_activation[j] == 100.0);
  }
  // The same SAE with the dead latents' encoders copied from live ones would add to the length;
  // dead, they add nothing: removing them (a model of 23 latents) gives the same description length.
  sae::TopKAutoencoder<double> alive(sae::TopKConfig{8, 23, 3, sae::Selection::value, true, 21});
  auto& q = alive.parameters();
  q.w_enc = p.w_enc.bottomRows(23), q.b_enc = p.b_enc.tail(23), q.w_dec = p.w_dec.bottomRows(23), q.b_dec = p.b_dec;
  const auto m_alive = sae::eval::mdl_metrics(alive, sae::data::MatrixRows<double>(x), config);
  for (std::size_t i = 0; i < m.results.size(); ++i)
    check_close(m_alive.results[i].description_length, m.results[i].description_length, 1e-12, "without the dead latents");
  // Every latent dead: description length 0.
  for (index_t j = 0; j < 30; ++j) p.w_enc.row(j).setZero(), p.b_enc[j] = -1;
  const auto none = sae::eval::mdl_metrics(model, sae::data::MatrixRows<double>(x), config);
  for (const auto& r : none.results) BOOST_TEST(r.description_length == 0.0);
  check_mdl(none, naive_mdl(model, x, config), 1e-12);

  // One row.
  const auto live = small_topk<double>(8, 30, 3, 21);
  const sae::Matrix<double> one = x.topRows(1);
  const auto single = sae::eval::mdl_metrics(live, sae::data::MatrixRows<double>(one), config);
  check_mdl(single, naive_mdl(live, one, config), 1e-12);
  for (const auto& r : single.results) BOOST_TEST(r.description_length == 0.0);  // every p is 0 or 1, one value per histogram

  // NaN and infinity refused, naming the row and dimension (core too).
  sae::Matrix<double> bad = x;
  bad(37, 5) = std::numeric_limits<double>::quiet_NaN();
  require_throws_with<sae::invalid_argument>(
      [&] { sae::eval::mdl_metrics(live, sae::data::MatrixRows<double>(bad), config, 16); },
      {"mdl_metrics()", "row 37, dimension 5 is nan", "activations must be finite"});
  require_throws_with<sae::invalid_argument>([&] { sae::eval::core_metrics(live, sae::data::MatrixRows<double>(bad), {2, 8}); },
                                             {"core_metrics()", "row 37, dimension 5 is nan"});
  bad(37, 5) = std::numeric_limits<double>::infinity();
  require_throws_with<sae::invalid_argument>(
      [&] { sae::eval::mdl_metrics(live, sae::data::MatrixRows<double>(bad), config); }, {"row 37, dimension 5 is inf"});

  // Settings SAEBench could not run.
  config.k_values = {31};
  require_throws_with<sae::invalid_argument>([&] { sae::eval::mdl_metrics(live, sae::data::MatrixRows<double>(x), config); },
                                             {"k 31 is not in [0, 30]"});
  config.k_values = {0};
  config.num_bins_values = {};
  require_throws_with<sae::invalid_argument>([&] { sae::eval::mdl_metrics(live, sae::data::MatrixRows<double>(x), config); },
                                             {"num_bins_values and k_values need at least one value"});
  const sae::Matrix<double> empty(0, 8);
  require_throws_with<sae::invalid_argument>(
      [&] { sae::eval::mdl_metrics(live, sae::data::MatrixRows<double>(empty)); }, {"no rows to score"});
}

// sae-eval --evals: mdl.json in the schema SAEBench's mdl run_eval writes, with the library's numbers;
// core and mdl alone; refusals in one line.
BOOST_AUTO_TEST_CASE(sae_eval_mdl_program) {
  namespace fs = std::filesystem;
  sae::test::ScratchDir dir("eval-mdl-cli");
  const auto model = small_topk<float>(16, 48, 4, 7);
  sae::save_checkpoint(dir / "ckpt", model);
  const sae::Matrix<float> x = shifted_rows<float>(200, 16, 3) * 50.0f;
  sae::io::save_npy(dir / "x.npy", x);
  sae::eval::MdlEvalConfig config;  // the defaults: num_bins 8, 16, 32, 64, k None, threshold 0.2
  const auto expected = sae::eval::mdl_metrics(model, sae::data::MatrixRows<float>(x), config);
  const auto run = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> a = {"--sae", (dir / "ckpt").string(), "--data", (dir / "x.npy").string(), "--out",
                                  (dir / ("out-" + name)).string()};
    a.insert(a.end(), extra.begin(), extra.end());
    return sae::test::cli::run("sae-eval", a, dir / ("log-" + name));
  };
  const auto both = run("both", {});  // the default: core and mdl
  BOOST_TEST_REQUIRE(both.code == 0, both.err);
  BOOST_TEST(fs::exists(dir / "out-both" / "core.json"));
  const auto j = sae::io::read_json_file((dir / "out-both" / "mdl.json").string());
  for (const char* key : {"eval_instance_id", "sae_lens_release", "sae_lens_id", "eval_type_id", "sae_lens_version",
                          "sae_bench_version", "date_time", "eval_config", "eval_results", "eval_artifacts", "sae_cfg_dict"})
    BOOST_TEST(j.find(key) != nullptr, key);
  BOOST_TEST(j.at("eval_type_id").as_string() == "mdl");
  const std::string when = j.at("date_time").as_string();  // datetime.now().isoformat(): 2024-11-05T01:54:14.197238
  BOOST_TEST((when.size() == 26u && when[10] == 'T' && when[19] == '.'), when);
  BOOST_TEST(j.at("eval_artifacts").at("artifacts").as_string() == "None");
  const auto& cfg = j.at("eval_config");
  BOOST_TEST(cfg.at("num_bins_values").as_array().size() == 4u);
  BOOST_TEST(cfg.at("k_values").as_array().size() == 1u);
  BOOST_TEST(cfg.at("k_values").as_array()[0].is_null());
  BOOST_TEST(cfg.at("mse_epsilon_threshold").as_number() == 0.2);
  const auto& results = j.at("eval_results").as_array();
  BOOST_TEST_REQUIRE(results.size() == 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    BOOST_TEST(results[i].at("num_bins").as_int() == expected.results[i].num_bins);
    BOOST_TEST(results[i].at("k").is_null());
    BOOST_TEST(results[i].at("bins").as_array().empty());
    BOOST_TEST(results[i].at("description_length").as_number() == expected.results[i].description_length, tt::tolerance(1e-12));
    BOOST_TEST(results[i].at("mse_loss").as_number() == expected.results[i].mse_loss, tt::tolerance(1e-12));
    BOOST_TEST(results[i].at("within_threshold").as_bool() == expected.results[i].within_threshold);
  }
  const std::string report = sae::test::read_file(dir / "out-both" / "report.md");
  BOOST_TEST(report.find("## Core metrics") != std::string::npos);
  BOOST_TEST(report.find("## MDL (description length)") != std::string::npos);

  const auto mdl_only = run("mdl", {"--evals", "mdl", "--mdl-num-bins", "5,9", "--mdl-k-values", "0,2", "--mdl-mse-threshold", "1"});
  BOOST_TEST_REQUIRE(mdl_only.code == 0, mdl_only.err);
  BOOST_TEST(!fs::exists(dir / "out-mdl" / "core.json"));
  const auto jm = sae::io::read_json_file((dir / "out-mdl" / "mdl.json").string());
  BOOST_TEST(jm.at("eval_results").as_array().size() == 4u);  // (5, None), (5, 2), (9, None), (9, 2)
  BOOST_TEST(jm.at("eval_results").as_array()[1].at("k").as_int() == 2);
  BOOST_TEST(jm.at("eval_config").at("k_values").as_array()[1].as_int() == 2);
  BOOST_TEST(sae::test::read_file(dir / "out-mdl" / "report.md").find("## Core metrics") == std::string::npos);

  const auto core_only = run("core", {"--evals", "core"});
  BOOST_TEST_REQUIRE(core_only.code == 0, core_only.err);
  BOOST_TEST(!fs::exists(dir / "out-core" / "mdl.json"));
  BOOST_TEST(fs::exists(dir / "out-core" / "core.json"));

  for (const auto& [name, extra, message] :
       {std::tuple<std::string, std::vector<std::string>, std::string>{
            "idle", {"--evals", "core", "--mdl-num-bins", "4"}, "--mdl-num-bins: does nothing without mdl in --evals"},
        {"unknown", {"--evals", "core,probing"}, "--evals: unknown eval 'probing'"},
        {"big-k", {"--mdl-k-values", "49"}, "--mdl-k-values: k 49 exceeds the SAE's 48 latents"},
        {"zero-bins", {"--mdl-num-bins", "0"}, "--mdl-num-bins"}}) {
    BOOST_TEST_CONTEXT(name) {
      const auto e = run(name, extra);
      BOOST_TEST(e.code == 2);
      BOOST_TEST(e.err.find(message) != std::string::npos, e.err);
      BOOST_TEST(std::count(e.err.begin(), e.err.end(), '\n') == 1);
      BOOST_TEST(!fs::exists(dir / ("out-" + name)));
    }
  }
  // A file holding NaN: refused when read, naming the sample and dimension.
  sae::Matrix<float> bad = x;
  bad(3, 4) = std::numeric_limits<float>::quiet_NaN();
  sae::io::save_npy(dir / "bad.npy", bad);
  const auto nan_run = sae::test::cli::run(
      "sae-eval", {"--sae", (dir / "ckpt").string(), "--data", (dir / "bad.npy").string(), "--out", (dir / "out-nan").string()},
      dir / "log-nan");
  BOOST_TEST(nan_run.code == 1);
  const std::string first_line = nan_run.err.substr(0, nan_run.err.find('\n'));
  BOOST_TEST(first_line.find("non-finite value (nan) at (sample 3, dimension 4)") != std::string::npos, nan_run.err);
  BOOST_TEST(!fs::exists(dir / "out-nan" / "core.json"));
  BOOST_TEST(!fs::exists(dir / "out-nan" / "mdl.json"));
}
