// The one dictionary skeleton every architecture is (STYLE.md, "variants as policies"):
//
//   pre = W_enc x_in + b_enc        x_in = x, or x - b_dec with the decoder bias
//   codes = select(pre)             the architecture's selection (TopK, BatchTopK, thresholds, ...)
//   x_hat = W_dec^T codes (+ b_dec) unit-norm decoder rows
//   loss = reconstruction + terms   MSE by default (Matryoshka: nested prefixes); AuxK, L0, ...
//
// Dictionary<Scalar, Backend, Architecture> holds the parameters where the backend computes, W_enc
// packed for the encoder GEMM (repacked by the optimizer's row hooks), the decoder's unit norm and
// the optimizer's visit of the slots; it derives from Architecture<Scalar, Backend>, the policy
// that names the config, the selection, the loss terms and any state or extra slots (arch::Base
// has the defaults). Every kernel is an op found by argument-dependent lookup where the model is
// instantiated; a backend that lacks one fails to compile with a static_assert naming it.
// A new architecture is one policy header, its ops, one line in model/registry.hpp, and tests.
#pragma once

#include <sae/backend/cpu/encoder_gemm.hpp>
#include <sae/backend/cpu/rows.hpp>
#include <sae/backend/cpu/sparse.hpp>
#include <sae/backend/cpu/storage.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/encoder_precision.hpp>
#include <sae/core/error.hpp>
#include <sae/core/row_hooks.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/types.hpp>
#include <sae/data/row_source.hpp>
#include <sae/data/row_statistics.hpp>
#include <sae/model/autoencoder_parameters.hpp>
#include <sae/model/model_concept.hpp>

#include <functional>
#include <string>
#include <type_traits>
#include <utility>

namespace sae {

// The ops every dictionary needs of its backend (each architecture checks its own the same way).
namespace dictionary_ops {
template <class B, class S>
using matrix = typename storage<B, S>::matrix;
template <class B, class S>
using encoder = decltype(encoder_preactivations(B{}, std::declval<const matrix<B, S>&>(), std::declval<const matrix<B, S>&>(),
                                                std::declval<const typename storage<B, S>::vector&>(),
                                                std::declval<matrix<B, S>&>(), EncoderPrecision::fp32,
                                                std::declval<typename storage<B, S>::encoder_scratch&>(),
                                                std::declval<const typename storage<B, S>::packed_encoder*>()));
template <class B, class S>
using decode = decltype(sparse_decode(B{}, std::declval<const typename storage<B, S>::codes&>(),
                                      std::declval<const matrix<B, S>&>(),
                                      std::declval<const typename storage<B, S>::vector*>(), std::declval<matrix<B, S>&>()));
template <class B, class S>
using decode_backward =
    decltype(decode_with_code_gradients(B{}, std::declval<const typename storage<B, S>::codes&>(),
                                        std::declval<const matrix<B, S>&>(), std::declval<const typename storage<B, S>::vector*>(),
                                        std::declval<const matrix<B, S>&>(), S{}, std::declval<matrix<B, S>&>(),
                                        std::declval<matrix<B, S>&>(), std::declval<typename storage<B, S>::code_gradients&>()));
template <class B, class S>
using weight_gradients = decltype(sparse_weight_gradients(
    B{}, std::declval<const typename storage<B, S>::codes&>(), std::declval<const matrix<B, S>&>(),
    std::declval<const matrix<B, S>&>(), std::declval<typename storage<B, S>::latent_groups&>(),
    std::declval<const typename storage<B, S>::code_gradients&>(), std::declval<typename storage<B, S>::row_gradient&>(),
    std::declval<typename storage<B, S>::vector_gradient&>(), std::declval<typename storage<B, S>::row_gradient&>()));
template <class B, class S>
using unit_rows = decltype(normalize_rows(B{}, std::declval<matrix<B, S>&>()));
}  // namespace dictionary_ops

// Buffers a dictionary reuses across steps, so training allocates only on the first batch, kept where
// the backend computes; `extra` is the architecture's own (AuxK's, the thresholds' band, ...).
// `x` holds the batch on a device backend (the CPU reads the caller's).
template <class Scalar, class Backend, class Extra>
struct DictionaryWorkspace {
  using S = storage<Backend, Scalar>;
  typename S::matrix x, y, x_in, pre, x_hat, g;  // y: distinct targets, when a step has them
  typename S::codes codes;
  typename S::latent_groups groups;
  typename S::code_gradients dcode;
  typename S::encoder_scratch gemm;
  Extra extra;
};

namespace arch {

// What an architecture policy provides, with the defaults most use. A policy derives from Base
// and replaces what differs (the hooks are found by name: the most derived one wins):
//   architecture, class_name           the checkpoint's name and the name errors carry
//   Config                             its config, with a field list (core/fields.hpp)
//   Parameters, Gradients, Scratch     AutoencoderParameters/-Gradients unless it has more slots
//   for_each_slot                      the named slots checkpoints store (AutoencoderSlots)
//   select(ws, batch) const            codes from ws.pre: inference, or (batch) the training-time selection
//   select_for_training(ws)            the same for a step, which may update state (BatchTopK's threshold)
//   reconstruction_loss(...)           the loss of x_hat and its gradients (MSE)
//   add_loss_terms(...)                terms beyond it, their gradients added to grad (none)
//   before_step, initialize_from_data, visit_extra_slots, encoder_precision, fresh_parameters
template <class Scalar, class Backend, class ConfigType>
class Base : public AutoencoderSlots<ConfigType> {
  using S = storage<Backend, Scalar>;

