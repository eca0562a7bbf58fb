// SAEBench's "core" eval for the metrics that need only activations and the SAE, in SAEBench's own
// formulas (sae_bench/evals/core/main.py of SAEBench 0.6.0; cited per metric below), streamed over
// a row source in SAEBench's batches, with double accumulators. Where SAEBench's formula is not the
// textbook one, SAEBench's is computed under its name and ours beside it (TextbookMetrics).
//
// Offline, a SAEBench batch (batch_size_prompts prompts of context_size tokens) is batch_size_prompts
// x context_size consecutive rows, and a prompt is context_size consecutive rows; every row counts
// (SAEBench masks BOS/EOS/PAD tokens, which rows of activations no longer name). A last batch with
// fewer rows is a batch of its own, weighted like the others where SAEBench averages per batch.
// The metrics SAEBench computes with the language model (KL divergence, CE loss) are not here.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/fields.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/types.hpp>
#include <sae/data/row_source.hpp>
#include <sae/data/row_statistics.hpp>
#include <sae/eval/finite_rows.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace sae::eval {

// SAEBench's CoreEvalConfig fields that shape the sparsity/variance pass (sae_bench/evals/core/eval_config.py).
struct CoreEvalConfig {
  index_t batch_size_prompts = 16;  // SAEBench's default
  index_t context_size = 128;       // SAEBench's default

  index_t batch_rows() const { return batch_size_prompts * context_size; }

  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.batch_size_prompts, field("batch_size_prompts", "prompts per SAEBench batch: a batch is batch_size_prompts x "
                                                        "context_size consecutive rows (SAEBench's per-batch metrics depend on it)")
                                .at_least(1).at_most(1 << 20));
    v(c.context_size, field("context_size", "rows per prompt: consecutive rows taken as one prompt's tokens (for "
                                            "consistent_activation_heuristic and the batch size)")
                          .at_least(1).at_most(1 << 20));
  }
};

// The scalar metrics of SAEBench's get_sparsity_and_variance_metrics, under its names and grouped
// as its CoreMetricCategories group them.
struct SaebenchScalars {
  // reconstruction_quality
  double explained_variance = 0, explained_variance_legacy = 0, mse = 0, cossim = 0;
  // shrinkage
  double l2_norm_in = 0, l2_norm_out = 0, l2_ratio = 0, relative_reconstruction_bias = 0;
  // sparsity
  double l0 = 0, l1 = 0;
};

// Ours, beside SAEBench's where its formula is not the textbook one; all over every row at once.
struct TextbookMetrics {
  double explained_variance = 0;            // 1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 (metrics::explained_variance)
  double mse = 0;                           // mean of (x - x_hat)^2 over all elements (metrics::mse)
  double relative_reconstruction_bias = 0;  // sum ||x_hat||^2 / sum x.x_hat over all rows
  double cossim = 0;                        // mean cos(x, x_hat) over the rows where both norms are nonzero
  std::int64_t rows_without_cossim = 0;     // rows where x or x_hat is zero (SAEBench's cossim is then NaN)
  std::int64_t alive_latents = 0;           // latents active (> 0) on at least one row
  double dead_fraction = 0;                 // 1 - frac_alive
};

// Per latent, SAEBench's CoreFeatureMetric (eval_result_details).
struct LatentMetrics {
  std::vector<double> feature_density;                  // fraction of rows with the latent > 0
  std::vector<double> consistent_activation_heuristic;  // active rows per prompt it is active in (NaN when never)
  std::vector<double> encoder_bias, encoder_norm, encoder_decoder_cosine_sim;
  std::vector<double> max_encoder_cosine_sim, max_decoder_cosine_sim;
};

// SAEBench's calculate_misc_metrics.
struct MiscMetrics {
  double frac_alive = 0, freq_over_1_percent = 0, freq_over_10_percent = 0;
  double normalized_freq_over_1_percent = 0, normalized_freq_over_10_percent = 0;
  double average_max_encoder_cosine_sim = 0, average_max_decoder_cosine_sim = 0;
};

struct CoreMetrics {
  SaebenchScalars saebench;
  TextbookMetrics textbook;
  LatentMetrics latents;
  MiscMetrics misc;
  std::int64_t rows = 0, batches = 0;  // batches: SAEBench's n_eval_sparsity_variance_batches
  std::int64_t last_batch_rows = 0;    // rows of the last batch (fewer than a full one when N is not a multiple)
  double max_decoder_norm_deviation = 0;  // max_i | ||W_dec[i]|| - 1 |: SAEBench folds non-unit norms into a release's encoder
};

