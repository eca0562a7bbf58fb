// AuxK (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"), computed as sparsify does:
// a latent is dead when it has not fired for `dead_window` training samples (the mask for a step is
// taken before it; every latent that fires in the batch then restarts at 0). Each sample's residual
// e = x - x_hat (a constant) is reconstructed from its top-`aux_k` dead latents' pre-activations
// (ReLU), e_hat = W_dec^T z_aux with no decoder bias, and the loss gains
//   alpha * min(dead / aux_k, 1) * sum ||e_hat - e||^2 / sum ||e - mean(e)||^2,
// which gives dead latents a gradient towards what the live ones miss. CPU backend (its kernels
// are ops in backend/cpu/auxk.hpp).
#pragma once

#include <sae/backend/cpu/auxk.hpp>
#include <sae/backend/cpu/sparse.hpp>
#include <sae/backend/cpu/topk.hpp>
#include <sae/core/row_sparse.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/types.hpp>
#include <sae/model/autoencoder_parameters.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sae {

// Training samples since each latent last fired (value > 0).
class DeadLatents {
 public:
  // dead[j] when latent j has not fired for `window` samples; returns how many are dead.
  index_t mask(index_t num_latents, index_t window, std::vector<char>& dead) {
    if (static_cast<index_t>(since_.size()) != num_latents) since_.assign(static_cast<std::size_t>(num_latents), 0);
    dead.resize(since_.size());
    index_t n = 0;
    for (std::size_t j = 0; j < since_.size(); ++j) n += (dead[j] = since_[j] >= window) ? 1 : 0;
    return n;
  }
  template <class Scalar>
  void record(const SparseCodes<Scalar>& codes) {
    if (static_cast<index_t>(since_.size()) != codes.num_latents) since_.assign(static_cast<std::size_t>(codes.num_latents), 0);
    for (auto& s : since_) s += codes.rows;
    for (std::size_t e = 0; e < codes.values.size(); ++e)
      if (codes.values[e] > Scalar(0)) since_[static_cast<std::size_t>(codes.indices[e])] = 0;
  }
  const std::vector<std::int64_t>& samples_since_fired() const { return since_; }
  // A resampled latent starts a fresh window.
  void revive(const std::vector<char>& dead) {
    for (std::size_t j = 0; j < since_.size() && j < dead.size(); ++j)
      if (dead[j]) since_[j] = 0;
  }

 private:
  std::vector<std::int64_t> since_;
};

template <class Scalar>
struct AuxKScratch {
  std::vector<char> dead;
  std::vector<std::int32_t> columns;  // the dead latents, ascending
  Matrix<Scalar> pre, g;
  SparseCodes<Scalar> codes;
  ops::LatentMajor groups;
  std::vector<Scalar> dcode;
};


// Adds AuxK's gradient to `grad` and returns its loss term. `pre` are the step's pre-activations,
// `x_in` the encoder's input, `x_hat` the main reconstruction; `dead` from DeadLatents::mask. The
// weight gradients are added onto grad's rows (rows only AuxK touches are appended).
template <class Scalar>
double add_auxk(index_t aux_k, double alpha, index_t num_dead, const AutoencoderParameters<Scalar>& p, bool decoder_bias,
                const Matrix<Scalar>& x, const Matrix<Scalar>& x_in, const Matrix<Scalar>& pre, const Matrix<Scalar>& x_hat,
                AutoencoderGradients<Scalar>& grad, AuxKScratch<Scalar>& s) {
  if (num_dead == 0 || x.rows() == 0) return 0;
  // The top aux_k dead latents of each row: top-k over the dead columns of pre (in one pass, or
  // for a large k_aux gathered, then top-k as for the main codes and mapped back to latent indices).
  s.columns.clear();
  for (std::size_t j = 0; j < s.dead.size(); ++j)
    if (s.dead[j]) s.columns.push_back(static_cast<std::int32_t>(j));
  const index_t k = std::min(aux_k, num_dead);
  if (k <= ops::kDirectAuxK) {
    topk_of_columns(cpu{}, pre, s.columns, k, s.codes);
  } else {
    s.pre.resize(pre.rows(), num_dead);
    for (index_t i = 0; i < pre.rows(); ++i)
      for (index_t c = 0; c < num_dead; ++c) s.pre(i, c) = pre(i, s.columns[static_cast<std::size_t>(c)]);
    topk_rows(cpu{}, s.pre, k, Selection::value, s.codes);
    for (auto& j : s.codes.indices) j = s.columns[static_cast<std::size_t>(j)];
    s.codes.num_latents = pre.cols();
  }
  const double variance = residual_variance(cpu{}, x, x_hat);
  if (variance == 0) return 0;
  const double weight = alpha * std::min(static_cast<double>(num_dead) / static_cast<double>(aux_k), 1.0) / variance;
  // s.g = dL/de_hat = 2 weight (e_hat - e); dcode and the weight gradients as for the main decode.
  const double sse = decode_residual(cpu{}, s.codes, p.w_dec, x, x_hat, static_cast<Scalar>(2 * weight), s.g, s.dcode);
  add_sparse_weight_gradients(cpu{}, s.codes, s.g, x_in, s.groups, s.dcode, grad.w_enc, grad.b_enc, grad.w_dec);
  if (decoder_bias)  // through the encoder input x - b_dec only: e_hat has no bias and e is a constant
    for (std::size_t e = 0; e < s.dcode.size(); ++e)
      if (s.dcode[e] != Scalar(0)) grad.b_dec.noalias() -= s.dcode[e] * p.w_enc.row(s.codes.indices[e]).transpose();
  return weight * sse;
}

}  // namespace sae
