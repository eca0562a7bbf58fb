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
#include <sae/model/dictionary.hpp>
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

namespace arch {

// The ops the BatchTopK selections need: the k x B largest activations of a batch, and every
// activation above one threshold.
template <class B, class Sc>
using batch_topk_op = decltype(batch_topk(B{}, std::declval<const typename storage<B, Sc>::matrix&>(), index_t{},
                                          std::declval<typename storage<B, Sc>::codes&>()));
template <class B, class Sc>
using threshold_select_op = decltype(threshold_select(B{}, std::declval<const typename storage<B, Sc>::matrix&>(), Sc{},
                                                      std::declval<typename storage<B, Sc>::codes&>()));

// The selection BatchTopK and Matryoshka share: training keeps the k x B largest activations of the
// batch and tracks the inference threshold; inference keeps every activation above it.
template <class Scalar, class Backend, class Config>
class BatchTopKSelection : public Base<Scalar, Backend, Config>, public detail::BatchThreshold<Scalar> {
  static_assert(has_op<batch_topk_op, Backend, Scalar>, "BatchTopK selection needs the op 'batch_topk', which this backend lacks");
  static_assert(has_op<threshold_select_op, Backend, Scalar>,
                "BatchTopK selection needs the op 'threshold_select', which this backend lacks");

 public:
  index_t k() const { return this->config().k; }

 protected:
  using Base<Scalar, Backend, Config>::Base;

  template <class Workspace>
  void select(Workspace& ws, bool batch) const {
    if (batch) batch_topk(Backend{}, ws.pre, this->config().k * ws.pre.rows(), ws.codes);
    else threshold_select(Backend{}, ws.pre, this->threshold(), ws.codes);
  }
  template <class Workspace>
  void select_for_training(Workspace& ws) {
    this->track(batch_topk(Backend{}, ws.pre, this->config().k * ws.pre.rows(), ws.codes), this->config().threshold_beta);
  }
};

// BatchTopK's policy: that selection and the MSE.
template <class Scalar, class Backend>
class BatchTopK : public BatchTopKSelection<Scalar, Backend, BatchTopKConfig> {
 public:
  static constexpr const char* architecture = "batchtopk";
  static constexpr const char* class_name = "BatchTopKAutoencoder";

 protected:
  explicit BatchTopK(const BatchTopKConfig& c) : BatchTopKSelection<Scalar, Backend, BatchTopKConfig>(validated(c)) {}

 private:
  static const BatchTopKConfig& validated(const BatchTopKConfig& c) {
    c.validate(class_name);
    return c;
  }
};

}  // namespace arch

// The checkpoint's state is the inference threshold (BatchThreshold).
template <class Scalar, class Backend = cpu>
using BatchTopKAutoencoder = Dictionary<Scalar, Backend, arch::BatchTopK>;

}  // namespace sae
