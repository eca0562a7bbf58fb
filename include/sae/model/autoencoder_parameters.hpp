// The parameters every dictionary model here shares — encoder W_enc [F, D] + b_enc [F], unit-norm
// decoder rows W_dec [F, D], optional decoder bias b_dec [D] — with their initialisation, shape
// checks, renormalisation and the visit order optimizers rely on. TopK and Matryoshka differ only
// in how latents are selected and how the loss is formed.
#pragma once

#include <sae/backend/cpu/encoder_gemm.hpp>
#include <sae/config.hpp>
#include <sae/core/error.hpp>
#include <sae/core/memory.hpp>
#include <sae/core/rng.hpp>
#include <sae/core/types.hpp>
#include <sae/core/row_hooks.hpp>
#include <sae/core/row_sparse.hpp>
#include <sae/core/sparse_codes.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

namespace sae {

template <class Scalar>
struct AutoencoderParameters {
  Matrix<Scalar> w_enc;  // [F, D]
  Vector<Scalar> b_enc;  // [F]
  Matrix<Scalar> w_dec;  // [F, D], unit rows
  Vector<Scalar> b_dec;  // [D], empty unless decoder_bias
};

template <class Scalar>
struct AutoencoderGradients {
  RowSparse<Scalar> w_enc;
  Vector<Scalar> b_enc;
  RowSparse<Scalar> w_dec;
  Vector<Scalar> b_dec;
};

namespace detail {

// Scales each row to unit L2 norm (a zero row is left as is).
template <class Scalar>
void normalize_rows(Matrix<Scalar>& w) {
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t j = 0; j < w.rows(); ++j) normalize_row(w.row(j));
}

// Initialised like the reports' PyTorch layers: W_enc, b_enc ~ U(+-1/sqrt(D)); W_dec ~ U(+-1/sqrt(F))
// then each row scaled to unit norm; b_dec = 0.
template <class Scalar>
AutoencoderParameters<Scalar> init_parameters(index_t d, index_t f, bool decoder_bias, std::uint64_t seed) {
  require_memory((2.0 * static_cast<double>(f) * static_cast<double>(d) + static_cast<double>(f + d)) * sizeof(Scalar),
                 "an SAE with " + std::to_string(f) + " latents over " + std::to_string(d) + " inputs");
  AutoencoderParameters<Scalar> p;
  Rng rng(seed);
  const double enc_bound = 1.0 / std::sqrt(static_cast<double>(d));
  const double dec_bound = 1.0 / std::sqrt(static_cast<double>(f));
  p.w_enc.resize(f, d);
  p.b_enc.resize(f);
  p.w_dec.resize(f, d);
  for (index_t i = 0; i < p.w_enc.size(); ++i) p.w_enc.data()[i] = static_cast<Scalar>(rng.uniform(-enc_bound, enc_bound));
  for (index_t i = 0; i < f; ++i) p.b_enc[i] = static_cast<Scalar>(rng.uniform(-enc_bound, enc_bound));
  for (index_t i = 0; i < p.w_dec.size(); ++i) p.w_dec.data()[i] = static_cast<Scalar>(rng.uniform(-dec_bound, dec_bound));
  if (decoder_bias) p.b_dec.setZero(d);
  normalize_rows(p.w_dec);
  return p;
}

// Stored parameters (checkpoints) must have the shapes the config implies.
template <class Scalar>
void check_parameter_shapes(const AutoencoderParameters<Scalar>& p, index_t d, index_t f, bool decoder_bias,
                            const char* caller) {
  const auto shape = [](index_t r, index_t c) { return "[" + std::to_string(r) + ", " + std::to_string(c) + "]"; };
  require(p.w_enc.rows() == f && p.w_enc.cols() == d, caller,
          "w_enc is " + shape(p.w_enc.rows(), p.w_enc.cols()) + ", expected " + shape(f, d));
  require(p.b_enc.size() == f, caller,
          "b_enc has " + std::to_string(p.b_enc.size()) + " entries, expected " + std::to_string(f));
  require(p.w_dec.rows() == f && p.w_dec.cols() == d, caller,
          "w_dec is " + shape(p.w_dec.rows(), p.w_dec.cols()) + ", expected " + shape(f, d));
  require(p.b_dec.size() == (decoder_bias ? d : 0), caller,
          "b_dec has " + std::to_string(p.b_dec.size()) + " entries, expected " + std::to_string(decoder_bias ? d : 0));
}

// Visits each parameter with its gradient in a fixed slot order (optimizers keep per-slot state).
// A visitor taking a fourth RowHooks argument promises to apply them to each row right after
// updating it: the decoder's unit norm, and `after_w_enc` (if set) on each finished block of
// encoder rows. Then this returns true and the model skips its own passes. A three-argument
// visitor gets no hooks (false).
template <class Scalar, class Fn>
bool visit_parameters(AutoencoderParameters<Scalar>& p, const AutoencoderGradients<Scalar>& g, bool decoder_bias, Fn&& fn,
                      std::function<void(index_t, index_t)> after_w_enc = {}) {
  if constexpr (std::is_invocable_v<Fn&, int, Matrix<Scalar>&, const RowSparse<Scalar>&, const RowHooks&>) {
    fn(0, p.w_enc, g.w_enc, RowHooks{false, std::move(after_w_enc)});
    fn(1, p.b_enc, g.b_enc, RowHooks{});
    fn(2, p.w_dec, g.w_dec, RowHooks{true, {}});
    if (decoder_bias) fn(3, p.b_dec, g.b_dec, RowHooks{});
    return true;
  } else {
    fn(0, p.w_enc, g.w_enc);
    fn(1, p.b_enc, g.b_enc);
    fn(2, p.w_dec, g.w_dec);
    if (decoder_bias) fn(3, p.b_dec, g.b_dec);
    return false;
  }
}

// The encoder's pre-activations pre = W_enc x_in + b_enc, where x_in is x itself, or x - b_dec
// (written to `x_in`) when the decoder bias is on. Returns the x_in used, for the backward pass.
template <class Backend, class Scalar>
const Matrix<Scalar>& encoder_preactivations(Backend, const AutoencoderParameters<Scalar>& p, bool decoder_bias,
                                             const Matrix<Scalar>& x, Matrix<Scalar>& x_in, Matrix<Scalar>& pre,
                                             EncoderPrecision precision, ops::EncoderGemmScratch& scratch,
                                             const ops::PackedEncoder* packed = nullptr) {
  require(x.cols() == p.w_enc.cols(), "encode()",
          "input has " + std::to_string(x.cols()) + " columns, model expects input_dim=" + std::to_string(p.w_enc.cols()));
  if (decoder_bias) x_in = x.rowwise() - p.b_dec.transpose();
  const Matrix<Scalar>& in = decoder_bias ? x_in : x;
  ops::encoder_preactivations(Backend{}, in, p.w_enc, p.b_enc, pre, precision, scratch, packed);
  return in;
}

// dL/db_dec when the decoder bias is on: directly through x_hat (the row sum of the upstream
// gradient) and through the encoder input x - b_dec (d pre_j / d b_dec = -w_enc[j]).
template <class Scalar>
void decoder_bias_gradient(const Vector<Scalar>& upstream_row_sum, const SparseCodes<Scalar>& codes,
                           const std::vector<Scalar>& dcode, const Matrix<Scalar>& w_enc, Vector<Scalar>& out) {
  out = upstream_row_sum;
  for (std::size_t e = 0; e < dcode.size(); ++e)
    if (dcode[e] != Scalar(0)) out.noalias() -= dcode[e] * w_enc.row(codes.indices[e]).transpose();
}

}  // namespace detail

// The named parameter slots of a model whose parameters are AutoencoderParameters, in slot order,
// each with the shape its Config implies: fn(name, Matrix& or Vector&, rows, cols) (cols = 1 for
// vectors). Checkpoints store one <name>.npy per slot. Models inherit it (with `Config`); an
// architecture with other parameters names its own slots.
template <class ConfigType>
struct AutoencoderSlots {
  using Config = ConfigType;
  template <class Params, class Fn>
  static void for_each_slot(Params& p, const Config& c, Fn&& fn) {
    fn("w_enc", p.w_enc, c.num_latents, c.input_dim);
    fn("b_enc", p.b_enc, c.num_latents, index_t{1});
    fn("w_dec", p.w_dec, c.num_latents, c.input_dim);
    if (c.decoder_bias) fn("b_dec", p.b_dec, c.input_dim, index_t{1});
  }
};

}  // namespace sae
