// MatryoshkaAutoencoder: a BatchTopK SAE whose latents form nested groups (Bussmann et al. 2025;
// dictionary_learning's MatryoshkaBatchTopKSAE). Training keeps the k x B largest activations of
// the whole batch and minimises the mean over prefixes m of the MSE of x_hat_m, the
// reconstruction from groups 1..m only, so early groups must work on their own. Inference needs
// no batch: a latent fires when its activation exceeds a threshold estimated during training (a
// running average of the smallest activation BatchTopK kept).
//
// The loss is the per-element mean of each prefix's squared error (torch's F.mse_loss), averaged
// over prefixes: with one group it is exactly TopK's loss, so the same learning rate applies.
// No auxiliary dead-latent loss, as in the TopK model the reports train.
#pragma once

#include <sae/backend/cpu/batch_topk.hpp>
#include <sae/model/batch_topk_autoencoder.hpp>
#include <sae/model/dictionary.hpp>
#include <sae/backend/cpu/encoder_gemm.hpp>
#include <sae/backend/cpu/matryoshka.hpp>
#include <sae/backend/cpu/rows.hpp>
#include <sae/backend/cpu/sparse.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/fields.hpp>
#include <sae/core/types.hpp>
#include <sae/io/json.hpp>
#include <sae/model/autoencoder_parameters.hpp>
#include <sae/model/model_concept.hpp>
#include <sae/core/sparse_codes.hpp>

#include <cstdint>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace sae {

// The group sizes the issue and the paper use: F/16, F/16, F/8, F/4, F/2 (the last takes the
// remainder); empty groups (tiny F) are dropped.
inline std::vector<index_t> default_matryoshka_groups(index_t num_latents) {
  std::vector<index_t> sizes;
  index_t used = 0;
  for (index_t div : {16, 16, 8, 4}) {
    const index_t s = num_latents / div;
    if (s > 0) sizes.push_back(s), used += s;
  }
  if (num_latents - used > 0) sizes.push_back(num_latents - used);
  return sizes;
}

struct MatryoshkaConfig {
  index_t input_dim = 0;    // D
  index_t num_latents = 0;  // F
  index_t k = 0;            // mean latents per sample: a batch of B keeps k x B activations
  std::vector<index_t> group_sizes;  // nested groups in latent order; empty = default_matryoshka_groups(F)
  double threshold_beta = 0.99;      // running-average weight of the inference threshold
  bool decoder_bias = false;
  std::uint64_t seed = 0;

  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.input_dim, field("input_dim", "input width D (from the data)").at_least(1).needed().no_flag());
    v(c.num_latents, field("num_latents", "dictionary size F").at_least(1).needed().flag_name("latents"));
    v(c.k, field("k", "mean latents per sample: a batch of B keeps k x B activations").at_least(1).needed().flag_name("k,topk"));
    v(c.group_sizes, field("group_sizes", "nested groups in latent order (empty: the default split)").at_least(1).flag_name("groups"));
    v(c.threshold_beta, field("threshold_beta", "running-average weight of the inference threshold").at_least(0).below(1));
    v(c.decoder_bias, field("decoder_bias", "learn a decoder bias (also subtracted before encoding)"));
    v(c.seed, field("seed", "seed for initialisation"));
  }

  void validate(const char* caller) const {
    detail::require(input_dim > 0, caller, "input_dim must be positive, got " + std::to_string(input_dim));
    detail::require(num_latents > 0, caller, "num_latents must be positive, got " + std::to_string(num_latents));
    detail::require(k >= 1 && k <= num_latents, caller,
                    "k must be in [1, num_latents=" + std::to_string(num_latents) + "], got " + std::to_string(k));
    detail::require(threshold_beta >= 0 && threshold_beta < 1, caller,
                    "threshold_beta must be in [0, 1), got " + std::to_string(threshold_beta));
    index_t sum = 0;
    for (index_t s : group_sizes) {
      detail::require(s > 0, caller, "group sizes must be positive, got " + std::to_string(s));
      // Checked before adding, so sizes near 2^63 (a checkpoint may hold any 64-bit integer) cannot overflow.
      detail::require(s <= num_latents - sum, caller,
                      "group sizes sum to more than num_latents (" + std::to_string(num_latents) + ")");
      sum += s;
    }
    detail::require(group_sizes.empty() || sum == num_latents, caller,
                    "group sizes sum to " + std::to_string(sum) + " but num_latents is " + std::to_string(num_latents));
  }
};