 public:
  using Config = ConfigType;
  using Parameters = AutoencoderParameters<Scalar>;  // on the host
  using Gradients = AutoencoderGradients<Scalar, Backend>;
  struct Scratch {};

  const Config& config() const { return config_; }
  index_t input_dim() const { return config_.input_dim; }
  index_t num_latents() const { return config_.num_latents; }

 protected:
  explicit Base(Config config) : config_(std::move(config)) {}

  EncoderPrecision encoder_precision() const { return EncoderPrecision::fp32; }

  // Initialised as detail::init_parameters describes (tied to the decoder when the config asks).
  static Parameters fresh_parameters(const Config& c) {
    bool tied = false;
    if constexpr (has_tied_init<Config>::value) tied = c.tied_init;
    return detail::init_parameters<Scalar>(c.input_dim, c.num_latents, c.decoder_bias, c.seed, tied);
  }

  template <class Model, class Workspace>
  void before_step(Model&, const Matrix<Scalar>&, Workspace&) {}
  template <class Model>
  void initialize_from_data(Model&, const data::RowSource<Scalar>&, const data::RowStatistics&, bool /*fresh*/) {}

  // MSE, the per-element mean over all B x D entries (torch's F.mse_loss): fills the weight
  // gradients, ws.x_hat and ws.g = dL/dx_hat = 2 (x_hat - x) / n. The MSE is rounded through
  // Scalar so training statistics stay bitwise what they were.
  template <class Stored, class Workspace>
  StepLoss reconstruction_loss(const Stored& p, const typename S::vector* b_dec, const typename S::matrix& x,
                               const typename S::matrix& x_in, Gradients& grad, Workspace& ws) {
    const double n = static_cast<double>(x.rows()) * static_cast<double>(x.cols());
    const auto sse = decode_with_code_gradients(Backend{}, ws.codes, p.w_dec, b_dec, x, static_cast<Scalar>(2.0 / n), ws.x_hat,
                                                ws.g, ws.dcode);
    sparse_weight_gradients(Backend{}, ws.codes, ws.g, x_in, ws.groups, ws.dcode, grad.w_enc, grad.b_enc, grad.w_dec);
    if constexpr (S::decoder_bias) {
      if (b_dec) decoder_bias_gradient(Backend{}, ws.g, ws.codes, ws.dcode, p.w_enc, grad.b_dec);
      else grad.b_dec.resize(0);
    }
    const auto mse = static_cast<double>(static_cast<Scalar>(resolve(Backend{}, sse) / n));
    return {mse, mse};
  }

  template <class Stored, class Workspace>
  double add_loss_terms(const Stored&, const typename S::vector*, const typename S::matrix&, const typename S::matrix&,
                        Gradients&, Workspace&) {
    return 0;
  }

  template <class Stored, class Fn>
  void visit_extra_slots(Stored&, const Gradients&, Fn&) {}

 private:
  template <class C, class = void>
  struct has_tied_init : std::false_type {};
  template <class C>
  struct has_tied_init<C, std::void_t<decltype(std::declval<const C&>().tied_init)>> : std::true_type {};

  Config config_;
};

}  // namespace arch

template <class Scalar, class Backend, template <class, class> class Architecture>
class Dictionary : public Architecture<Scalar, Backend> {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>, "sae dictionaries: Scalar must be float or double");
  static_assert(backend_available<Backend>::value,
                "this backend's kernels are not compiled in: for sae::cuda, include <sae/cuda.hpp> in a .cu file "
                "compiled by nvcc and link sae::cuda");
  static_assert(has_op<dictionary_ops::encoder, Backend, Scalar>, "this backend lacks the op 'encoder_preactivations'");
  static_assert(has_op<dictionary_ops::decode, Backend, Scalar>, "this backend lacks the op 'sparse_decode'");
  static_assert(has_op<dictionary_ops::decode_backward, Backend, Scalar>, "this backend lacks the op 'decode_with_code_gradients'");
  static_assert(has_op<dictionary_ops::weight_gradients, Backend, Scalar>, "this backend lacks the op 'sparse_weight_gradients'");
  static_assert(has_op<dictionary_ops::unit_rows, Backend, Scalar>, "this backend lacks the op 'normalize_rows'");
  using Arch = Architecture<Scalar, Backend>;
  using S = storage<Backend, Scalar>;
  friend Arch;  // its hooks reach the skeleton's parameters and pre-activations

