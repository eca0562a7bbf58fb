// SAEBench's MDL eval (sae_bench/evals/mdl/main.py of SAEBench 0.6.0, after "Interpretability as
// Compression", Ayonrinde et al.) in SAEBench's own formulas, on stored activations: for each
// num_bins (and each k), every latent's values are binned on [0, max], the description length is
// the sum over latents of a binary "fires" entropy plus the firing rate times the entropy of the
// latent's histogram, and the SAE's codes quantised to bin midpoints are decoded to test an MSE
// threshold. Cited per step below, including where SAEBench's computation is not what the paper
// describes (the max floored at 100, silent latents quantised to the first bin's midpoint, zeros in
// the histogram); those are kept as SAEBench computes them, since its numbers are the reference.
//
// Offline, every phase sees every row: SAEBench draws fresh rows from its activation store for the
// min/max (10 buffers), for each threshold check and for each description length (one buffer each);
// here the max, the histograms and the MSE are all over the same rows, streamed in batches (every
// result is a sum over rows, so the batch size changes nothing).
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/fields.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/types.hpp>
#include <sae/data/row_source.hpp>
#include <sae/eval/finite_rows.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sae::eval {

// The sweep of SAEBench's MDLEvalConfig (sae_bench/evals/mdl/eval_config.py). The defaults are those
// SAEBench's own MDL run uses (main.py's __main__, and tests/acceptance/test_data/mdl): num_bins
// 8, 16, 32, 64, k None, mse_epsilon_threshold 0.2 (the dataclass's own defaults, [4, 6, 8, 12, 16,
// 32], k [16, 24, 32] and 0.01, are overridden there).
struct MdlEvalConfig {
  std::vector<index_t> num_bins_values{8, 16, 32, 64};
  std::vector<index_t> k_values{0};  // 0 is SAEBench's None: no extra top-k before quantising
  double mse_epsilon_threshold = 0.2;

  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.num_bins_values, field("num_bins_values", "MDL: bin counts to sweep (SAEBench's num_bins_values)")
                             .flag_name("mdl-num-bins").at_least(1).at_most(1 << 16));
    v(c.k_values, field("k_values", "MDL: top-k applied to the codes before quantising, 0 for SAEBench's None (none); "
                                    "the description length does not depend on it, as in SAEBench")
                      .flag_name("mdl-k-values").at_least(0).at_most(1 << 30));
    v(c.mse_epsilon_threshold, field("mse_epsilon_threshold", "MDL: within_threshold is sqrt(MSE) / d_in below this")
                                   .flag_name("mdl-mse-threshold").at_least(0));
  }
};

// SAEBench's MDLEvalResult, one per (num_bins, k) in its loop order (num_bins outer, k inner).
struct MdlResult {
  index_t num_bins = 0;
  index_t k = 0;  // 0: None
  double description_length = 0;
  bool within_threshold = false;
  double mse_loss = 0;  // sqrt(mean (x_hat_q - x)^2) / d_in, under SAEBench's name
};

struct MdlMetrics {
  std::vector<MdlResult> results;
  std::vector<double> max_activation;   // per latent: the bins' upper edge, max(100, largest value)
  std::vector<double> active_fraction;  // per latent: SAEBench's bool_prob, rows with the latent > 0 / rows
  std::int64_t rows = 0;
  index_t latents_above_floor = 0;  // latents whose largest value exceeds SAEBench's floor of 100
};

