// BatchTopKAutoencoder: TopK's encoder and decoder, but training keeps the k x B largest
// activations of the whole batch instead of k per sample (Bussmann et al. 2024, "BatchTopK Sparse
// Autoencoders"; dictionary_learning's BatchTopKSAE), so a sample may use more or fewer than k
// latents. Inference needs no batch: a latent fires when its activation exceeds a threshold
// estimated during training (a running average of the smallest activation BatchTopK kept). The
// loss is the MSE (torch's F.mse_loss), as TopK's, so the same learning rate applies.
#pragma once

#include <sae/backend/cpu/batch_topk.hpp>
#include <sae/backend/cpu/encoder_gemm.hpp>
#include <sae/backend/cpu/rows.hpp>
#include <sae/backend/cpu/sparse.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/types.hpp>
#include <sae/io/json.hpp>
#include <sae/model/autoencoder_parameters.hpp>
#include <sae/model/model_concept.hpp>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

namespace sae {

namespace detail {
// The inference threshold's running average: the first batch sets it, later batches move it by
// (1 - beta) toward their smallest kept activation. Negative means "no batch seen yet".
template <class Scalar>
Scalar tracked_threshold(Scalar threshold, Scalar smallest_kept, double beta) {
  const auto b = static_cast<Scalar>(beta);
  return threshold < Scalar(0) ? smallest_kept : b * threshold + (Scalar(1) - b) * smallest_kept;
}
}  // namespace detail

struct BatchTopKConfig {
  index_t input_dim = 0;    // D
  index_t num_latents = 0;  // F
  index_t k = 0;            // mean latents per sample: a batch of B keeps k x B activations
  double threshold_beta = 0.99;  // running-average weight of the inference threshold
  bool decoder_bias = false;
  std::uint64_t seed = 0;
  bool tied_init = false;  // initialise W_enc to W_dec

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
class BatchTopKAutoencoder : public AutoencoderSlots<BatchTopKConfig> {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "BatchTopKAutoencoder<Scalar>: Scalar must be float or double");
  static_assert(std::is_same_v<Backend, cpu>, "BatchTopKAutoencoder has CPU kernels only");

 public:
  using scalar_type = Scalar;
  using backend_type = Backend;
  using Parameters = AutoencoderParameters<Scalar>;
  using Gradients = AutoencoderGradients<Scalar>;
  using Workspace = BatchTopKWorkspace<Scalar>;

  explicit BatchTopKAutoencoder(const BatchTopKConfig& config)
      : config_(validated(config)),
        p_(detail::init_parameters<Scalar>(config_.input_dim, config_.num_latents, config_.decoder_bias, config_.seed,
                                           config_.tied_init)) {}

  // A model from stored parameters (checkpoints); shapes are checked against the config.
  BatchTopKAutoencoder(const BatchTopKConfig& config, Parameters params) : config_(validated(config)), p_(std::move(params)) {
    detail::check_parameter_shapes(p_, config_.input_dim, config_.num_latents, config_.decoder_bias, "BatchTopKAutoencoder");
  }

  // Checkpoint hooks (model/checkpoint.hpp): the threshold is state beyond the parameters.
  static constexpr const char* architecture = "batchtopk";
  static io::Json config_to_json(const Config& c) {
    io::Json j = io::Json::object();
    j["input_dim"] = c.input_dim;
    j["num_latents"] = c.num_latents;
    j["k"] = c.k;
    j["threshold_beta"] = c.threshold_beta;
    j["decoder_bias"] = c.decoder_bias;
    j["seed"] = std::to_string(c.seed);
    j["tied_init"] = c.tied_init;
    return j;
  }
  static Config config_from_json(const io::Json& j, const std::string& source) {
    try {
      Config c;
      c.input_dim = j.at("input_dim").as_int();
      c.num_latents = j.at("num_latents").as_int();
      c.k = j.at("k").as_int();
      c.threshold_beta = j.at("threshold_beta").as_number();
      c.decoder_bias = j.at("decoder_bias").as_bool();
      c.seed = std::stoull(j.at("seed").as_string());
      c.tied_init = j.at("tied_init").as_bool();
      c.validate("checkpoint config");
      return c;
    } catch (const io_error&) {
      throw;
    } catch (const std::exception& e) {
      throw io_error(source, e.what());
    }
  }
  io::Json state_to_json() const {
    io::Json j = io::Json::object();
    j["threshold"] = static_cast<double>(threshold_);
    return j;
  }
  void state_from_json(const io::Json& j) { threshold_ = static_cast<Scalar>(j.at("threshold").as_number()); }