 public:
  using scalar_type = Scalar;
  using backend_type = Backend;
  using Config = typename Arch::Config;
  using Parameters = typename Arch::Parameters;  // on the host
  using Gradients = typename Arch::Gradients;
  using Workspace = DictionaryWorkspace<Scalar, Backend, typename Arch::Scratch>;

  // A fresh model, initialised by the architecture (validated before anything is allocated).
  explicit Dictionary(const Config& config) : Arch(config), p_(Arch::fresh_parameters(this->config())), needs_data_init_(true) {}

  // A model from stored parameters (checkpoints); shapes are checked against the config.
  Dictionary(const Config& config, Parameters params) : Arch(config), p_(checked(this->config(), std::move(params))) {}

  // The parameters on the host (a device backend downloads them when they changed).
  const Parameters& parameters() const { return p_.host(); }
  // For editing the weights in place; host backends only (a device model's are read-only on the
  // host: edit a CPU model's, then construct the device model from them).
  template <class B = Backend, std::enable_if_t<storage<B, Scalar>::host_memory, int> = 0>
  Parameters& parameters() {
    decoder_normalized_ = false;  // the caller may change the weights
    packed_.fresh = false;
    return p_.stored_for_update();
  }

  // Per-sample codes of each row of x ([N, D]), as inference selects them.
  SparseCodes<Scalar> encode(const Matrix<Scalar>& x) const { return encode_rows(x, false); }
  // The training-time selection of x taken as one batch (BatchTopK: the k x N largest
  // activations), without a step's state updates.
  SparseCodes<Scalar> encode_batch(const Matrix<Scalar>& x) const { return encode_rows(x, true); }

  Matrix<Scalar> decode(const SparseCodes<Scalar>& codes) const {
    detail::require(codes.num_latents == this->num_latents(), "decode()",
                    "codes have " + std::to_string(codes.num_latents) + " latents, model has " +
                        std::to_string(this->num_latents()));
    Workspace ws;
    sparse_decode(Backend{}, stage(Backend{}, codes, ws.codes), p_.stored().w_dec, decoder_bias(), ws.x_hat);
    return to_host(Backend{}, std::move(ws.x_hat));
  }

  // Reconstruction of x.
  Matrix<Scalar> forward(const Matrix<Scalar>& x) const {
    Workspace ws;
    preactivations(stage(Backend{}, x, ws.x), ws);
    Arch::select(ws, false);
    sparse_decode(Backend{}, ws.codes, p_.stored().w_dec, decoder_bias(), ws.x_hat);
    return to_host(Backend{}, std::move(ws.x_hat));
  }

  // Forward and hand-written backward for one batch: the architecture's training selection, its
  // reconstruction loss and its further terms. Fills `grad`; ws.x_hat holds the reconstruction
  // (with the MSE). Not const: a step may move the architecture's state (thresholds, dead-latent counts).
  StepLoss loss_and_gradient(const Matrix<Scalar>& batch, Gradients& grad, Workspace& ws) {
    return loss_and_gradient(batch, nullptr, grad, ws);
  }
  // The same with distinct targets (rows of the same width; null: the batch is its own target, an
  // autoencoder). The losses and their gradients compare the reconstruction with the target.
  StepLoss loss_and_gradient(const Matrix<Scalar>& batch, const Matrix<Scalar>* target, Gradients& grad, Workspace& ws) {
    if (target)
      detail::require(target->rows() == batch.rows() && target->cols() == this->input_dim(), Arch::class_name,
                      "targets are [" + std::to_string(target->rows()) + ", " + std::to_string(target->cols()) +
                          "] for a batch of " + std::to_string(batch.rows()) + " rows; this model reconstructs " +
                          std::to_string(this->input_dim()) + " dimensions");
    Arch::before_step(*this, batch, ws);
    const auto& p = p_.stored();
    const auto& x = stage(Backend{}, batch, ws.x);
    const auto& y = target ? stage(Backend{}, *target, ws.y) : x;
    const auto& x_in = preactivations(x, ws);
    Arch::select_for_training(ws);
    StepLoss loss = Arch::reconstruction_loss(p, decoder_bias(), y, x_in, grad, ws);
    loss.loss += Arch::add_loss_terms(p, decoder_bias(), y, x_in, grad, ws);
    return loss;
  }