// Every metric of the core eval that needs no language model, accumulated one SAEBench batch at a
// time. Pure bookkeeping: the caller encodes and decodes (core_metrics() below does).
class CoreAccumulator {
 public:
  CoreAccumulator(index_t input_dim, index_t num_latents, index_t context_size)
      : d_(input_dim), f_(num_latents), context_(context_size), fired_(static_cast<std::size_t>(num_latents), 0.0),
        prompts_(static_cast<std::size_t>(num_latents), 0.0), last_prompt_(static_cast<std::size_t>(num_latents), -1) {
    sae::detail::require(input_dim > 0 && num_latents > 0 && context_size > 0, "CoreAccumulator",
                         "needs a positive input width, latent count and context size");
  }

  // One SAEBench batch: x [n, D] the SAE's inputs, x_hat [n, D] its reconstructions, codes its
  // latents of the same n rows (which follow the rows of the batches before).
  template <class Scalar>
  void add_batch(const Matrix<Scalar>& x, const Matrix<Scalar>& x_hat, const SparseCodes<Scalar>& codes) {
    const index_t n = x.rows();
    sae::detail::require(n > 0, "CoreAccumulator::add_batch()", "an empty batch");
    sae::detail::require(x.cols() == d_ && x_hat.rows() == n && x_hat.cols() == d_, "CoreAccumulator::add_batch()",
                         "x is [" + std::to_string(x.rows()) + ", " + std::to_string(x.cols()) + "] and x_hat [" +
                             std::to_string(x_hat.rows()) + ", " + std::to_string(x_hat.cols()) + "], expected [n, " +
                             std::to_string(d_) + "] both");
    sae::detail::require(codes.rows == n && codes.num_latents == f_, "CoreAccumulator::add_batch()",
                         "codes are " + std::to_string(codes.rows) + " rows of " + std::to_string(codes.num_latents) +
                             " latents, expected " + std::to_string(n) + " of " + std::to_string(f_));
    const double nb = static_cast<double>(n);
    // The batch's per-dimension mean, for explained_variance_legacy's per-token denominators.
    const Eigen::RowVectorXd batch_mean = x.template cast<double>().colwise().mean();
    double out_sq = 0, dot = 0, in_sq = 0, resid = 0, in_sq_per_dim = 0;
    for (index_t i = 0; i < n; ++i) {
      const Eigen::RowVectorXd xi = x.row(i).template cast<double>(), hi = x_hat.row(i).template cast<double>();
      const double in2 = xi.squaredNorm(), out2 = hi.squaredNorm(), xh = xi.dot(hi), ss = (xi - hi).squaredNorm();
      const double in_norm = std::sqrt(in2), out_norm = std::sqrt(out2);
      // main.py get_sparsity_and_variance_metrics, compute_l2_norms: per token, then the mean over
      // all tokens; the ratio divides by 1 where ||x|| < 1e-4.
      sum_l2_in_ += in_norm;
      sum_l2_out_ += out_norm;
      sum_l2_ratio_ += out_norm / (std::abs(in_norm) < 1e-4 ? 1.0 : in_norm);
      // compute_variance_metrics: mse = resid_sum_of_squares / flattened_mask.sum(), i.e. each
      // token's squared error divided by the batch's token count (not by D), then the mean over
      // all tokens.
      sum_mse_ += ss / nb;
      // explained_variance_legacy = 1 - ||x - x_hat||^2 / ||x - mean_batch(x)||^2 per token, then the mean.
      sum_ev_legacy_ += 1.0 - ss / (xi - batch_mean).squaredNorm();
      // cossim = (x/||x||).(x_hat/||x_hat||) per token (NaN when a norm is 0), then the mean.
      const double cos = (xi / in_norm).dot(hi / out_norm);
      sum_cossim_ += cos;
      if (in_norm > 0 && out_norm > 0) sum_cossim_defined_ += cos;
      else ++rows_without_cossim_;
      out_sq += out2, dot += xh, in_sq += in2, resid += ss;
      in_sq_per_dim += in2 / static_cast<double>(d_);
      sse_ += ss, pooled_out_sq_ += out2, pooled_dot_ += xh;
      // compute_sparsity_metrics: l0 = count of nonzero latents, l1 = their plain sum (not of
      // absolute values; the same here, where codes are never negative); per token, then the mean.
      // compute_featurewise_density_statistics: counts of rows (> 0) and of prompts with a row > 0.
      const std::int64_t prompt = (rows_ + i) / context_;
      for (index_t s = 0; s < codes.k; ++s) {
        const double v = static_cast<double>(codes.row_values(i)[s]);
        if (v != 0) sum_l0_ += 1, sum_l1_ += v;
        if (v > 0) {
          const auto j = static_cast<std::size_t>(codes.row_indices(i)[s]);
          fired_[j] += 1;
          if (last_prompt_[j] != prompt) last_prompt_[j] = prompt, prompts_[j] += 1;
        }
      }
    }
    // relative_reconstruction_bias = mean ||x_hat||^2 / mean x.x_hat within the batch (Eq. 10 of
    // arXiv 2404.16014), then the mean over batches.
    sum_rrb_ += (out_sq / nb) / (dot / nb);
    // explained_variance (SAEBench's "new" formula): per batch mean_sum_of_squares = mean ||x||^2,
    // mean_act_per_dimension = mean over tokens of x^2 per dimension (its mean over dimensions and
    // batches is taken), mean_sum_of_resid_squared = mean ||x - x_hat||^2; finish() combines them.
    sum_mean_sq_ += in_sq / nb;
    sum_mean_act_per_dim_ += in_sq_per_dim / nb;
    sum_mean_resid_ += resid / nb;
    data::merge_moments(moments_, data::block_moments(x));
    rows_ += n;
    ++batches_;
    last_batch_rows_ = n;
  }

