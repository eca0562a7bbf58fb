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
#include <sae/model/dictionary.hpp>
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

namespace arch {

// TopK's policy: k latents per sample by value (or magnitude); the MSE, plus AuxK's term when
// aux_k > 0; resampling, the decoder-gradient projection and the median decoder bias (CPU only).
template <class Scalar, class Backend>
class TopK : public Base<Scalar, Backend, TopKConfig> {
  using S = storage<Backend, Scalar>;
  using Parent = Base<Scalar, Backend, TopKConfig>;
  template <class B, class Sc>
  using topk_op = decltype(topk_rows(B{}, std::declval<const typename storage<B, Sc>::matrix&>(), index_t{}, Selection::value,
                                     std::declval<typename storage<B, Sc>::codes&>()));
  static_assert(has_op<topk_op, Backend, Scalar>, "TopK needs the op 'topk_rows', which this backend lacks");

 public:
  static constexpr const char* architecture = "topk";
  static constexpr const char* class_name = "TopKAutoencoder";
  using typename Parent::Gradients;
  using Scratch = std::conditional_t<S::host_memory, AuxKScratch<Scalar>, std::tuple<>>;  // AuxK (CPU only)

  index_t k() const { return this->config().k; }
  // With AuxK or resampling: training samples since each latent last fired.
  const DeadLatents& dead_latents() const { return dead_; }

 protected:
  explicit TopK(const TopKConfig& c) : Parent(validated(c)) {}

  EncoderPrecision encoder_precision() const { return this->config().encoder_precision; }

  template <class Workspace>
  void select(Workspace& ws, bool /*batch*/) const {
    topk_rows(Backend{}, ws.pre, this->config().k, this->config().selection, ws.codes);
  }
  template <class Workspace>
  void select_for_training(Workspace& ws) {
    select(ws, true);
  }

  // Resampling's schedule: at every resample_every training samples, the dead latents are
  // resampled from this batch (before its step).
  template <class Model, class Workspace>
  void before_step(Model& m, const Matrix<Scalar>& batch, Workspace& ws) {
    if constexpr (S::host_memory) {
      const TopKConfig& c = this->config();
      if (c.resample_every <= 0) return;
      samples_seen_ += batch.rows();
      if (samples_seen_ < c.resample_every * (resamples_ + 1)) return;
      ++resamples_;
      if (dead_.mask(c.num_latents, c.dead_window, ws.extra.dead) == 0) return;
      m.preactivations(batch, ws);
      select(ws, true);
      sparse_decode(Backend{}, ws.codes, m.p_.stored().w_dec, m.decoder_bias(), ws.x_hat);
      Rng rng(c.seed ^ (0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(resamples_)));
      resample_dead_latents(m.stored_for_update(), ws.extra.dead, batch, ws.x_hat, rng);
      dead_.revive(ws.extra.dead);
    }
  }

  // With median_decoder_bias: b_dec starts at the geometric median of at most 8,192 evenly spaced rows.
  template <class Model>
  void initialize_from_data(Model& m, const data::RowSource<Scalar>& rows, const data::RowStatistics&, bool fresh) {
    if constexpr (S::host_memory) {
      if (!fresh || !this->config().median_decoder_bias) return;
      m.stored_for_update().b_dec = data::geometric_median(data::evenly_spaced_rows(rows, 8192));
    }
  }

  // AuxK's term (model/auxk.hpp; it also counts which latents fired, so this is a training step),
  // then the projection of the decoder rows' gradients.
  template <class Stored, class Workspace>
  double add_loss_terms(const Stored& p, const typename S::vector*, const typename S::matrix& x,
                        const typename S::matrix& x_in, Gradients& grad, Workspace& ws) {
    double loss = 0;
    if constexpr (S::host_memory) {
      const TopKConfig& c = this->config();
      if (c.auxiliary_loss()) {
        const index_t dead = dead_.mask(c.num_latents, c.dead_window, ws.extra.dead);
        loss += add_auxk(c.aux_k, c.aux_alpha, dead, p, c.decoder_bias, x, x_in, ws.pre, ws.x_hat, grad, ws.extra);
      }
      if (c.tracks_dead_latents()) dead_.record(ws.codes);
      if (c.project_decoder_gradient) detail::project_out_rows(grad.w_dec, p.w_dec);
    }
    return loss;
  }

 private:
  static const TopKConfig& validated(const TopKConfig& c) {
    c.validate(class_name);
    detail::require(S::host_memory || !c.tracks_dead_latents(), class_name,
                    "AuxK and resampling (aux_k, resample_every > 0) are CPU-only for now");
    detail::require(S::host_memory || !c.project_decoder_gradient, class_name, "project_decoder_gradient is CPU-only for now");
    detail::require(S::host_memory || !c.median_decoder_bias, class_name, "median_decoder_bias is CPU-only for now");
    detail::require(!c.median_decoder_bias || c.decoder_bias, class_name,
                    "median_decoder_bias initialises the decoder bias: it needs decoder_bias");
    require_supported(Backend{}, Scalar{}, c.k, c.decoder_bias, c.encoder_precision, class_name);
    return c;
  }

  DeadLatents dead_;                               // AuxK's and resampling's bookkeeping
  std::int64_t samples_seen_ = 0, resamples_ = 0;  // resampling's schedule
};

}  // namespace arch

// One model for every backend (model/dictionary.hpp): each kernel is name(Backend{}, ...)
// (backend/<name>/), the parameters live where the backend computes, and data comes and goes as
// host matrices.
template <class Scalar, class Backend = cpu>
using TopKAutoencoder = Dictionary<Scalar, Backend, arch::TopK>;

}  // namespace sae
