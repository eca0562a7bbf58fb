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
#include <sae/model/cpu_dictionary.hpp>
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

template <class Scalar>
struct MatryoshkaWorkspace {
  Matrix<Scalar> x_in, pre;
  SparseCodes<Scalar> codes;
  std::vector<Matrix<Scalar>> prefix;  // per group: residual x_hat_m - x, then dL/dx_hat for that group's latents
  ops::LatentMajor groups;
  std::vector<Scalar> dcode;
  ops::EncoderGemmScratch gemm;
};

template <class Scalar, class Backend = cpu>
class MatryoshkaAutoencoder : public AutoencoderSlots<MatryoshkaConfig>,
                              public detail::CpuDictionary<Scalar>,
                              public detail::BatchThreshold<Scalar> {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "MatryoshkaAutoencoder<Scalar>: Scalar must be float or double");
  static_assert(std::is_same_v<Backend, cpu>, "MatryoshkaAutoencoder has CPU kernels only");
  using Base = detail::CpuDictionary<Scalar>;
  using Base::p_;

 public:
  using scalar_type = Scalar;
  using backend_type = Backend;
  using Parameters = AutoencoderParameters<Scalar>;
  using Gradients = AutoencoderGradients<Scalar>;
  using Workspace = MatryoshkaWorkspace<Scalar>;

  explicit MatryoshkaAutoencoder(const MatryoshkaConfig& config) : MatryoshkaAutoencoder(config, fresh_parameters(config)) {}

  // A model from stored parameters (checkpoints); shapes are checked against the config.
  MatryoshkaAutoencoder(const MatryoshkaConfig& config, Parameters params)
      : Base(std::move(params), completed(config).input_dim, config.num_latents, config.decoder_bias, "MatryoshkaAutoencoder"),
        config_(completed(config)) {
    index_t end = 0;
    for (std::size_t g = 0; g < config_.group_sizes.size(); ++g) {
      group_of_.insert(group_of_.end(), static_cast<std::size_t>(config_.group_sizes[g]), static_cast<std::int32_t>(g));
      group_end_.push_back(end += config_.group_sizes[g]);
    }
  }

  // For checkpoints (model/checkpoint.hpp; the slots come from AutoencoderSlots): the
  // architecture's name and its config as JSON; the threshold is the state (BatchThreshold).
  static constexpr const char* architecture = "matryoshka";
  const MatryoshkaConfig& config() const { return config_; }
  index_t input_dim() const { return config_.input_dim; }
  index_t num_latents() const { return config_.num_latents; }
  index_t k() const { return config_.k; }
  index_t num_groups() const { return static_cast<index_t>(group_end_.size()); }
  // One past the last latent of groups 1..m (m >= 1).
  index_t prefix_end(index_t m) const { return group_end_[static_cast<std::size_t>(m - 1)]; }

  // Per-sample codes: every latent whose activation exceeds the threshold.
  SparseCodes<Scalar> encode(const Matrix<Scalar>& x) const {
    Workspace ws;
    this->preactivations(x, ws);
    threshold_select(Backend{}, ws.pre, this->threshold(), ws.codes);
    return std::move(ws.codes);
  }

  // The training-time selection: the k x rows(x) largest activations of x taken as one batch.
  SparseCodes<Scalar> encode_batch(const Matrix<Scalar>& x) const {
    Workspace ws;
    this->preactivations(x, ws);
    batch_topk(Backend{}, ws.pre, config_.k * x.rows(), ws.codes);
    return std::move(ws.codes);
  }

  Matrix<Scalar> decode(const SparseCodes<Scalar>& codes) const { return decode_prefix(codes, num_groups()); }

  // Reconstruction from groups 1..m only.
  Matrix<Scalar> decode_prefix(SparseCodes<Scalar> codes, index_t m) const {
    detail::require(m >= 1 && m <= num_groups(), "decode_prefix()",
                    "m must be in [1, " + std::to_string(num_groups()) + "], got " + std::to_string(m));
    for (std::size_t e = 0; e < codes.values.size(); ++e)
      if (codes.indices[e] >= prefix_end(m)) codes.values[e] = Scalar(0);
    return this->decode_codes(codes);
  }

  Matrix<Scalar> forward(const Matrix<Scalar>& x) const { return decode(encode(x)); }

  // Forward and hand-written backward for one batch with BatchTopK selection; returns the
  // Matryoshka loss (mean over the nested prefixes) and the full model's MSE, and fills `grad`.
  // Also moves the inference threshold toward this batch's smallest kept activation, so it is not
  // const.
  StepLoss loss_and_gradient(const Matrix<Scalar>& x, Gradients& grad, Workspace& ws) {
    const Matrix<Scalar>& x_in = this->preactivations(x, ws);
    this->track(batch_topk(Backend{}, ws.pre, config_.k * x.rows(), ws.codes), config_.threshold_beta);

    const index_t rows = x.rows(), d = x.cols(), groups = num_groups();
    prefix_residuals(Backend{}, ws.codes, x, p_.w_dec, config_.decoder_bias ? &p_.b_dec : nullptr, group_end_, ws.prefix);
    const double n = static_cast<double>(rows) * static_cast<double>(d);
    double loss = 0;
    for (const auto& r : ws.prefix) loss += r.template cast<double>().squaredNorm() / n;
    const double reconstruction_mse = ws.prefix.back().template cast<double>().squaredNorm() / n;
    loss /= static_cast<double>(groups);

    // A latent of group g reaches every prefix m >= g: its upstream gradient is the suffix sum.
    const auto scale = static_cast<Scalar>(2.0 / (n * static_cast<double>(groups)));
    ws.prefix.back() *= scale;
    for (index_t m = groups - 2; m >= 0; --m) {
      auto& r = ws.prefix[static_cast<std::size_t>(m)];
      r = r * scale + ws.prefix[static_cast<std::size_t>(m + 1)];
    }
    const auto upstream = [&](index_t i, std::int32_t j) {
      return ws.prefix[static_cast<std::size_t>(group_of_[static_cast<std::size_t>(j)])].row(i);
    };
    sparse_backward_per_latent(Backend{}, ws.codes, upstream, x_in, p_.w_dec, ws.groups, ws.dcode, grad.w_enc,
                         grad.b_enc, grad.w_dec);
    if (config_.decoder_bias)
      decoder_bias_gradient(Backend{}, ws.prefix.front(), ws.codes, ws.dcode, p_.w_enc,
                                            grad.b_dec);
    else
      grad.b_dec.resize(0);
    return {static_cast<double>(static_cast<Scalar>(loss)), reconstruction_mse};
  }

  template <class Fn>
  void for_each_parameter(const Gradients& g, Fn&& fn) {
    this->visit_shared_slots(g, fn);
  }

 private:
  static Parameters fresh_parameters(const MatryoshkaConfig& config) {
    const MatryoshkaConfig c = completed(config);  // validated before anything is allocated
    return detail::init_parameters<Scalar>(c.input_dim, c.num_latents, c.decoder_bias, c.seed);
  }

  static MatryoshkaConfig completed(MatryoshkaConfig c) {
    c.validate("MatryoshkaAutoencoder");
    if (c.group_sizes.empty()) c.group_sizes = default_matryoshka_groups(c.num_latents);
    return c;
  }

  MatryoshkaConfig config_;
  std::vector<std::int32_t> group_of_;  // [F] group of each latent
  std::vector<index_t> group_end_;      // cumulative group ends
};

}  // namespace sae