  std::int64_t rows() const { return rows_; }
  std::int64_t batches() const { return batches_; }
  std::int64_t last_batch_rows() const { return last_batch_rows_; }

  SaebenchScalars saebench() const {
    require_rows();
    const double n = static_cast<double>(rows_), b = static_cast<double>(batches_);
    SaebenchScalars s;
    // main.py, "Aggregate scalar metrics": total_variance = mean_sum_of_squares - mean_act_per_dimension**2,
    // where mean_act_per_dimension is a mean of squares (torch.cat(...).mean(dim=0) makes it one
    // scalar), so the denominator is E||x||^2 - (E||x||^2 / D)^2: variance about zero, not about the
    // mean (SAELens #659 / PR #665 fix it there; SAEBench 0.6.0 has it). Kept as SAEBench computes it.
    const double mean_sum_of_squares = sum_mean_sq_ / b, mean_act = sum_mean_act_per_dim_ / b;
    s.explained_variance = 1.0 - (sum_mean_resid_ / b) / (mean_sum_of_squares - mean_act * mean_act);
    s.explained_variance_legacy = sum_ev_legacy_ / n;
    s.mse = sum_mse_ / n;
    s.cossim = sum_cossim_ / n;
    s.l2_norm_in = sum_l2_in_ / n;
    s.l2_norm_out = sum_l2_out_ / n;
    s.l2_ratio = sum_l2_ratio_ / n;
    s.relative_reconstruction_bias = sum_rrb_ / b;
    s.l0 = sum_l0_ / n;
    s.l1 = sum_l1_ / n;
    return s;
  }

  TextbookMetrics textbook() const {
    require_rows();
    const double n = static_cast<double>(rows_);
    TextbookMetrics t;
    t.explained_variance = moments_.sst > 0 ? 1.0 - sse_ / moments_.sst : std::numeric_limits<double>::quiet_NaN();
    t.mse = sse_ / (n * static_cast<double>(d_));
    t.relative_reconstruction_bias = pooled_out_sq_ / pooled_dot_;
    t.rows_without_cossim = rows_without_cossim_;
    const std::int64_t defined = rows_ - rows_without_cossim_;
    t.cossim = defined > 0 ? sum_cossim_defined_ / static_cast<double>(defined) : std::numeric_limits<double>::quiet_NaN();
    t.alive_latents = static_cast<std::int64_t>(std::count_if(fired_.begin(), fired_.end(), [](double c) { return c > 0; }));
    t.dead_fraction = 1.0 - static_cast<double>(t.alive_latents) / static_cast<double>(f_);
    return t;
  }

