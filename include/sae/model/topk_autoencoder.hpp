// TopKAutoencoder: z = ReLU(TopK(W_enc x + b_enc)), x_hat = W_dec^T z (+ b_dec), with unit-norm
// decoder rows (Gao et al. 2024; the reports' architecture). The decoder bias is off by default as
// in the reports; when on, it is also subtracted from the input before encoding.
#pragma once

#include <sae/backend/cpu/encoder_gemm.hpp>
#include <sae/backend/cpu/rows.hpp>
#include <sae/backend/cpu/sparse.hpp>
#include <sae/backend/cpu/storage.hpp>
#include <sae/backend/cpu/topk.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/fields.hpp>
#include <sae/io/config_json.hpp>
#include <sae/core/types.hpp>
#include <sae/io/json.hpp>
#include <sae/model/autoencoder_parameters.hpp>
#include <sae/model/auxk.hpp>
#include <sae/model/resampling.hpp>
#include <sae/model/model_concept.hpp>
#include <sae/core/encoder_precision.hpp>
#include <sae/core/selection.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/data/geometric_median.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace sae {

struct TopKConfig {
  index_t input_dim = 0;    // D
  index_t num_latents = 0;  // F, the dictionary size (the reports' latent_dim)
  index_t k = 0;            // latents kept per sample
  Selection selection = Selection::value;
  bool decoder_bias = false;
  std::uint64_t seed = 0;  // initialisation
  // The encoder GEMM's arithmetic; a compute choice, not part of the model (checkpoints omit it).
  EncoderPrecision encoder_precision = EncoderPrecision::fp32;
  // Against dead latents; all off by default (the reports' model):
  bool tied_init = false;       // initialise W_enc to W_dec (the decoder's transpose in PyTorch's [D, F] layout)
  index_t aux_k = 0;            // AuxK: dead latents per sample that reconstruct the residual (0 = off)
  double aux_alpha = 1.0 / 32;  // AuxK: weight of the auxiliary loss
  index_t dead_window = 0;      // AuxK: a latent is dead after this many training samples without firing
  // Remove from each decoder row's gradient its component along the (unit-norm) row, so a step
  // turns the row instead of spending itself on a length the renormalisation undoes (CPU only).
  bool project_decoder_gradient = false;
  // With decoder_bias: b_dec starts at the geometric median of (at most 8,192 evenly spaced)
  // training rows instead of 0; the trainer calls initialize_from_data before the first step (CPU only).
  bool median_decoder_bias = false;
  // Dead-latent resampling (model/resampling.hpp): every this many training samples, latents dead
  // for dead_window samples get the directions of badly reconstructed inputs (0 = off; CPU only).
  index_t resample_every = 0;

  bool auxiliary_loss() const { return aux_k > 0; }
  bool tracks_dead_latents() const { return aux_k > 0 || resample_every > 0; }

  // The options against dead latents are written only when on, so the reports' configs (and their
  // fingerprints) read as they did before those options existed.
  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.input_dim, field("input_dim", "input width D (from the data)").at_least(1).needed().no_flag());
    v(c.num_latents, field("num_latents", "dictionary size F (the reports' latent_dim)").at_least(1).needed().flag_name("latents"));
    v(c.k, field("k", "latents kept per sample (K)").at_least(1).needed().flag_name("k,topk"));
    v(c.selection, field("selection", "top-k by 'value' or by 'magnitude'"));
    v(c.decoder_bias, field("decoder_bias", "learn a decoder bias (also subtracted before encoding)"));
    v(c.seed, field("seed", "seed for initialisation"));
    v(c.encoder_precision, field("encoder_precision", "encoder GEMM arithmetic: 'fp32', 'tf32' (CUDA) or 'bf16' "
                                                      "(bfloat16 inputs, float sums)").compute_only());
    v(c.tied_init, field("tied_init", "initialise the encoder to the decoder's transpose").written_when(c.tied_init));
    v(c.project_decoder_gradient, field("project_decoder_gradient", "remove from each decoder row's gradient its "
                                                                    "component along the row")
                                      .flag_name("project-decoder-grad").written_when(c.project_decoder_gradient));
    v(c.median_decoder_bias, field("median_decoder_bias", "start the decoder bias at the geometric median of the "
                                                          "training rows (needs the decoder bias)").written_when(c.median_decoder_bias));
    v(c.aux_k, field("aux_k", "AuxK: dead latents per sample that reconstruct the residual (0 = off)").at_least(0).written_when(c.aux_k != 0));
    v(c.aux_alpha, field("aux_alpha", "AuxK: weight of the auxiliary loss").above(0).at_most(1e6).written_when(c.aux_k > 0));
    v(c.dead_window, field("dead_window", "AuxK: training samples without firing before a latent counts as dead (programs: 0 = one epoch)")
                         .at_least(0).written_when(c.aux_k > 0 || c.resample_every > 0));
    v(c.resample_every, field("resample_every", "resample dead latents every this many training samples (0 = off)")
                            .at_least(0).written_when(c.resample_every != 0));
  }

  void validate(const char* caller) const {
    detail::require(input_dim > 0, caller, "input_dim must be positive, got " + std::to_string(input_dim));
    detail::require(num_latents > 0, caller, "num_latents must be positive, got " + std::to_string(num_latents));
    detail::require(k >= 1 && k <= num_latents, caller,
                    "k must be in [1, num_latents=" + std::to_string(num_latents) + "], got " + std::to_string(k));
    detail::require(aux_k >= 0 && aux_k <= num_latents, caller,
                    "aux_k must be in [0, num_latents=" + std::to_string(num_latents) + "], got " + std::to_string(aux_k));
    detail::require(!auxiliary_loss() || (aux_alpha > 0 && std::isfinite(aux_alpha)), caller,
                    "aux_alpha must be positive, got " + std::to_string(aux_alpha));
    detail::require(resample_every >= 0, caller, "resample_every must be >= 0, got " + std::to_string(resample_every));
    detail::require(!tracks_dead_latents() || dead_window > 0, caller,
                    "dead_window (training samples without firing before a latent counts as dead) must be positive "
                    "with aux_k or resample_every, got " + std::to_string(dead_window));
  }
};