namespace mdl {

// main.py get_min_max_activations: the running max starts at `torch.zeros(1, F) + 100`, so every
// latent's upper bin edge is max(100, its largest activation); the running min starts at 0 and
// build_bins overwrites it with zeros anyway (`min_pos_activations_F = torch.zeros_like(...)`).
inline constexpr double max_activation_floor = 100.0;

// main.py build_bins: torch.linspace(0, max, num_bins + 1) in the SAE's dtype. Torch's CPU kernel
// computes step = (end - start) / (steps - 1) and, for the first half, start + step * i, for the
// second end - step * (steps - 1 - i), each in one rounding (a fused multiply-add; checked bit for
// bit against torch 2.15 in float32).
template <class Scalar>
std::vector<Scalar> bin_edges(Scalar max_activation, index_t num_bins) {
  sae::detail::require(num_bins >= 1, "mdl::bin_edges()", "num_bins must be at least 1");
  const index_t steps = num_bins + 1, halfway = steps / 2;
  const Scalar start = 0, end = max_activation, step = (end - start) / static_cast<Scalar>(steps - 1);
  std::vector<Scalar> edges(static_cast<std::size_t>(steps));
  for (index_t i = 0; i < steps; ++i)
    edges[static_cast<std::size_t>(i)] = i < halfway ? std::fma(step, static_cast<Scalar>(i), start)
                                                     : std::fma(-step, static_cast<Scalar>(steps - 1 - i), end);
  return edges;
}

// main.py calculate_dl's torch.histogram(values, bins=edges): bin b holds edges[b] <= v < edges[b+1],
// the last bin also v == edges[num_bins]; a value outside [edges[0], edges[num_bins]] is not counted
// (-1). Torch's binary search over the edges (upper_bound, one back).
template <class Scalar>
index_t histogram_bin(const Scalar* edges, index_t num_bins, Scalar v) {
  if (!(v >= edges[0] && v <= edges[num_bins])) return -1;
  const index_t b = static_cast<index_t>(std::upper_bound(edges, edges + num_bins + 1, v) - edges) - 1;
  return std::min(b, num_bins - 1);
}

// main.py quantize_features_to_bin_midpoints: torch.bucketize(v, edges) (right=False: the first i
// with v <= edges[i]), clamped to [1, num_bins], minus 1. So bin b holds edges[b] < v <= edges[b+1]
// (the other side from the histogram's), and 0, negatives and values below edges[1] all fall in
// bin 0, values above the top edge in the last bin.
template <class Scalar>
index_t quantize_bin(const Scalar* edges, index_t num_bins, Scalar v) {
  const index_t i = static_cast<index_t>(std::lower_bound(edges, edges + num_bins + 1, v) - edges);
  return std::clamp<index_t>(i, 1, num_bins) - 1;
}

// bin_mids_Bi = 0.5 * (bin_edges_Bi[:-1] + bin_edges_Bi[1:]), in the SAE's dtype.
template <class Scalar>
Scalar bin_midpoint(const Scalar* edges, index_t b) {
  return Scalar(0.5) * (edges[b] + edges[b + 1]);
}

// main.py calculate_dl, "BOOL entropy": -p log2 p - (1 - p) log2(1 - p), 0 when p is 0 or 1.
inline double binary_entropy(double p) {
  if (p == 0 || p == 1) return 0;
  return -p * std::log2(p) - (1 - p) * std::log2(1 - p);
}

// main.py calculate_dl, "FLOAT entropy": probs = counts / counts.sum(), only 0 < p < 1 kept,
// H = -sum p log2 p (0 when none is left, or when no value was counted: SAEBench's 0/0 gives NaNs,
// which the filter drops).
inline double histogram_entropy(const std::int64_t* counts, index_t num_bins) {
  double total = 0;
  for (index_t b = 0; b < num_bins; ++b) total += static_cast<double>(counts[b]);
  double h = 0;
  for (index_t b = 0; b < num_bins; ++b) {
    const double p = static_cast<double>(counts[b]) / total;
    if (p > 0 && p < 1) h -= p * std::log2(p);
  }
  return h;
}

// SAEBench's TopK(k) (sae_lens.saes.topk_sae.TopK: torch.topk over all latents, then ReLU) applied
// to a row of sparse codes, in place: the k largest positive values stay, the rest become 0 (a
// slot the dense top-k would take at value <= 0 is 0 after its ReLU either way).
template <class Scalar>
void keep_top_k(SparseCodes<Scalar>& codes, index_t k, std::vector<index_t>& order) {
  for (index_t i = 0; i < codes.rows; ++i) {
    Scalar* v = codes.row_values(i);
    order.clear();
    for (index_t s = 0; s < codes.k; ++s) {
      if (v[s] > Scalar(0)) order.push_back(s);
      else v[s] = Scalar(0);
    }
    if (static_cast<index_t>(order.size()) <= k) continue;
    std::nth_element(order.begin(), order.begin() + k, order.end(), [&](index_t a, index_t b) { return v[a] > v[b]; });
    for (auto it = order.begin() + k; it != order.end(); ++it) v[*it] = Scalar(0);
  }
}

}  // namespace mdl

