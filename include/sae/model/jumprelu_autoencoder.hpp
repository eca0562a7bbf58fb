// JumpReluAutoencoder (Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction
// Fidelity with JumpReLU Sparse Autoencoders"): z_j = pre_j * H(pre_j - theta_j), one learned
// threshold theta_j = exp(log_threshold_j) per latent, trained with an L0 penalty:
//
//   L = MSE(x_hat, x) + lambda * (ms / D) * mean_i ||z_i||_0
//
// MSE is the per-element mean (torch's F.mse_loss, as TopK's loss) and ms the data's mean squared
// entry, so lambda is the paper's coefficient for data normalised to E||x||^2 = D: the loss is the
// paper's, scaled by ms / D. H has no derivative, so theta gets the paper's straight-through
// pseudo-derivatives with the rectangle kernel K(u) = 1[|u| < 1/2] of bandwidth eps:
//
//   d z_j / d theta_j := -(theta_j / eps) K((pre_j - theta_j) / eps),
//   d H(pre_j - theta_j) / d theta_j := -(1 / eps) K((pre_j - theta_j) / eps),
//
// and the encoder sees the true derivative H(pre_j - theta_j) (none from the L0 term). Bandwidth
// and initial threshold are in units of the data's RMS entry (the paper's 0.001 for both on
// normalised data); initialize_from_data measures that scale (1 until it runs). The decoder rows
// stay unit norm, as TopK's.
#pragma once

#include <sae/backend/cpu/batch_topk.hpp>
#include <sae/backend/cpu/encoder_gemm.hpp>
#include <sae/backend/cpu/jumprelu.hpp>
#include <sae/backend/cpu/rows.hpp>
#include <sae/backend/cpu/sparse.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/fields.hpp>
#include <sae/core/row_hooks.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/types.hpp>
#include <sae/io/json.hpp>
#include <sae/model/autoencoder_parameters.hpp>
#include <sae/model/dictionary.hpp>
#include <sae/model/model_concept.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace sae {

struct JumpReluConfig {
  index_t input_dim = 0;    // D
  index_t num_latents = 0;  // F
  double sparsity_coefficient = 1e-3;  // lambda, the L0 penalty's weight (see above)
  double bandwidth = 1e-3;             // eps, in units of the data's RMS entry
  double initial_threshold = 1e-3;     // every theta_j at the start, in units of the data's RMS entry
  // When > 0: initialize_from_data instead starts every theta_j at the one value that keeps this
  // many latents per sample on the data (BatchTopK's cut), so a short run starts at the target L0.
  index_t initial_l0 = 0;
  bool decoder_bias = false;
  std::uint64_t seed = 0;
  bool tied_init = false;  // initialise W_enc to W_dec

  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.input_dim, field("input_dim", "input width D (from the data)").at_least(1).needed().no_flag());
    v(c.num_latents, field("num_latents", "dictionary size F").at_least(1).needed().flag_name("latents"));
    v(c.sparsity_coefficient, field("sparsity_coefficient", "the L0 penalty's lambda (the paper's, for data scaled to "
                                                            "E||x||^2 = D)").at_least(0).at_most(1e12).flag_name("l0-coefficient"));
    v(c.bandwidth, field("bandwidth", "the threshold kernel's bandwidth in units of the data's RMS entry").above(0).at_most(1e6)
                       .flag_name("jumprelu-bandwidth"));
    v(c.initial_threshold, field("initial_threshold", "every threshold at the start, in units of the data's RMS entry").above(0));
    v(c.initial_l0, field("initial_l0", "start every threshold at the cut that keeps this many latents per sample (0 = off)")
                        .at_least(0));
    v(c.decoder_bias, field("decoder_bias", "learn a decoder bias (also subtracted before encoding)"));
    v(c.seed, field("seed", "seed for initialisation"));
    v(c.tied_init, field("tied_init", "initialise the encoder to the decoder's transpose"));
  }

  void validate(const char* caller) const {
    detail::require(input_dim > 0, caller, "input_dim must be positive, got " + std::to_string(input_dim));
    detail::require(num_latents > 0, caller, "num_latents must be positive, got " + std::to_string(num_latents));
    detail::require(sparsity_coefficient >= 0 && std::isfinite(sparsity_coefficient), caller,
                    "sparsity_coefficient must be >= 0, got " + std::to_string(sparsity_coefficient));
    detail::require(bandwidth > 0 && std::isfinite(bandwidth), caller, "bandwidth must be positive, got " + std::to_string(bandwidth));
    detail::require(initial_threshold > 0 && std::isfinite(initial_threshold), caller,
                    "initial_threshold must be positive, got " + std::to_string(initial_threshold));
    detail::require(initial_l0 >= 0 && initial_l0 <= num_latents, caller,
                    "initial_l0 must be in [0, num_latents=" + std::to_string(num_latents) + "], got " +
                        std::to_string(initial_l0));
  }
};

