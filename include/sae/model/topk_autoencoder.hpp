// TopKAutoencoder: z = ReLU(TopK(W_enc x + b_enc)), x_hat = W_dec^T z (+ b_dec), with unit-norm
// decoder rows (Gao et al. 2024; the reports' architecture). The decoder bias is off by default as
// in the reports; when on, it is also subtracted from the input before encoding.
#pragma once

#include <sae/backend/cpu/dense.hpp>
#include <sae/backend/cpu/sparse.hpp>
#include <sae/backend/cpu/topk.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/rng.hpp>
#include <sae/core/types.hpp>
#include <sae/model/row_sparse.hpp>
#include <sae/model/selection.hpp>
#include <sae/model/sparse_codes.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace sae {

struct TopKConfig {
  index_t input_dim = 0;    // D
  index_t num_latents = 0;  // F, the dictionary size (the reports' latent_dim)
  index_t k = 0;            // latents kept per sample
  Selection selection = Selection::value;
  bool decoder_bias = false;
  std::uint64_t seed = 0;  // initialisation

  void validate(const char* caller) const {
    detail::require(input_dim > 0, caller, "input_dim must be positive, got " + std::to_string(input_dim));
    detail::require(num_latents > 0, caller, "num_latents must be positive, got " + std::to_string(num_latents));
    detail::require(k >= 1 && k <= num_latents, caller,
                    "k must be in [1, num_latents=" + std::to_string(num_latents) + "], got " + std::to_string(k));
  }
};

template <class Scalar>
struct TopKParameters {
  Matrix<Scalar> w_enc;  // [F, D]
  Vector<Scalar> b_enc;  // [F]
  Matrix<Scalar> w_dec;  // [F, D], unit rows
  Vector<Scalar> b_dec;  // [D], empty unless decoder_bias
};

template <class Scalar>
struct TopKGradients {
  RowSparse<Scalar> w_enc;
  Vector<Scalar> b_enc;
  RowSparse<Scalar> w_dec;
  Vector<Scalar> b_dec;
};

// Buffers reused across steps so training allocates only on the first batch.
template <class Scalar>
struct TopKWorkspace {
  Matrix<Scalar> x_in, pre, x_hat, g;
  SparseCodes<Scalar> codes;
  ops::LatentMajor groups;
  std::vector<Scalar> dcode;
};

template <class Scalar, class Backend = cpu>
class TopKAutoencoder {
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

  // Fresh model, initialised like the reports' PyTorch layers: W_enc, b_enc ~ U(+-1/sqrt(D));
  // W_dec ~ U(+-1/sqrt(F)) then each row scaled to unit norm; b_dec = 0.
  explicit TopKAutoencoder(const TopKConfig& config) : config_(config) {
    config_.validate("TopKAutoencoder");
    const index_t f = config_.num_latents, d = config_.input_dim;
    Rng rng(config_.seed);
    const double enc_bound = 1.0 / std::sqrt(static_cast<double>(d));
    const double dec_bound = 1.0 / std::sqrt(static_cast<double>(f));
    p_.w_enc.resize(f, d);
    p_.b_enc.resize(f);
    p_.w_dec.resize(f, d);
    for (index_t i = 0; i < p_.w_enc.size(); ++i) p_.w_enc.data()[i] = static_cast<Scalar>(rng.uniform(-enc_bound, enc_bound));
    for (index_t i = 0; i < f; ++i) p_.b_enc[i] = static_cast<Scalar>(rng.uniform(-enc_bound, enc_bound));
    for (index_t i = 0; i < p_.w_dec.size(); ++i) p_.w_dec.data()[i] = static_cast<Scalar>(rng.uniform(-dec_bound, dec_bound));
    if (config_.decoder_bias) p_.b_dec.setZero(d);
    normalize_decoder();
  }

