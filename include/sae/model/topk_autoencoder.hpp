// TopKAutoencoder: z = ReLU(TopK(W_enc x + b_enc)), x_hat = W_dec^T z (+ b_dec), with unit-norm
// decoder rows (Gao et al. 2024; the reports' architecture). The decoder bias is off by default as
// in the reports; when on, it is also subtracted from the input before encoding.
#pragma once

#include <sae/backend/cpu/encoder_gemm.hpp>
#include <sae/backend/cpu/sparse.hpp>
#include <sae/backend/cpu/topk.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/io/json.hpp>
#include <sae/model/autoencoder_parameters.hpp>
#include <sae/model/model_concept.hpp>
#include <sae/core/encoder_precision.hpp>
#include <sae/core/selection.hpp>
#include <sae/core/sparse_codes.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
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

  void validate(const char* caller) const {
    detail::require(input_dim > 0, caller, "input_dim must be positive, got " + std::to_string(input_dim));
    detail::require(num_latents > 0, caller, "num_latents must be positive, got " + std::to_string(num_latents));
    detail::require(k >= 1 && k <= num_latents, caller,
                    "k must be in [1, num_latents=" + std::to_string(num_latents) + "], got " + std::to_string(k));
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
inline io::Json to_json(const TopKConfig& c) {
  io::Json j = io::Json::object();
  j["input_dim"] = c.input_dim;
  j["num_latents"] = c.num_latents;
  j["k"] = c.k;
  j["selection"] = c.selection == Selection::magnitude ? "magnitude" : "value";
  j["decoder_bias"] = c.decoder_bias;
  j["seed"] = static_cast<double>(c.seed);
  return j;
}

inline TopKConfig topk_config_from_json(const io::Json& j, const std::string& source) {
  try {
    TopKConfig c;
    c.input_dim = j.at("input_dim").as_int();
    c.num_latents = j.at("num_latents").as_int();
    c.k = j.at("k").as_int();
    const std::string sel = j.at("selection").as_string();
    if (sel != "value" && sel != "magnitude") throw error("selection must be 'value' or 'magnitude', got '" + sel + "'");
    c.selection = sel == "magnitude" ? Selection::magnitude : Selection::value;
    c.decoder_bias = j.at("decoder_bias").as_bool();
    c.seed = static_cast<std::uint64_t>(j.at("seed").as_number());
    c.validate("checkpoint config");
    return c;
  } catch (const io_error&) {
    throw;
  } catch (const error& e) {
    throw io_error(source, e.what());
  }
}

// What checkpoints need of a TopK model, on every backend: the architecture's name, its config as
// JSON and its named parameter slots.
struct TopKCheckpointing : AutoencoderSlots<TopKConfig> {
  static constexpr const char* architecture = "topk";
  static io::Json config_to_json(const Config& c) { return to_json(c); }
  static Config config_from_json(const io::Json& j, const std::string& source) { return topk_config_from_json(j, source); }
};

template <class Scalar>
using TopKParameters = AutoencoderParameters<Scalar>;
template <class Scalar>
using TopKGradients = AutoencoderGradients<Scalar>;

// Buffers reused across steps so training allocates only on the first batch.
template <class Scalar>
struct TopKWorkspace {
  Matrix<Scalar> x_in, pre, x_hat, g;
  SparseCodes<Scalar> codes;
  ops::LatentMajor groups;
  std::vector<Scalar> dcode;
  ops::EncoderGemmScratch gemm;
};

template <class Scalar, class Backend = cpu>
class TopKAutoencoder : public TopKCheckpointing {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "TopKAutoencoder<Scalar>: Scalar must be float or double");
  static_assert(backend_available<Backend>::value,
                "this backend's kernels are not compiled in: for sae::cuda, include <sae/cuda.hpp> in a .cu file "
                "compiled by nvcc and link sae::cuda");

 public:
  using scalar_type = Scalar;
  using backend_type = Backend;
  using Parameters = TopKParameters<Scalar>;
  using Gradients = TopKGradients<Scalar>;
  using Workspace = TopKWorkspace<Scalar>;

  // Fresh model, initialised as detail::init_parameters describes.
  explicit TopKAutoencoder(const TopKConfig& config)
      : config_(validated(config)),
        p_(detail::init_parameters<Scalar>(config_.input_dim, config_.num_latents, config_.decoder_bias, config_.seed)) {}

  // A model from stored parameters (checkpoints); shapes are checked against the config.
  TopKAutoencoder(const TopKConfig& config, Parameters params) : config_(validated(config)), p_(std::move(params)) {
    detail::check_parameter_shapes(p_, config_.input_dim, config_.num_latents, config_.decoder_bias, "TopKAutoencoder");
  }

  const TopKConfig& config() const { return config_; }
  const Parameters& parameters() const { return p_; }
  Parameters& parameters() {
    decoder_normalized_ = false;  // the caller may change the weights
    packed_.fresh = false;
    return p_;
  }
  index_t input_dim() const { return config_.input_dim; }
  index_t num_latents() const { return config_.num_latents; }
  index_t k() const { return config_.k; }

  // Sparse codes of each row of x ([N, D]).
  SparseCodes<Scalar> encode(const Matrix<Scalar>& x) const {
    Workspace ws;
    encode_into(x, ws);
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

  // Reconstruction of x.
  Matrix<Scalar> forward(const Matrix<Scalar>& x) const { return decode(encode(x)); }

  // Forward and hand-written backward for one batch. The loss is the MSE (mean over all B x D
  // elements, as torch's F.mse_loss); fills `grad`; ws.x_hat holds the reconstruction.
  StepLoss loss_and_gradient(const Matrix<Scalar>& x, Gradients& grad, Workspace& ws) const {
    const Matrix<Scalar>& x_in = encode_into(x, ws);
    const Vector<Scalar>* b_dec = config_.decoder_bias ? &p_.b_dec : nullptr;
    const double n = static_cast<double>(x.rows()) * static_cast<double>(x.cols());
    // ws.g = dL/dx_hat = 2 (x_hat - x) / n
    const double sse = ops::decode_with_code_gradients(Backend{}, ws.codes, p_.w_dec, b_dec, x,
                                                       static_cast<Scalar>(2.0 / n), ws.x_hat, ws.g, ws.dcode);
    ops::sparse_weight_gradients(Backend{}, ws.codes, [&ws](index_t i, std::int32_t) { return ws.g.row(i); }, x_in,
                                 ws.groups, ws.dcode, grad.w_enc, grad.b_enc, grad.w_dec);
    if (config_.decoder_bias)
      detail::decoder_bias_gradient<Scalar>(ws.g.colwise().sum().transpose(), ws.codes, ws.dcode, p_.w_enc, grad.b_dec);
    else
      grad.b_dec.resize(0);
    // Rounded through Scalar as before, so training statistics stay bitwise what they were.
    const auto mse = static_cast<double>(static_cast<Scalar>(sse / n));
    return {mse, mse};
  }

  // Scales each decoder row to unit L2 norm (a zero row is left as is).
  // A no-op right after an optimizer step that already applied the unit-norm row constraint.
  void normalize_decoder() {
    if (!std::exchange(decoder_normalized_, false)) detail::normalize_rows(p_.w_dec);
  }

  // Visits each parameter with its gradient: fn(slot, Matrix& or Vector& param, grad[, RowHooks]),
  // where grad is a RowSparse or a dense Vector. Optimizers keep per-slot state. A visitor that
  // applies RowHooks also renormalises the decoder and repacks W_enc for the next encoder GEMM.
  template <class Fn>
  void for_each_parameter(const Gradients& g, Fn&& fn) {
    std::function<void(index_t, index_t)> repack;
    if constexpr (ops::packs_encoder<Scalar> && std::is_same_v<Backend, cpu>) {
      ops::shape_packed_encoder(packed_, config_.num_latents, config_.input_dim, config_.encoder_precision);
      repack = [this](index_t begin, index_t end) { ops::pack_encoder_rows(p_.w_enc, begin, end, packed_); };
    }
    const bool hooked = detail::visit_parameters(p_, g, config_.decoder_bias, fn, std::move(repack));
    decoder_normalized_ = hooked;
    packed_.fresh = hooked && ops::packs_encoder<Scalar>;
  }

 private:
  // Fills ws.pre and ws.codes; returns the encoder's input (x, or x - b_dec in ws.x_in).
  const Matrix<Scalar>& encode_into(const Matrix<Scalar>& x, Workspace& ws) const {
    const Matrix<Scalar>& in = detail::encoder_preactivations(Backend{}, p_, config_.decoder_bias, x, ws.x_in, ws.pre,
                                                              config_.encoder_precision, ws.gemm, &packed_);
    ops::topk_rows(Backend{}, ws.pre, config_.k, config_.selection, ws.codes);
    return in;
  }

  static const TopKConfig& validated(const TopKConfig& c) {
    c.validate("TopKAutoencoder");
    detail::require(c.encoder_precision != EncoderPrecision::tf32, "TopKAutoencoder",
                    "encoder_precision tf32 is a CUDA tensor-core mode; the CPU encoder computes fp32 or bf16");
    detail::require(c.encoder_precision == EncoderPrecision::fp32 || std::is_same_v<Scalar, float>, "TopKAutoencoder",
                    "encoder_precision bf16 needs Scalar = float");
    detail::require(c.encoder_precision == EncoderPrecision::fp32 || bf16_encoder_available, "TopKAutoencoder",
                    "encoder_precision bf16 needs a build with AVX512-BF16 (-march=native on a CPU that has it)");
    return c;
  }

  TopKConfig config_;
  Parameters p_;
  bool decoder_normalized_ = false;  // the last optimizer step left w_dec's rows at unit norm
  ops::PackedEncoder packed_;        // W_enc for the encoder GEMM, repacked by the optimizer's hooks
};

}  // namespace sae