template <class Scalar>
struct JumpReluParameters : AutoencoderParameters<Scalar> {
  Vector<Scalar> log_threshold;  // [F]
};

template <class Scalar>
struct JumpReluGradients : AutoencoderGradients<Scalar> {
  Vector<Scalar> log_threshold;  // [F], dense: every latent near its threshold gets a share

  template <class F>
  void for_each_gradient(F&& f) {
    AutoencoderGradients<Scalar>::for_each_gradient(f);
    f(log_threshold);
  }
};

namespace arch {

template <class B, class Sc>
using per_latent_threshold_op = decltype(threshold_select(B{}, std::declval<const typename storage<B, Sc>::matrix&>(),
                                                          std::declval<const typename storage<B, Sc>::vector&>(),
                                                          std::declval<typename storage<B, Sc>::codes&>()));
template <class B, class Sc>
using threshold_band_op = decltype(threshold_band(
    B{}, std::declval<const typename storage<B, Sc>::matrix&>(), std::declval<const typename storage<B, Sc>::vector&>(),
    std::declval<const typename storage<B, Sc>::matrix&>(), std::declval<const typename storage<B, Sc>::matrix&>(), Sc{}, Sc{},
    Sc{}, std::declval<std::vector<std::vector<std::pair<std::int32_t, Sc>>>&>()));

// JumpReLU's policy: every latent above its own threshold; the MSE plus the L0 penalty, whose
// straight-through gradient reaches the thresholds (one more slot, log_threshold); the data scale as state.
template <class Scalar, class Backend>
class JumpRelu : public Base<Scalar, Backend, JumpReluConfig> {
  static_assert(has_op<per_latent_threshold_op, Backend, Scalar>,
                "JumpReLU needs the op 'threshold_select' with per-latent thresholds, which this backend lacks");
  static_assert(has_op<threshold_band_op, Backend, Scalar>, "JumpReLU needs the op 'threshold_band', which this backend lacks");
  using Parent = Base<Scalar, Backend, JumpReluConfig>;
  using Model = Dictionary<Scalar, Backend, arch::JumpRelu>;

 public:
  static constexpr const char* architecture = "jumprelu";
  static constexpr const char* class_name = "JumpReluAutoencoder";
  using Parameters = JumpReluParameters<Scalar>;
  using Gradients = JumpReluGradients<Scalar>;
  struct Scratch {
    Vector<Scalar> theta;
    std::vector<std::vector<std::pair<std::int32_t, Scalar>>> band;  // per sample: (latent, dL/dtheta share)
  };

  // Checkpoints: one more slot, and the data scale as state.
  template <class Params, class Fn>
  static void for_each_slot(Params& p, const JumpReluConfig& c, Fn&& fn) {
    AutoencoderSlots<JumpReluConfig>::for_each_slot(p, c, fn);
    fn("log_threshold", p.log_threshold, c.num_latents, index_t{1});
  }
  io::Json state_to_json() const {
    io::Json j = io::Json::object();
    j["data_scale"] = data_scale_;
    return j;
  }
  void state_from_json(const io::Json& j) {
    const double s = j.at("data_scale").as_number();
    detail::require(s > 0 && std::isfinite(s), class_name, "data_scale must be positive, got " + std::to_string(s));
    data_scale_ = s;
  }

  // The data's RMS entry the bandwidth and the penalty are scaled by (1 before initialize_from_data).
  double data_scale() const { return data_scale_; }
  Vector<Scalar> thresholds() const {
    return static_cast<const Model&>(*this).parameters().log_threshold.array().exp();
  }
  // The weight of the L0 term in the loss: lambda * ms / D.
  double l0_weight() const {
    return this->config().sparsity_coefficient * data_scale_ * data_scale_ / static_cast<double>(this->config().input_dim);
  }