// SAEBench's MDL eval of `model` on `rows`: pass 1 finds each latent's max (get_min_max_activations),
// pass 2 fills every num_bins' histograms (calculate_dl) and every (num_bins, k)'s quantised MSE
// (check_quantised_features_reach_mse_threshold), `batch_rows` rows at a time, encoded and decoded
// by the model itself. `progress(pass, rows_done, rows_total)` after each batch when given.
template <class Model>
MdlMetrics mdl_metrics(const Model& model, const data::RowSource<typename Model::scalar_type>& rows,
                       const MdlEvalConfig& config = {}, index_t batch_rows = 2048,
                       const std::function<void(int, std::int64_t, std::int64_t)>& progress = {}) {
  using Scalar = typename Model::scalar_type;
  const index_t f = model.num_latents(), d = model.input_dim(), n_rows = rows.rows();
  const char* caller = "mdl_metrics()";
  sae::detail::require(n_rows > 0, caller, rows.describe() + " has no rows to score");
  sae::detail::require(rows.input_dim() == d, caller,
                       rows.describe() + " has rows of " + std::to_string(rows.input_dim()) + " values, the SAE takes " +
                           std::to_string(d));
  sae::detail::require(!rows.has_targets(), caller, "the MDL eval decodes an autoencoder's own inputs; " + rows.describe() +
                                                        " has targets");
  sae::detail::require(batch_rows > 0, caller, "batch_rows must be positive");
  sae::detail::require(!config.num_bins_values.empty() && !config.k_values.empty(), caller,
                       "num_bins_values and k_values need at least one value each (k 0 is SAEBench's None)");
  for (index_t nb : config.num_bins_values) sae::detail::require(nb >= 1, caller, "every num_bins must be at least 1");
  for (index_t k : config.k_values)  // torch.topk refuses k > d_sae
    sae::detail::require(k >= 0 && k <= f, caller,
                         "k " + std::to_string(k) + " is not in [0, " + std::to_string(f) + "] (0 = None, at most d_sae)");
  const auto fs = static_cast<std::size_t>(f);

  Matrix<Scalar> x;
  const auto read_batch = [&](index_t first, index_t n) {
    const auto idx = data::row_range(first, n);
    rows.read_inputs(idx.data(), n, x);
    rows.release_rows(idx.data(), n);
    require_finite_rows(x, first, rows.describe(), caller);
  };
  // One pass over the rows in batches: f(first row, rows, their codes), then progress(pass, ...).
  const auto each_batch = [&](int pass, auto&& f) {
    for (index_t first = 0; first < n_rows; first += batch_rows) {
      const index_t n = std::min(batch_rows, n_rows - first);
      read_batch(first, n);
      f(n, model.encode(x));
      if (progress) progress(pass, first + n, n_rows);
    }
  };

  // Pass 1 (get_min_max_activations): max over rows of each latent's value, starting from 100.
  std::vector<Scalar> max_act(fs, static_cast<Scalar>(mdl::max_activation_floor));
  each_batch(1, [&](index_t n, const auto& codes) {
    for (index_t i = 0; i < n; ++i)
      for (index_t s = 0; s < codes.k; ++s) {
        const auto j = static_cast<std::size_t>(codes.row_indices(i)[s]);
        max_act[j] = std::max(max_act[j], codes.row_values(i)[s]);
      }
  });

  // build_bins for every num_bins: edges [F][num_bins + 1], and the histograms' counts [F][num_bins].
  const std::size_t sweeps = config.num_bins_values.size();
  std::vector<std::vector<Scalar>> edges(sweeps);
  std::vector<std::vector<std::int64_t>> counts(sweeps);
  // check_quantised_features_reach_mse_threshold decodes the dense quantised codes, where a latent
  // that is 0 becomes its first bin's midpoint m0 (bucketize puts 0 in bin 0). Decoding is affine,
  // so decode(q) = decode(q - m0) + (decode(m0) - decode(0)): the sparse part through the model's
  // own decode per batch, the constant once per num_bins.
  std::vector<std::vector<Scalar>> first_mid(sweeps);
  std::vector<Eigen::RowVectorXd> silent_offset(sweeps);
  for (std::size_t w = 0; w < sweeps; ++w) {
    const index_t nb = config.num_bins_values[w];
    edges[w].resize(fs * static_cast<std::size_t>(nb + 1));
    counts[w].assign(fs * static_cast<std::size_t>(nb), 0);
    first_mid[w].resize(fs);
    SparseCodes<Scalar> all, none;
    all.resize(1, f, f), none.resize(1, 1, f);
    none.indices[0] = 0, none.values[0] = Scalar(0);
    for (index_t j = 0; j < f; ++j) {
      const auto e = mdl::bin_edges(max_act[static_cast<std::size_t>(j)], nb);
      std::copy(e.begin(), e.end(), edges[w].begin() + j * (nb + 1));
      first_mid[w][static_cast<std::size_t>(j)] = mdl::bin_midpoint(e.data(), 0);
      all.indices[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(j);
      all.values[static_cast<std::size_t>(j)] = first_mid[w][static_cast<std::size_t>(j)];
    }
    silent_offset[w] = (model.decode(all).row(0).template cast<double>() - model.decode(none).row(0).template cast<double>());
  }

  // Pass 2: histograms (calculate_dl) and the quantised reconstructions' squared error.
  std::vector<std::int64_t> nonzero(fs, 0), active(fs, 0);
  std::vector<double> sse(sweeps * config.k_values.size(), 0.0);
  std::vector<index_t> order;
  each_batch(2, [&](index_t n, const auto& codes) {
    for (index_t i = 0; i < n; ++i)
      for (index_t s = 0; s < codes.k; ++s) {
        const Scalar v = codes.row_values(i)[s];
        if (v == Scalar(0)) continue;  // zeros go to bin 0 at the end, all at once
        const auto j = static_cast<std::size_t>(codes.row_indices(i)[s]);
        ++nonzero[j];
        if (v > Scalar(0)) ++active[j];
        for (std::size_t w = 0; w < sweeps; ++w) {
          const index_t nb = config.num_bins_values[w];
          const index_t b = mdl::histogram_bin(edges[w].data() + j * static_cast<std::size_t>(nb + 1), nb, v);
          if (b >= 0) ++counts[w][j * static_cast<std::size_t>(nb) + static_cast<std::size_t>(b)];
        }
      }
    for (std::size_t kk = 0; kk < config.k_values.size(); ++kk) {
      SparseCodes<Scalar> kept = codes;
      if (config.k_values[kk] > 0) mdl::keep_top_k(kept, config.k_values[kk], order);  // TopK(k) before quantising
      SparseCodes<Scalar> delta = kept;
      for (std::size_t w = 0; w < sweeps; ++w) {
        const index_t nb = config.num_bins_values[w];
        for (std::size_t q = 0; q < kept.values.size(); ++q) {
          const auto j = static_cast<std::size_t>(kept.indices[q]);
          const Scalar* e = edges[w].data() + j * static_cast<std::size_t>(nb + 1);
          // quantize_features_to_bin_midpoints, less the silent value m0 that the offset carries.
          delta.values[q] = kept.values[q] == Scalar(0) ? Scalar(0)
                                                        : mdl::bin_midpoint(e, mdl::quantize_bin(e, nb, kept.values[q])) -
                                                              first_mid[w][j];
        }
        const Matrix<Scalar> x_hat = model.decode(delta);
        double s = 0;
        for (index_t i = 0; i < n; ++i)
          s += (x_hat.row(i).template cast<double>() + silent_offset[w] - x.row(i).template cast<double>()).squaredNorm();
        sse[w * config.k_values.size() + kk] += s;
      }
    }
  });

  MdlMetrics m;
  m.rows = n_rows;
  m.max_activation.assign(max_act.begin(), max_act.end());
  for (Scalar v : max_act) m.latents_above_floor += static_cast<double>(v) > mdl::max_activation_floor;
  m.active_fraction.resize(fs);
  // bool_prob_F = (feature_activations_BsF > 0).float().mean(dim=0)
  for (std::size_t j = 0; j < fs; ++j) m.active_fraction[j] = static_cast<double>(active[j]) / static_cast<double>(n_rows);
  for (std::size_t w = 0; w < sweeps; ++w) {
    const index_t nb = config.num_bins_values[w];
    // total_entropy_F = bool_entropy_F + bool_prob_F * float_entropy_F; description_length = its sum.
    // The histogram holds every row's value, the zeros too (in bin 0), not only the firing ones.
    double dl = 0;
    for (std::size_t j = 0; j < fs; ++j) {
      std::int64_t* c = counts[w].data() + j * static_cast<std::size_t>(nb);
      c[0] += n_rows - nonzero[j];
      dl += mdl::binary_entropy(m.active_fraction[j]) + m.active_fraction[j] * mdl::histogram_entropy(c, nb);
    }
    for (std::size_t kk = 0; kk < config.k_values.size(); ++kk) {
      MdlResult r;
      r.num_bins = nb, r.k = config.k_values[kk], r.description_length = dl;
      // mse_loss = sqrt(F.mse_loss(x_hat_q, x, reduction="mean")) / d_in; within_threshold = mse_loss < threshold.
      r.mse_loss = std::sqrt(sse[w * config.k_values.size() + kk] / (static_cast<double>(n_rows) * static_cast<double>(d))) /
                   static_cast<double>(d);
      r.within_threshold = r.mse_loss < config.mse_epsilon_threshold;
      m.results.push_back(r);
    }
  }
  return m;
}

}  // namespace sae::eval
