// BatchTopKAutoencoder: TopK's encoder and decoder, but training keeps the k x B largest
// activations of the whole batch instead of k per sample (Bussmann et al. 2024, "BatchTopK Sparse
// Autoencoders"; dictionary_learning's BatchTopKSAE), so a sample may use more or fewer than k
// latents. Inference needs no batch: a latent fires when its activation exceeds a threshold
// estimated during training (a running average of the smallest activation BatchTopK kept). The
// loss is the MSE (torch's F.mse_loss), as TopK's, so the same learning rate applies.
#pragma once

#include <sae/backend/cpu/batch_topk.hpp>
#include <sae/backend/cpu/sparse.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/fields.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/types.hpp>
#include <sae/io/json.hpp>
#include <sae/model/autoencoder_parameters.hpp>
#include <sae/model/cpu_dictionary.hpp>
#include <sae/model/model_concept.hpp>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

namespace sae {

namespace detail {
// The inference threshold of the BatchTopK models (BatchTopK, Matryoshka): a running average of
// the smallest activation BatchTopK kept per training batch. The first batch sets it, later ones
// move it by (1 - beta); negative means "no batch seen yet" (encode() then keeps every positive
// activation). Checkpoints keep it as state.
template <class Scalar>
class BatchThreshold {
 public:
  Scalar threshold() const { return threshold_; }
  void set_threshold(Scalar t) { threshold_ = t; }
  io::Json state_to_json() const {
    io::Json j = io::Json::object();
    j["threshold"] = static_cast<double>(threshold_);
    return j;
  }
  void state_from_json(const io::Json& j) { threshold_ = static_cast<Scalar>(j.at("threshold").as_number()); }

 protected:
  void track(Scalar smallest_kept, double beta) {
    const auto b = static_cast<Scalar>(beta);
    threshold_ = threshold_ < Scalar(0) ? smallest_kept : b * threshold_ + (Scalar(1) - b) * smallest_kept;
  }

 private:
  Scalar threshold_ = Scalar(-1);
};
}  // namespace detail

struct BatchTopKConfig {
  index_t input_dim = 0;    // D
  index_t num_latents = 0;  // F
  index_t k = 0;            // mean latents per sample: a batch of B keeps k x B activations
  double threshold_beta = 0.99;  // running-average weight of the inference threshold
  bool decoder_bias = false;
  std::uint64_t seed = 0;
  bool tied_init = false;  // initialise W_enc to W_dec

  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.input_dim, field("input_dim", "input width D (from the data)").at_least(1).needed().no_flag());
    v(c.num_latents, field("num_latents", "dictionary size F").at_least(1).needed().flag_name("latents"));
    v(c.k, field("k", "mean latents per sample: a batch of B keeps k x B activations").at_least(1).needed().flag_name("k,topk"));
    v(c.threshold_beta, field("threshold_beta", "running-average weight of the inference threshold").at_least(0).below(1));
    v(c.decoder_bias, field("decoder_bias", "learn a decoder bias (also subtracted before encoding)"));
    v(c.seed, field("seed", "seed for initialisation"));
    v(c.tied_init, field("tied_init", "initialise the encoder to the decoder's transpose"));
  }

  void validate(const char* caller) const {
    detail::require(input_dim > 0, caller, "input_dim must be positive, got " + std::to_string(input_dim));
    detail::require(num_latents > 0, caller, "num_latents must be positive, got " + std::to_string(num_latents));
    detail::require(k >= 1 && k <= num_latents, caller,
                    "k must be in [1, num_latents=" + std::to_string(num_latents) + "], got " + std::to_string(k));
    detail::require(threshold_beta >= 0 && threshold_beta < 1, caller,
                    "threshold_beta must be in [0, 1), got " + std::to_string(threshold_beta));
  }
};

template <class Scalar>
struct BatchTopKWorkspace {
  Matrix<Scalar> x_in, pre, x_hat, g;
  SparseCodes<Scalar> codes;
  ops::LatentMajor groups;
  std::vector<Scalar> dcode;
  ops::EncoderGemmScratch gemm;
};