 protected:
  explicit JumpRelu(const JumpReluConfig& c) : Parent(validated(c)) {}

  static Parameters fresh_parameters(const JumpReluConfig& c) {
    Parameters p;
    static_cast<AutoencoderParameters<Scalar>&>(p) = Parent::fresh_parameters(c);
    p.log_threshold.setConstant(c.num_latents, static_cast<Scalar>(std::log(c.initial_threshold)));
    return p;
  }

  template <class Workspace>
  void select(Workspace& ws, bool /*batch*/) const {
    ws.extra.theta = static_cast<const Model&>(*this).p_.stored().log_threshold.array().exp();
    threshold_select(Backend{}, ws.pre, ws.extra.theta, ws.codes);
  }
  template <class Workspace>
  void select_for_training(Workspace& ws) {
    select(ws, true);
  }

  // Measures the data scale and, for a fresh model, starts the thresholds (a model from stored
  // parameters keeps its thresholds).
  void initialize_from_data(Model& m, const data::RowSource<Scalar>& rows, const data::RowStatistics& stats, bool fresh) {
    data_scale_ = std::sqrt(stats.inputs.mean_square());
    if (data_scale_ <= 0 || !std::isfinite(data_scale_)) data_scale_ = 1;
    if (!fresh) return;
    const JumpReluConfig& c = this->config();
    double start = c.initial_threshold * data_scale_;
    if (c.initial_l0 > 0) {
      typename Model::Workspace ws;
      const Matrix<Scalar> sample = data::evenly_spaced_rows(rows, 4096);
      m.preactivations(sample, ws);
      const Scalar cut = batch_topk(Backend{}, ws.pre, c.initial_l0 * sample.rows(), ws.codes);
      if (cut > Scalar(0)) start = static_cast<double>(cut);
    }
    m.stored_for_update().log_threshold.setConstant(c.num_latents, static_cast<Scalar>(std::log(start)));
  }

  // The thresholds' pseudo-gradients from the samples within eps/2 of them, and the L0 term.
  template <class Workspace>
  double add_loss_terms(const Parameters& p, const Vector<Scalar>*, const Matrix<Scalar>& x, const Matrix<Scalar>&,
                        Gradients& grad, Workspace& ws) {
    // Per sample, the latents within eps/2 of their threshold and their dL/dtheta share; summed
    // per latent afterwards in sample order, so the result does not depend on the thread count.
    const index_t rows = x.rows();
    const double eps = this->config().bandwidth * data_scale_, l0w = l0_weight();
    const auto l0_share = static_cast<Scalar>(-l0w / (static_cast<double>(rows) * eps));
    const auto inv_eps = static_cast<Scalar>(1.0 / eps), half = static_cast<Scalar>(eps / 2);
    const std::int64_t active =
        threshold_band(Backend{}, ws.pre, ws.extra.theta, ws.g, p.w_dec, half, inv_eps, l0_share, ws.extra.band);
    grad.log_threshold.setZero(this->config().num_latents);
    for (const auto& band : ws.extra.band)
      for (const auto& [j, share] : band) grad.log_threshold[j] += share;
    grad.log_threshold.array() *= ws.extra.theta.array();  // d/dlog(theta) = theta d/dtheta
    return l0w * (static_cast<double>(active) / static_cast<double>(rows));  // lambda' x the batch's mean L0
  }

  // log_threshold is slot 4.
  template <class Fn>
  void visit_extra_slots(Parameters& p, const Gradients& g, Fn& fn) {
    if constexpr (std::is_invocable_v<Fn&, int, Vector<Scalar>&, const Vector<Scalar>&, const RowHooks&>)
      fn(4, p.log_threshold, g.log_threshold, RowHooks{});
    else
      fn(4, p.log_threshold, g.log_threshold);
  }

 private:
  static const JumpReluConfig& validated(const JumpReluConfig& c) {
    c.validate(class_name);
    return c;
  }

  double data_scale_ = 1;
};

}  // namespace arch

template <class Scalar, class Backend = cpu>
using JumpReluAutoencoder = Dictionary<Scalar, Backend, arch::JumpRelu>;

}  // namespace sae