  // A model from stored parameters (checkpoints); shapes are checked against the config.
  TopKAutoencoder(const TopKConfig& config, Parameters params) : config_(config), p_(std::move(params)) {
    config_.validate("TopKAutoencoder");
    const index_t f = config_.num_latents, d = config_.input_dim;
    const auto shape = [](index_t r, index_t c) { return "[" + std::to_string(r) + ", " + std::to_string(c) + "]"; };
    detail::require(p_.w_enc.rows() == f && p_.w_enc.cols() == d, "TopKAutoencoder",
                    "w_enc is " + shape(p_.w_enc.rows(), p_.w_enc.cols()) + ", expected " + shape(f, d));
    detail::require(p_.b_enc.size() == f, "TopKAutoencoder",
                    "b_enc has " + std::to_string(p_.b_enc.size()) + " entries, expected " + std::to_string(f));
    detail::require(p_.w_dec.rows() == f && p_.w_dec.cols() == d, "TopKAutoencoder",
                    "w_dec is " + shape(p_.w_dec.rows(), p_.w_dec.cols()) + ", expected " + shape(f, d));
    detail::require(p_.b_dec.size() == (config_.decoder_bias ? d : 0), "TopKAutoencoder",
                    "b_dec has " + std::to_string(p_.b_dec.size()) + " entries, expected " +
                        std::to_string(config_.decoder_bias ? d : 0));
  }

  const TopKConfig& config() const { return config_; }
  const Parameters& parameters() const { return p_; }
  Parameters& parameters() { return p_; }
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

  // Forward and hand-written backward for one batch. Returns the MSE (mean over all B x D
  // elements, as torch's F.mse_loss) and fills `grad`; ws.x_hat holds the reconstruction.
  Scalar loss_and_gradient(const Matrix<Scalar>& x, Gradients& grad, Workspace& ws) const {
    encode_into(x, ws);
    const Vector<Scalar>* b_dec = config_.decoder_bias ? &p_.b_dec : nullptr;
    ops::sparse_decode(Backend{}, ws.codes, p_.w_dec, b_dec, ws.x_hat);
    ws.g = ws.x_hat - x;
    const double n = static_cast<double>(x.rows()) * static_cast<double>(x.cols());
    const double sse = ws.g.template cast<double>().squaredNorm();
    ws.g *= static_cast<Scalar>(2.0 / n);  // dL/dx_hat
    ops::sparse_backward(Backend{}, ws.codes, ws.g, encoder_input(x, ws), p_.w_dec, ws.groups, ws.dcode, grad.w_enc, grad.b_enc,
                         grad.w_dec);
    if (config_.decoder_bias) {
      // x_hat depends on b_dec directly, and through x_in = x - b_dec: d pre_j / d b_dec = -w_enc[j].
      grad.b_dec = ws.g.colwise().sum().transpose();
      for (index_t e = 0; e < ws.codes.rows * ws.codes.k; ++e)
        if (ws.dcode[static_cast<std::size_t>(e)] != Scalar(0))
          grad.b_dec.noalias() -= ws.dcode[static_cast<std::size_t>(e)] * p_.w_enc.row(ws.codes.indices[e]).transpose();
    } else {
      grad.b_dec.resize(0);
    }
    return static_cast<Scalar>(sse / n);
  }

  // Scales each decoder row to unit L2 norm (a zero row is left as is).
  void normalize_decoder() {
    Matrix<Scalar>& w = p_.w_dec;
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (index_t j = 0; j < w.rows(); ++j) {
      const Scalar norm = w.row(j).norm();
      if (norm > Scalar(0)) w.row(j) /= norm;
    }
  }

  // Visits each parameter with its gradient: fn(slot, Matrix& or Vector& param, grad), where grad
  // is a RowSparse or a dense Vector. Optimizers keep per-slot state.
  template <class Fn>
  void for_each_parameter(const Gradients& g, Fn&& fn) {
    fn(0, p_.w_enc, g.w_enc);
    fn(1, p_.b_enc, g.b_enc);
    fn(2, p_.w_dec, g.w_dec);
    if (config_.decoder_bias) fn(3, p_.b_dec, g.b_dec);
  }

 private:
  void encode_into(const Matrix<Scalar>& x, Workspace& ws) const {
    detail::require(x.cols() == config_.input_dim, "encode()",
                    "input has " + std::to_string(x.cols()) + " columns, model expects input_dim=" +
                        std::to_string(config_.input_dim));
    if (config_.decoder_bias) ws.x_in = x.rowwise() - p_.b_dec.transpose();
    ops::encoder_preactivations(Backend{}, encoder_input(x, ws), p_.w_enc, p_.b_enc, ws.pre);
    ops::topk_rows(Backend{}, ws.pre, config_.k, config_.selection, ws.codes);
  }

  // The encoder sees x - b_dec when the decoder bias is on, else x itself (no copy).
  const Matrix<Scalar>& encoder_input(const Matrix<Scalar>& x, const Workspace& ws) const {
    return config_.decoder_bias ? ws.x_in : x;
  }

  TopKConfig config_;
  Parameters p_;
};

}  // namespace sae