  // main.py: feature_density = total_feature_acts / total_tokens.
  std::vector<double> feature_density() const {
    require_rows();
    std::vector<double> d(fired_.size());
    for (std::size_t j = 0; j < d.size(); ++j) d[j] = fired_[j] / static_cast<double>(rows_);
    return d;
  }
  // main.py: consistent_activation_heuristic = total_feature_acts / total_feature_prompts (0/0, NaN,
  // for a latent that never fires).
  std::vector<double> consistent_activation_heuristic() const {
    std::vector<double> h(fired_.size());
    for (std::size_t j = 0; j < h.size(); ++j) h[j] = fired_[j] / prompts_[j];
    return h;
  }

 private:
  void require_rows() const { sae::detail::require(rows_ > 0, "CoreAccumulator", "no rows were added"); }

  index_t d_, f_, context_;
  std::int64_t rows_ = 0, batches_ = 0, last_batch_rows_ = 0, rows_without_cossim_ = 0;
  double sum_l2_in_ = 0, sum_l2_out_ = 0, sum_l2_ratio_ = 0, sum_mse_ = 0, sum_ev_legacy_ = 0, sum_cossim_ = 0;
  double sum_cossim_defined_ = 0, sum_l0_ = 0, sum_l1_ = 0, sum_rrb_ = 0;
  double sum_mean_sq_ = 0, sum_mean_act_per_dim_ = 0, sum_mean_resid_ = 0;
  double sse_ = 0, pooled_out_sq_ = 0, pooled_dot_ = 0;
  data::Moments moments_;
  std::vector<double> fired_, prompts_;
  std::vector<std::int64_t> last_prompt_;
};

// main.py calculate_max_cosine_sim: for each row of `vectors` [F, D] (a latent's encoder column or
// decoder row), the largest cosine similarity with any other row; rows normalised as
// torch.nn.functional.normalize does (v / max(||v||, 1e-12), so a zero row has cosine 0 with all),
// the self-similarity excluded (-inf when F = 1). Blocks of 256 rows against all, never F x F.
template <class Scalar>
std::vector<double> max_cosine_similarity(const Matrix<Scalar>& vectors) {
  const index_t f = vectors.rows();
  Matrix<Scalar> unit = vectors;
  for (index_t i = 0; i < f; ++i) unit.row(i) /= std::max(unit.row(i).norm(), Scalar(1e-12));
  std::vector<double> best(static_cast<std::size_t>(f), -std::numeric_limits<double>::infinity());
  constexpr index_t block = 256;
  for (index_t first = 0; first < f; first += block) {
    const index_t n = std::min(block, f - first);
    const Matrix<Scalar> sims = unit.middleRows(first, n) * unit.transpose();  // [n, F]
    for (index_t r = 0; r < n; ++r) {
      double m = -std::numeric_limits<double>::infinity();
      for (index_t j = 0; j < f; ++j)
        if (j != first + r) m = std::max(m, static_cast<double>(sims(r, j)));
      best[static_cast<std::size_t>(first + r)] = m;
    }
  }
  return best;
}

// main.py get_featurewise_weight_based_metrics, from our parameters: w_enc [F, D] (SAELens's W_enc
// transposed), b_enc [F], w_dec [F, D]. Fills encoder_bias, encoder_norm (||W_enc[:, i]||),
// encoder_decoder_cosine_sim (cos(W_enc[:, i], W_dec[i]); NaN when either is zero, as SAEBench's
// division by the norm gives) and the two max cosine similarities.
template <class Scalar>
void weight_metrics(const Matrix<Scalar>& w_enc, const Vector<Scalar>& b_enc, const Matrix<Scalar>& w_dec, LatentMetrics& out) {
  const index_t f = w_enc.rows();
  sae::detail::require(w_dec.rows() == f && w_dec.cols() == w_enc.cols() && b_enc.size() == f, "weight_metrics()",
                       "w_enc [" + std::to_string(f) + ", " + std::to_string(w_enc.cols()) + "], b_enc [" +
                           std::to_string(b_enc.size()) + "] and w_dec [" + std::to_string(w_dec.rows()) + ", " +
                           std::to_string(w_dec.cols()) + "] do not belong together");
  const auto fs = static_cast<std::size_t>(f);
  out.encoder_bias.resize(fs), out.encoder_norm.resize(fs), out.encoder_decoder_cosine_sim.resize(fs);
  for (index_t i = 0; i < f; ++i) {
    const Eigen::RowVectorXd e = w_enc.row(i).template cast<double>(), d = w_dec.row(i).template cast<double>();
    const auto s = static_cast<std::size_t>(i);
    out.encoder_bias[s] = static_cast<double>(b_enc[i]);
    out.encoder_norm[s] = e.norm();
    out.encoder_decoder_cosine_sim[s] = (e / e.norm()).dot(d / d.norm());
  }
  out.max_encoder_cosine_sim = max_cosine_similarity(w_enc);
  out.max_decoder_cosine_sim = max_cosine_similarity(w_dec);
}