// Memory to train a TopK SAE with Adam: parameters, their gradients and two Adam moments (four
// copies), plus the per-batch encoder output, reconstruction and codes. For refusing a model too
// large before allocating it (require_memory).
template <class Scalar>
double training_memory_bytes(const TopKConfig& c, index_t batch_size) {
  const double params = 2.0 * static_cast<double>(c.num_latents) * static_cast<double>(c.input_dim) +
                        static_cast<double>(c.num_latents + c.input_dim);
  const double batch = static_cast<double>(batch_size) *
                       (static_cast<double>(c.num_latents) + 3.0 * static_cast<double>(c.input_dim) + 2.0 * static_cast<double>(c.k));
  return (4.0 * params + batch) * sizeof(Scalar);
}

// The config as JSON (checkpoints, fingerprints) and back, with the error naming `source`.
inline io::Json to_json(const TopKConfig& c) { return io::fields_to_json(c); }

inline TopKConfig topk_config_from_json(const io::Json& j, const std::string& source) {
  return io::config_from_json<TopKConfig>(j, source);
}

// What checkpoints need of a TopK model, on every backend: the architecture's name, its config as
// JSON and its named parameter slots.
struct TopKCheckpointing : AutoencoderSlots<TopKConfig> {
  static constexpr const char* architecture = "topk";
};

template <class Scalar>
using TopKParameters = AutoencoderParameters<Scalar>;
template <class Scalar, class Backend = cpu>
using TopKGradients = AutoencoderGradients<Scalar, Backend>;

// Buffers reused across steps so training allocates only on the first batch, kept where the
// backend computes. `x` holds the batch on a device backend (the CPU reads the caller's).
template <class Scalar, class Backend = cpu>
struct TopKWorkspace {
  using S = storage<Backend, Scalar>;
  typename S::matrix x, x_in, pre, x_hat, g;
  typename S::codes codes;
  typename S::latent_groups groups;
  typename S::code_gradients dcode;
  typename S::encoder_scratch gemm;
  std::conditional_t<S::host_memory, AuxKScratch<Scalar>, std::tuple<>> aux;  // AuxK (CPU only)
};