  // Data-dependent initialisation, which the trainer calls before the first step with the training
  // rows and their streamed statistics (a model from stored parameters keeps its parameters;
  // JumpReLU still measures the data's scale).
  void initialize_from_data(const data::RowSource<Scalar>& rows, const data::RowStatistics& stats) {
    if (rows.rows() == 0) return;
    Arch::initialize_from_data(*this, rows, stats, std::exchange(needs_data_init_, false));
  }
  void initialize_from_data(const Matrix<Scalar>& x) {
    if (x.size() == 0) return;
    const data::MatrixRows<Scalar> rows(x);
    initialize_from_data(rows, data::stream_statistics(rows));
  }

  // Scales each decoder row to unit L2 norm (a zero row is left as is). A no-op right after an
  // optimizer step that already applied the unit-norm row constraint.
  void normalize_decoder() {
    if (!std::exchange(decoder_normalized_, false)) normalize_rows(Backend{}, p_.stored_for_update().w_dec);
  }

  // Visits each parameter with its gradient: fn(slot, param, grad[, RowHooks]) with the backend's
  // storage types (on the CPU a Matrix& or Vector& with a RowSparse or dense Vector gradient), the
  // shared slots 0-3 and then the architecture's. Optimizers keep per-slot state. A visitor that
  // applies RowHooks also renormalises the decoder and, on the CPU, repacks W_enc for the next GEMM.
  template <class Fn>
  void for_each_parameter(const Gradients& g, Fn&& fn) {
    auto& p = p_.stored_for_update();
    std::function<void(index_t, index_t)> repack;
    if constexpr (S::packs_encoder) {
      ops::shape_packed_encoder(packed_, this->num_latents(), this->input_dim(), Arch::encoder_precision());
      repack = [this, &p](index_t begin, index_t end) { ops::pack_encoder_rows(p.w_enc, begin, end, packed_); };
    }
    const bool hooked = detail::visit_parameters(p, g, this->config().decoder_bias, fn, std::move(repack));
    Arch::visit_extra_slots(p, g, fn);
    decoder_normalized_ = hooked;
    if constexpr (S::packs_encoder) packed_.fresh = hooked;
  }

 private:
  SparseCodes<Scalar> encode_rows(const Matrix<Scalar>& x, bool batch) const {
    Workspace ws;
    preactivations(stage(Backend{}, x, ws.x), ws);
    Arch::select(ws, batch);
    return to_host(Backend{}, std::move(ws.codes));
  }

  // Fills ws.pre from x (in backend storage); returns the encoder's input (x, or x - b_dec in ws.x_in).
  const typename S::matrix& preactivations(const typename S::matrix& x, Workspace& ws) const {
    return detail::encoder_preactivations<Scalar, Backend>(p_.stored(), this->config().decoder_bias, x, ws.x_in, ws.pre,
                                                           Arch::encoder_precision(), ws.gemm,
                                                           S::packs_encoder ? &packed_ : nullptr);
  }

  const typename S::vector* decoder_bias() const {
    if constexpr (S::decoder_bias) return this->config().decoder_bias ? &p_.stored().b_dec : nullptr;
    else return nullptr;
  }

  // For the architecture's hooks: the parameters where the backend computes, and a note that W_enc
  // changed outside an optimizer step.
  auto& stored_for_update() {
    packed_.fresh = false;
    return p_.stored_for_update();
  }

  // Every named slot must have the shape the config implies, and b_dec be empty without the bias.
  static Parameters checked(const Config& c, Parameters p) {
    const auto shape = [](index_t r, index_t c) { return "[" + std::to_string(r) + ", " + std::to_string(c) + "]"; };
    Arch::for_each_slot(p, c, [&](const char* name, const auto& param, index_t rows, index_t cols) {
      using Param = std::decay_t<decltype(param)>;
      if constexpr (Param::ColsAtCompileTime == 1)
        detail::require(param.size() == rows, Arch::class_name,
                        std::string(name) + " has " + std::to_string(param.size()) + " entries, expected " + std::to_string(rows));
      else
        detail::require(param.rows() == rows && param.cols() == cols, Arch::class_name,
                        std::string(name) + " is " + shape(param.rows(), param.cols()) + ", expected " + shape(rows, cols));
    });
    detail::require(c.decoder_bias || p.b_dec.size() == 0, Arch::class_name,
                    "b_dec has " + std::to_string(p.b_dec.size()) + " entries, expected 0");
    return p;
  }

  ResidentParameters<Scalar, Backend, Parameters> p_;
  bool needs_data_init_ = false;       // fresh: initialize_from_data has yet to run
  bool decoder_normalized_ = false;    // the last optimizer step left w_dec's rows at unit norm
  typename S::packed_encoder packed_;  // W_enc for the encoder GEMM, repacked by the optimizer's hooks
};

}  // namespace sae