template <class Scalar, class Backend = cpu>
class BatchTopKAutoencoder : public AutoencoderSlots<BatchTopKConfig>,
                             public detail::CpuDictionary<Scalar>,
                             public detail::BatchThreshold<Scalar> {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "BatchTopKAutoencoder<Scalar>: Scalar must be float or double");
  static_assert(std::is_same_v<Backend, cpu>, "BatchTopKAutoencoder has CPU kernels only");
  using Base = detail::CpuDictionary<Scalar>;
  using Base::p_;

 public:
  using scalar_type = Scalar;
  using backend_type = Backend;
  using Parameters = AutoencoderParameters<Scalar>;
  using Gradients = AutoencoderGradients<Scalar>;
  using Workspace = BatchTopKWorkspace<Scalar>;

  explicit BatchTopKAutoencoder(const BatchTopKConfig& config) : BatchTopKAutoencoder(config, fresh_parameters(config)) {}

  // A model from stored parameters (checkpoints); shapes are checked against the config.
  BatchTopKAutoencoder(const BatchTopKConfig& config, Parameters params)
      : Base(std::move(params), validated(config).input_dim, config.num_latents, config.decoder_bias, "BatchTopKAutoencoder"),
        config_(config) {}

  // Checkpoint hooks (model/checkpoint.hpp); the threshold is the state (BatchThreshold).
  static constexpr const char* architecture = "batchtopk";
  const BatchTopKConfig& config() const { return config_; }
  index_t input_dim() const { return config_.input_dim; }
  index_t num_latents() const { return config_.num_latents; }
  index_t k() const { return config_.k; }

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

  Matrix<Scalar> decode(const SparseCodes<Scalar>& codes) const { return this->decode_codes(codes); }

  Matrix<Scalar> forward(const Matrix<Scalar>& x) const { return decode(encode(x)); }

  // Forward and hand-written backward for one batch with BatchTopK selection: TopK's sparse
  // backward over this batch's codes (padded per sample). Also moves the inference threshold
  // toward this batch's smallest kept activation, so it is not const.
  StepLoss loss_and_gradient(const Matrix<Scalar>& x, Gradients& grad, Workspace& ws) {
    const Matrix<Scalar>& x_in = this->preactivations(x, ws);
    this->track(batch_topk(Backend{}, ws.pre, config_.k * x.rows(), ws.codes), config_.threshold_beta);
    const double n = static_cast<double>(x.rows()) * static_cast<double>(x.cols());
    const double sse = decode_with_code_gradients(Backend{}, ws.codes, p_.w_dec, this->decoder_bias(), x,
                                                       static_cast<Scalar>(2.0 / n), ws.x_hat, ws.g, ws.dcode);
    sparse_weight_gradients(Backend{}, ws.codes, ws.g, x_in, ws.groups, ws.dcode, grad.w_enc, grad.b_enc, grad.w_dec);
    if (config_.decoder_bias) decoder_bias_gradient(Backend{}, ws.g, ws.codes, ws.dcode, p_.w_enc, grad.b_dec);
    else grad.b_dec.resize(0);
    const double mse = sse / n;
    return {mse, mse};
  }

  template <class Fn>
  void for_each_parameter(const Gradients& g, Fn&& fn) {
    this->visit_shared_slots(g, fn);
  }

 private:
  static const BatchTopKConfig& validated(const BatchTopKConfig& c) {
    c.validate("BatchTopKAutoencoder");
    return c;
  }
  static Parameters fresh_parameters(const BatchTopKConfig& config) {
    const BatchTopKConfig& c = validated(config);  // before anything is allocated
    return detail::init_parameters<Scalar>(c.input_dim, c.num_latents, c.decoder_bias, c.seed, c.tied_init);
  }

  BatchTopKConfig config_;
};

}  // namespace sae