// main.py calculate_misc_metrics, from the per-latent densities and max cosine similarities.
inline MiscMetrics misc_metrics(const LatentMetrics& latents) {
  MiscMetrics m;
  const auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / static_cast<double>(v.size());
  };
  m.average_max_encoder_cosine_sim = mean(latents.max_encoder_cosine_sim);
  m.average_max_decoder_cosine_sim = mean(latents.max_decoder_cosine_sim);
  const auto& d = latents.feature_density;
  const double f = static_cast<double>(d.size());
  double total = 0, over_1 = 0, over_10 = 0, sum_1 = 0, sum_10 = 0, alive = 0;
  for (double x : d) {
    total += x;
    if (x > 0) alive += 1;
    if (x > 0.01) over_1 += 1, sum_1 += x;
    if (x > 0.1) over_10 += 1, sum_10 += x;
  }
  m.frac_alive = alive / f;
  m.freq_over_1_percent = over_1 / f;
  m.freq_over_10_percent = over_10 / f;
  // "Sum of densities of features > 1%, divided by total sum" (0 when no latent fired).
  m.normalized_freq_over_1_percent = total > 0 ? sum_1 / total : 0.0;
  m.normalized_freq_over_10_percent = total > 0 ? sum_10 / total : 0.0;
  return m;
}

// The whole core eval of `model` on `rows`: SAEBench's batches of config.batch_rows() consecutive
// rows encoded and decoded by the model (any architecture of the registry), then the weight-based
// metrics. `progress(rows_done, rows_total)` is called after each batch when given.
template <class Model>
CoreMetrics core_metrics(const Model& model, const data::RowSource<typename Model::scalar_type>& rows,
                         const CoreEvalConfig& config = {},
                         const std::function<void(std::int64_t, std::int64_t)>& progress = {}) {
  using Scalar = typename Model::scalar_type;
  sae::detail::require(rows.rows() > 0, "core_metrics()", rows.describe() + " has no rows to score");
  sae::detail::require(rows.input_dim() == model.input_dim(), "core_metrics()",
                       rows.describe() + " has rows of " + std::to_string(rows.input_dim()) + " values, the SAE takes " +
                           std::to_string(model.input_dim()));
  sae::detail::require(!rows.has_targets(), "core_metrics()",
                       "the core eval scores an autoencoder against its inputs; " + rows.describe() + " has targets");
  sae::detail::require(config.batch_size_prompts > 0 && config.context_size > 0, "core_metrics()",
                       "batch_size_prompts and context_size must be positive");
  CoreAccumulator acc(model.input_dim(), model.num_latents(), config.context_size);
  const index_t batch = config.batch_rows();
  Matrix<Scalar> x;
  for (index_t first = 0; first < rows.rows(); first += batch) {
    const index_t n = std::min(batch, rows.rows() - first);
    const auto idx = data::row_range(first, n);
    rows.read_inputs(idx.data(), n, x);
    rows.release_rows(idx.data(), n);
    require_finite_rows(x, first, rows.describe(), "core_metrics()");
    const auto codes = model.encode(x);
    acc.add_batch(x, model.decode(codes), codes);
    if (progress) progress(acc.rows(), rows.rows());
  }
  CoreMetrics m;
  m.saebench = acc.saebench();
  m.textbook = acc.textbook();
  m.rows = acc.rows(), m.batches = acc.batches(), m.last_batch_rows = acc.last_batch_rows();
  m.latents.feature_density = acc.feature_density();
  m.latents.consistent_activation_heuristic = acc.consistent_activation_heuristic();
  const auto& p = model.parameters();
  weight_metrics(p.w_enc, p.b_enc, p.w_dec, m.latents);
  m.misc = misc_metrics(m.latents);
  for (index_t i = 0; i < p.w_dec.rows(); ++i)
    m.max_decoder_norm_deviation = std::max(m.max_decoder_norm_deviation, std::abs(static_cast<double>(p.w_dec.row(i).norm()) - 1.0));
  return m;
}

}  // namespace sae::eval
