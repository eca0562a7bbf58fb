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
#include <sae/model/cpu_dictionary.hpp>
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

template <class Scalar>
struct JumpReluWorkspace {
  Matrix<Scalar> x_in, pre, x_hat, g;
  SparseCodes<Scalar> codes;
  ops::LatentMajor groups;
  std::vector<Scalar> dcode;
  ops::EncoderGemmScratch gemm;
  Vector<Scalar> theta;
  std::vector<std::vector<std::pair<std::int32_t, Scalar>>> band;  // per sample: (latent, dL/dtheta share)
};

template <class Scalar, class Backend = cpu>
class JumpReluAutoencoder : public detail::CpuDictionary<Scalar, JumpReluParameters<Scalar>> {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "JumpReluAutoencoder<Scalar>: Scalar must be float or double");
  static_assert(std::is_same_v<Backend, cpu>, "JumpReluAutoencoder has CPU kernels only");
  using Base = detail::CpuDictionary<Scalar, JumpReluParameters<Scalar>>;
  using Base::p_;

 public:
  using scalar_type = Scalar;
  using backend_type = Backend;
  using Config = JumpReluConfig;
  using Parameters = JumpReluParameters<Scalar>;
  using Gradients = JumpReluGradients<Scalar>;
  using Workspace = JumpReluWorkspace<Scalar>;

  explicit JumpReluAutoencoder(const JumpReluConfig& config) : JumpReluAutoencoder(config, fresh_parameters(config)) {
    needs_data_init_ = true;
  }

  // A model from stored parameters (checkpoints); shapes are checked against the config.
  JumpReluAutoencoder(const JumpReluConfig& config, Parameters params)
      : Base(std::move(params), validated(config).input_dim, config.num_latents, config.decoder_bias, "JumpReluAutoencoder"),
        config_(config) {
    detail::require(p_.log_threshold.size() == config_.num_latents, "JumpReluAutoencoder",
                    "log_threshold has " + std::to_string(p_.log_threshold.size()) + " entries, expected " +
                        std::to_string(config_.num_latents));
  }

  // Checkpoint hooks (model/checkpoint.hpp): one more slot, and the data scale as state.
  static constexpr const char* architecture = "jumprelu";
  template <class Params, class Fn>
  static void for_each_slot(Params& p, const Config& c, Fn&& fn) {
    AutoencoderSlots<Config>::for_each_slot(p, c, fn);
    fn("log_threshold", p.log_threshold, c.num_latents, index_t{1});
  }
  io::Json state_to_json() const {
    io::Json j = io::Json::object();
    j["data_scale"] = data_scale_;
    return j;
  }
  void state_from_json(const io::Json& j) {
    const double s = j.at("data_scale").as_number();
    detail::require(s > 0 && std::isfinite(s), "JumpReluAutoencoder", "data_scale must be positive, got " + std::to_string(s));
    data_scale_ = s;
  }

  const JumpReluConfig& config() const { return config_; }
  index_t input_dim() const { return config_.input_dim; }
  index_t num_latents() const { return config_.num_latents; }
  // The data's RMS entry the bandwidth and the penalty are scaled by (1 before initialize_from_data).
  double data_scale() const { return data_scale_; }
  Vector<Scalar> thresholds() const { return p_.log_threshold.array().exp(); }

  // Measures the data scale and, for a fresh model, starts the thresholds (the trainer calls this
  // before the first step; a model from stored parameters keeps its thresholds).
  void initialize_from_data(const Matrix<Scalar>& x) {
    if (x.size() == 0) return;
    data_scale_ = std::sqrt(x.template cast<double>().squaredNorm() / static_cast<double>(x.size()));
    if (data_scale_ <= 0 || !std::isfinite(data_scale_)) data_scale_ = 1;
    if (!std::exchange(needs_data_init_, false)) return;
    double start = config_.initial_threshold * data_scale_;
    if (config_.initial_l0 > 0) {
      Workspace ws;
      const index_t stride = (x.rows() + 4095) / 4096;  // at most 4,096 evenly spaced rows
      Matrix<Scalar> sample((x.rows() + stride - 1) / stride, x.cols());
      for (index_t i = 0; i < sample.rows(); ++i) sample.row(i) = x.row(i * stride);
      this->preactivations(sample, ws);
      const Scalar cut = batch_topk(Backend{}, ws.pre, config_.initial_l0 * sample.rows(), ws.codes);
      if (cut > Scalar(0)) start = static_cast<double>(cut);
    }
    p_.log_threshold.setConstant(config_.num_latents, static_cast<Scalar>(std::log(start)));
  }

  // Per-sample codes: every latent whose activation exceeds its threshold.
  SparseCodes<Scalar> encode(const Matrix<Scalar>& x) const {
    Workspace ws;
    encode_into(x, ws);
    return std::move(ws.codes);
  }

  Matrix<Scalar> decode(const SparseCodes<Scalar>& codes) const { return this->decode_codes(codes); }

  Matrix<Scalar> forward(const Matrix<Scalar>& x) const { return decode(encode(x)); }

  // The weight of the L0 term in the loss: lambda * ms / D.
  double l0_weight() const {
    return config_.sparsity_coefficient * data_scale_ * data_scale_ / static_cast<double>(config_.input_dim);
  }

  // Forward and backward for one batch: TopK's sparse backward over the active latents, plus the
  // thresholds' pseudo-gradients from the samples within eps/2 of them. Returns the penalised
  // loss and the MSE.
  StepLoss loss_and_gradient(const Matrix<Scalar>& x, Gradients& grad, Workspace& ws) {
    const Matrix<Scalar>& x_in = encode_into(x, ws);
    const index_t rows = x.rows(), f = config_.num_latents;
    const double n = static_cast<double>(rows) * static_cast<double>(x.cols());
    const double sse = decode_with_code_gradients(Backend{}, ws.codes, p_.w_dec, this->decoder_bias(), x,
                                                       static_cast<Scalar>(2.0 / n), ws.x_hat, ws.g, ws.dcode);
    sparse_weight_gradients(Backend{}, ws.codes, ws.g, x_in, ws.groups, ws.dcode, grad.w_enc, grad.b_enc, grad.w_dec);
    if (config_.decoder_bias) decoder_bias_gradient(Backend{}, ws.g, ws.codes, ws.dcode, p_.w_enc, grad.b_dec);
    else grad.b_dec.resize(0);

    // Per sample, the latents within eps/2 of their threshold and their dL/dtheta share; summed
    // per latent afterwards in sample order, so the result does not depend on the thread count.
    const double eps = config_.bandwidth * data_scale_, l0w = l0_weight();
    const auto l0_share = static_cast<Scalar>(-l0w / (static_cast<double>(rows) * eps));
    const auto inv_eps = static_cast<Scalar>(1.0 / eps), half = static_cast<Scalar>(eps / 2);
    const std::int64_t active = threshold_band(Backend{}, ws.pre, ws.theta, ws.g, p_.w_dec, half, inv_eps, l0_share, ws.band);
    grad.log_threshold.setZero(f);
    for (const auto& band : ws.band)
      for (const auto& [j, share] : band) grad.log_threshold[j] += share;
    grad.log_threshold.array() *= ws.theta.array();  // d/dlog(theta) = theta d/dtheta
    const double mse = sse / n, l0 = static_cast<double>(active) / static_cast<double>(rows);
    return {mse + l0w * l0, mse};
  }

  // The shared slots 0-3, then log_threshold as slot 4.
  template <class Fn>
  void for_each_parameter(const Gradients& g, Fn&& fn) {
    this->visit_shared_slots(g, fn);
    if constexpr (std::is_invocable_v<Fn&, int, Vector<Scalar>&, const Vector<Scalar>&, const RowHooks&>)
      fn(4, p_.log_threshold, g.log_threshold, RowHooks{});
    else
      fn(4, p_.log_threshold, g.log_threshold);
  }

 private:
  static const JumpReluConfig& validated(const JumpReluConfig& c) {
    c.validate("JumpReluAutoencoder");
    return c;
  }

  static Parameters fresh_parameters(const JumpReluConfig& config) {
    const JumpReluConfig& c = validated(config);  // before anything is allocated
    Parameters p;
    static_cast<AutoencoderParameters<Scalar>&>(p) =
        detail::init_parameters<Scalar>(c.input_dim, c.num_latents, c.decoder_bias, c.seed, c.tied_init);
    p.log_threshold.setConstant(c.num_latents, static_cast<Scalar>(std::log(c.initial_threshold)));
    return p;
  }

  // Fills ws.pre, ws.theta and ws.codes (every latent above its threshold); returns the encoder's input.
  const Matrix<Scalar>& encode_into(const Matrix<Scalar>& x, Workspace& ws) const {
    const Matrix<Scalar>& in = this->preactivations(x, ws);
    ws.theta = p_.log_threshold.array().exp();
    threshold_select(Backend{}, ws.pre, ws.theta, ws.codes);
    return in;
  }

  JumpReluConfig config_;
  double data_scale_ = 1;
  bool needs_data_init_ = false;  // fresh: initialize_from_data has yet to start the thresholds
};

}  // namespace sae