  const BatchTopKConfig& config() const { return config_; }
  const Parameters& parameters() const { return p_; }
  Parameters& parameters() {
    decoder_normalized_ = false;  // the caller may change the weights
    packing_.invalidate();
    return p_;
  }
  index_t input_dim() const { return config_.input_dim; }
  index_t num_latents() const { return config_.num_latents; }
  index_t k() const { return config_.k; }

  // The inference threshold; negative until the first training step (then encode() keeps every
  // positive activation).
  Scalar threshold() const { return threshold_; }
  void set_threshold(Scalar t) { threshold_ = t; }

  // Per-sample codes: every latent whose activation exceeds the threshold.
  SparseCodes<Scalar> encode(const Matrix<Scalar>& x) const {
    Workspace ws;
    preactivations(x, ws);
    ops::threshold_select(Backend{}, ws.pre, threshold_, ws.codes);
    return std::move(ws.codes);
  }

  // The training-time selection: the k x rows(x) largest activations of x taken as one batch.
  SparseCodes<Scalar> encode_batch(const Matrix<Scalar>& x) const {
    Workspace ws;
    preactivations(x, ws);
    ops::batch_topk(Backend{}, ws.pre, config_.k * x.rows(), ws.codes);
    return std::move(ws.codes);
  }

  Matrix<Scalar> decode(const SparseCodes<Scalar>& codes) const {
    detail::require(codes.num_latents == config_.num_latents, "decode()",
                    "codes have " + std::to_string(codes.num_latents) + " latents, model has " +
                        std::to_string(config_.num_latents));
    Matrix<Scalar> x_hat;
    ops::sparse_decode(Backend{}, codes, p_.w_dec, config_.decoder_bias ? &p_.b_dec : nullptr, x_hat);
    return x_hat;
  }

  Matrix<Scalar> forward(const Matrix<Scalar>& x) const { return decode(encode(x)); }

  // Forward and hand-written backward for one batch with BatchTopK selection: TopK's sparse
  // backward over this batch's codes (padded per sample). Also moves the inference threshold
  // toward this batch's smallest kept activation, so it is not const.
  StepLoss loss_and_gradient(const Matrix<Scalar>& x, Gradients& grad, Workspace& ws) {
    const Matrix<Scalar>& x_in = preactivations(x, ws);
    threshold_ = detail::tracked_threshold(threshold_, ops::batch_topk(Backend{}, ws.pre, config_.k * x.rows(), ws.codes),
                                           config_.threshold_beta);
    const double n = static_cast<double>(x.rows()) * static_cast<double>(x.cols());
    const Vector<Scalar>* b_dec = config_.decoder_bias ? &p_.b_dec : nullptr;
    const double sse = ops::decode_with_code_gradients(Backend{}, ws.codes, p_.w_dec, b_dec, x, static_cast<Scalar>(2.0 / n),
                                                       ws.x_hat, ws.g, ws.dcode);
    ops::sparse_weight_gradients(Backend{}, ws.codes, ws.g, x_in, ws.groups, ws.dcode, grad.w_enc, grad.b_enc, grad.w_dec);
    if (config_.decoder_bias) ops::decoder_bias_gradient(Backend{}, ws.g, ws.codes, ws.dcode, p_.w_enc, grad.b_dec);
    else grad.b_dec.resize(0);
    const double mse = sse / n;
    return {mse, mse};
  }

  // A no-op right after an optimizer step that already applied the unit-norm row constraint.
  void normalize_decoder() {
    if (!std::exchange(decoder_normalized_, false)) ops::normalize_rows(Backend{}, p_.w_dec);
  }

  template <class Fn>
  void for_each_parameter(const Gradients& g, Fn&& fn) {
    decoder_normalized_ = detail::visit_parameters(p_, g, config_.decoder_bias, fn, packing_.hook(p_.w_enc));
    packing_.updated(decoder_normalized_);
  }

 private:
  static const BatchTopKConfig& validated(const BatchTopKConfig& c) {
    c.validate("BatchTopKAutoencoder");
    return c;
  }

  const Matrix<Scalar>& preactivations(const Matrix<Scalar>& x, Workspace& ws) const {
    return detail::encoder_preactivations<Scalar, Backend>(p_, config_.decoder_bias, x, ws.x_in, ws.pre,
                                                           EncoderPrecision::fp32, ws.gemm, packing_.packed());
  }

  BatchTopKConfig config_;
  Parameters p_;
  detail::EncoderPacking<Scalar> packing_;
  bool decoder_normalized_ = false;  // the last optimizer step left w_dec's rows at unit norm
  Scalar threshold_ = Scalar(-1);
};

}  // namespace sae