// One model for every backend: each kernel is name(Backend{}, ...) (backend/<name>/), the
// parameters live where the backend computes, and data comes and goes as host matrices.
template <class Scalar, class Backend = cpu>
class TopKAutoencoder : public TopKCheckpointing {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "TopKAutoencoder<Scalar>: Scalar must be float or double");
  static_assert(backend_available<Backend>::value,
                "this backend's kernels are not compiled in: for sae::cuda, include <sae/cuda.hpp> in a .cu file "
                "compiled by nvcc and link sae::cuda");
  using S = storage<Backend, Scalar>;

 public:
  using scalar_type = Scalar;
  using backend_type = Backend;
  using Parameters = TopKParameters<Scalar>;  // on the host
  using Gradients = TopKGradients<Scalar, Backend>;
  using Workspace = TopKWorkspace<Scalar, Backend>;

  // Fresh model, initialised as detail::init_parameters describes.
  explicit TopKAutoencoder(const TopKConfig& config)
      : config_(validated(config)),
        p_(detail::init_parameters<Scalar>(config_.input_dim, config_.num_latents, config_.decoder_bias, config_.seed,
                                           config_.tied_init)) {}

  // A model from stored parameters (checkpoints); shapes are checked against the config.
  TopKAutoencoder(const TopKConfig& config, Parameters params)
      : config_(validated(config)), p_(checked(config_, std::move(params))), needs_data_init_(false) {}

  const TopKConfig& config() const { return config_; }
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
  index_t input_dim() const { return config_.input_dim; }
  index_t num_latents() const { return config_.num_latents; }
  index_t k() const { return config_.k; }

  // Sparse codes of each row of x ([N, D]).
  SparseCodes<Scalar> encode(const Matrix<Scalar>& x) const {
    Workspace ws;
    encode_into(stage(Backend{}, x, ws.x), ws);
    return to_host(Backend{}, std::move(ws.codes));
  }

  Matrix<Scalar> decode(const SparseCodes<Scalar>& codes) const {
    detail::require(codes.num_latents == config_.num_latents, "decode()",
                    "codes have " + std::to_string(codes.num_latents) + " latents, model has " +
                        std::to_string(config_.num_latents));
    Workspace ws;
    sparse_decode(Backend{}, stage(Backend{}, codes, ws.codes), p_.stored().w_dec, decoder_bias(), ws.x_hat);
    return to_host(Backend{}, std::move(ws.x_hat));
  }

  // Reconstruction of x.
  Matrix<Scalar> forward(const Matrix<Scalar>& x) const {
    Workspace ws;
    encode_into(stage(Backend{}, x, ws.x), ws);
    sparse_decode(Backend{}, ws.codes, p_.stored().w_dec, decoder_bias(), ws.x_hat);
    return to_host(Backend{}, std::move(ws.x_hat));
  }

  // Forward and hand-written backward for one batch. The loss is the MSE (mean over all B x D
  // elements, as torch's F.mse_loss), plus AuxK's term when aux_k > 0 (model/auxk.hpp; it also
  // counts which latents fired, so this is a training step); fills `grad`; ws.x_hat holds the
  // reconstruction.
  StepLoss loss_and_gradient(const Matrix<Scalar>& batch, Gradients& grad, Workspace& ws) {
    if constexpr (S::host_memory)
      if (config_.resample_every > 0) maybe_resample(batch, ws);
    const auto& p = p_.stored();
    const auto& x = stage(Backend{}, batch, ws.x);
    const auto& x_in = encode_into(x, ws);
    const double n = static_cast<double>(batch.rows()) * static_cast<double>(batch.cols());
    // ws.g = dL/dx_hat = 2 (x_hat - x) / n
    const auto sse = decode_with_code_gradients(Backend{}, ws.codes, p.w_dec, decoder_bias(), x,
                                                     static_cast<Scalar>(2.0 / n), ws.x_hat, ws.g, ws.dcode);
    sparse_weight_gradients(Backend{}, ws.codes, ws.g, x_in, ws.groups, ws.dcode, grad.w_enc, grad.b_enc, grad.w_dec);
    if constexpr (S::decoder_bias) {
      if (config_.decoder_bias) decoder_bias_gradient(Backend{}, ws.g, ws.codes, ws.dcode, p.w_enc, grad.b_dec);
      else grad.b_dec.resize(0);
    }
    // Rounded through Scalar as before, so training statistics stay bitwise what they were.
    const auto mse = static_cast<double>(static_cast<Scalar>(resolve(Backend{}, sse) / n));
    double loss = mse;
    if constexpr (S::host_memory) {
      if (config_.auxiliary_loss()) {
        const index_t dead = dead_.mask(config_.num_latents, config_.dead_window, ws.aux.dead);
        loss += add_auxk(config_.aux_k, config_.aux_alpha, dead, p, config_.decoder_bias, x, x_in, ws.pre, ws.x_hat, grad,
                         ws.aux);
      }
      if (config_.tracks_dead_latents()) dead_.record(ws.codes);
      if (config_.project_decoder_gradient) detail::project_out_rows(grad.w_dec, p.w_dec);
    }
    return {loss, mse};
  }

  // Data-dependent initialisation, which the trainer calls before the first step of a fresh
  // model (a model from stored parameters is left as it is).
  void initialize_from_data(const Matrix<Scalar>& x) {
    if (!std::exchange(needs_data_init_, false) || !config_.median_decoder_bias || x.rows() == 0) return;
    if constexpr (S::host_memory) {
      const index_t stride = (x.rows() + 8191) / 8192;
      Matrix<Scalar> sample((x.rows() + stride - 1) / stride, x.cols());
      for (index_t i = 0; i < sample.rows(); ++i) sample.row(i) = x.row(i * stride);
      p_.stored_for_update().b_dec = data::geometric_median(sample);
    }
  }

  // With AuxK or resampling: training samples since each latent last fired.
  const DeadLatents& dead_latents() const { return dead_; }

  // Scales each decoder row to unit L2 norm (a zero row is left as is).
  // A no-op right after an optimizer step that already applied the unit-norm row constraint.
  void normalize_decoder() {
    if (!std::exchange(decoder_normalized_, false)) normalize_rows(Backend{}, p_.stored_for_update().w_dec);
  }

  // Visits each parameter with its gradient: fn(slot, param, grad[, RowHooks]) with the backend's
  // storage types (on the CPU a Matrix& or Vector& with a RowSparse or dense Vector gradient).
  // Optimizers keep per-slot state. A visitor that applies RowHooks also renormalises the decoder
  // and, on the CPU, repacks W_enc for the next encoder GEMM.
  template <class Fn>
  void for_each_parameter(const Gradients& g, Fn&& fn) {
    auto& p = p_.stored_for_update();
    std::function<void(index_t, index_t)> repack;
    if constexpr (S::packs_encoder) {
      ops::shape_packed_encoder(packed_, config_.num_latents, config_.input_dim, config_.encoder_precision);
      repack = [this, &p](index_t begin, index_t end) { ops::pack_encoder_rows(p.w_enc, begin, end, packed_); };
    }
    const bool hooked = detail::visit_parameters(p, g, config_.decoder_bias, fn, std::move(repack));
    decoder_normalized_ = hooked;
    if constexpr (S::packs_encoder) packed_.fresh = hooked;
  }

 private:
  // Fills ws.pre and ws.codes from x (in backend storage); returns the encoder's input (x, or
  // x - b_dec in ws.x_in).
  const typename S::matrix& encode_into(const typename S::matrix& x, Workspace& ws) const {
    const auto& in = detail::encoder_preactivations<Scalar, Backend>(p_.stored(), config_.decoder_bias, x, ws.x_in, ws.pre,
                                                                     config_.encoder_precision, ws.gemm, &packed_);
    topk_rows(Backend{}, ws.pre, config_.k, config_.selection, ws.codes);
    return in;
  }

  // Resampling's schedule: at every resample_every training samples, the dead latents are
  // resampled from this batch (before its step).
  void maybe_resample(const Matrix<Scalar>& batch, Workspace& ws) {
    samples_seen_ += batch.rows();
    if (samples_seen_ < config_.resample_every * (resamples_ + 1)) return;
    ++resamples_;
    if (dead_.mask(config_.num_latents, config_.dead_window, ws.aux.dead) == 0) return;
    encode_into(stage(Backend{}, batch, ws.x), ws);
    sparse_decode(Backend{}, ws.codes, p_.stored().w_dec, decoder_bias(), ws.x_hat);
    Rng rng(config_.seed ^ (0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(resamples_)));
    resample_dead_latents(p_.stored_for_update(), ws.aux.dead, batch, ws.x_hat, rng);
    dead_.revive(ws.aux.dead);
    packed_.fresh = false;  // W_enc changed
  }

  const typename S::vector* decoder_bias() const {
    if constexpr (S::decoder_bias) return config_.decoder_bias ? &p_.stored().b_dec : nullptr;
    else return nullptr;
  }

  static const TopKConfig& validated(const TopKConfig& c) {
    c.validate("TopKAutoencoder");
    detail::require(S::host_memory || !c.tracks_dead_latents(), "TopKAutoencoder",
                    "AuxK and resampling (aux_k, resample_every > 0) are CPU-only for now");
    detail::require(S::host_memory || !c.project_decoder_gradient, "TopKAutoencoder",
                    "project_decoder_gradient is CPU-only for now");
    detail::require(S::host_memory || !c.median_decoder_bias, "TopKAutoencoder", "median_decoder_bias is CPU-only for now");
    detail::require(!c.median_decoder_bias || c.decoder_bias, "TopKAutoencoder",
                    "median_decoder_bias initialises the decoder bias: it needs decoder_bias");
    require_supported(Backend{}, Scalar{}, c.k, c.decoder_bias, c.encoder_precision, "TopKAutoencoder");
    return c;
  }

  static Parameters checked(const TopKConfig& c, Parameters p) {
    detail::check_parameter_shapes(p, c.input_dim, c.num_latents, c.decoder_bias, "TopKAutoencoder");
    return p;
  }

  TopKConfig config_;
  ResidentParameters<Scalar, Backend> p_;
  DeadLatents dead_;                  // AuxK's bookkeeping
  bool needs_data_init_ = true;       // fresh: initialize_from_data has yet to run
  std::int64_t samples_seen_ = 0, resamples_ = 0;  // resampling's schedule
  bool decoder_normalized_ = false;   // the last optimizer step left w_dec's rows at unit norm
  typename S::packed_encoder packed_;  // W_enc for the encoder GEMM, repacked by the optimizer's hooks
};

}  // namespace sae