namespace arch {

template <class B, class Sc>
using prefix_residuals_op = decltype(prefix_residuals(
    B{}, std::declval<const typename storage<B, Sc>::codes&>(), std::declval<const typename storage<B, Sc>::matrix&>(),
    std::declval<const typename storage<B, Sc>::matrix&>(), std::declval<const typename storage<B, Sc>::vector*>(),
    std::declval<const std::vector<index_t>&>(), std::declval<std::vector<typename storage<B, Sc>::matrix>&>()));

// Matryoshka's policy: BatchTopK's selection; the loss is the mean over the nested prefixes of
// their MSE, each prefix's residual reaching the latents of its groups.
template <class Scalar, class Backend>
class Matryoshka : public BatchTopKSelection<Scalar, Backend, MatryoshkaConfig> {
  static_assert(has_op<prefix_residuals_op, Backend, Scalar>, "Matryoshka needs the op 'prefix_residuals', which this backend lacks");
  using Parent = BatchTopKSelection<Scalar, Backend, MatryoshkaConfig>;
  using Model = Dictionary<Scalar, Backend, arch::Matryoshka>;

 public:
  static constexpr const char* architecture = "matryoshka";
  static constexpr const char* class_name = "MatryoshkaAutoencoder";
  using typename Parent::Gradients;
  struct Scratch {
    std::vector<Matrix<Scalar>> prefix;  // per group: residual x_hat_m - x, then dL/dx_hat for that group's latents
  };

  index_t num_groups() const { return static_cast<index_t>(group_end_.size()); }
  // One past the last latent of groups 1..m (m >= 1).
  index_t prefix_end(index_t m) const { return group_end_[static_cast<std::size_t>(m - 1)]; }

  // Reconstruction from groups 1..m only.
  Matrix<Scalar> decode_prefix(SparseCodes<Scalar> codes, index_t m) const {
    detail::require(m >= 1 && m <= num_groups(), "decode_prefix()",
                    "m must be in [1, " + std::to_string(num_groups()) + "], got " + std::to_string(m));
    for (std::size_t e = 0; e < codes.values.size(); ++e)
      if (codes.indices[e] >= prefix_end(m)) codes.values[e] = Scalar(0);
    return static_cast<const Model&>(*this).decode(codes);
  }

 protected:
  explicit Matryoshka(const MatryoshkaConfig& c) : Parent(completed(c)) {
    const MatryoshkaConfig& config = this->config();
    index_t end = 0;
    for (std::size_t g = 0; g < config.group_sizes.size(); ++g) {
      group_of_.insert(group_of_.end(), static_cast<std::size_t>(config.group_sizes[g]), static_cast<std::int32_t>(g));
      group_end_.push_back(end += config.group_sizes[g]);
    }
  }

  // The Matryoshka loss (mean over the nested prefixes, rounded through Scalar) and the full
  // model's MSE; fills `grad`.
  template <class Workspace>
  StepLoss reconstruction_loss(const AutoencoderParameters<Scalar>& p, const Vector<Scalar>* b_dec, const Matrix<Scalar>& x,
                               const Matrix<Scalar>& x_in, Gradients& grad, Workspace& ws) {
    auto& prefix = ws.extra.prefix;
    const index_t rows = x.rows(), d = x.cols(), groups = num_groups();
    prefix_residuals(Backend{}, ws.codes, x, p.w_dec, b_dec, group_end_, prefix);
    const double n = static_cast<double>(rows) * static_cast<double>(d);
    double loss = 0;
    for (const auto& r : prefix) loss += r.template cast<double>().squaredNorm() / n;
    const double reconstruction_mse = prefix.back().template cast<double>().squaredNorm() / n;
    loss /= static_cast<double>(groups);

    // A latent of group g reaches every prefix m >= g: its upstream gradient is the suffix sum.
    const auto scale = static_cast<Scalar>(2.0 / (n * static_cast<double>(groups)));
    prefix.back() *= scale;
    for (index_t m = groups - 2; m >= 0; --m) {
      auto& r = prefix[static_cast<std::size_t>(m)];
      r = r * scale + prefix[static_cast<std::size_t>(m + 1)];
    }
    const auto upstream = [&](index_t i, std::int32_t j) {
      return prefix[static_cast<std::size_t>(group_of_[static_cast<std::size_t>(j)])].row(i);
    };
    sparse_backward_per_latent(Backend{}, ws.codes, upstream, x_in, p.w_dec, ws.groups, ws.dcode, grad.w_enc, grad.b_enc,
                               grad.w_dec);
    if (b_dec) decoder_bias_gradient(Backend{}, prefix.front(), ws.codes, ws.dcode, p.w_enc, grad.b_dec);
    else grad.b_dec.resize(0);
    return {static_cast<double>(static_cast<Scalar>(loss)), reconstruction_mse};
  }

 private:
  // Validated, with the default groups filled in.
  static MatryoshkaConfig completed(MatryoshkaConfig c) {
    c.validate(class_name);
    if (c.group_sizes.empty()) c.group_sizes = default_matryoshka_groups(c.num_latents);
    return c;
  }

  std::vector<std::int32_t> group_of_;  // [F] group of each latent
  std::vector<index_t> group_end_;      // cumulative group ends
};

}  // namespace arch

// The checkpoint's state is the inference threshold (BatchThreshold).
template <class Scalar, class Backend = cpu>
using MatryoshkaAutoencoder = Dictionary<Scalar, Backend, arch::Matryoshka>;

}  // namespace sae
