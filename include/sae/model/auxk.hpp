// AuxK (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"), computed as sparsify does:
// a latent is dead when it has not fired for `dead_window` training samples (the mask for a step is
// taken before it; every latent that fires in the batch then restarts at 0). Each sample's residual
// e = x - x_hat (a constant) is reconstructed from its top-`aux_k` dead latents' pre-activations
// (ReLU), e_hat = W_dec^T z_aux with no decoder bias, and the loss gains
//   alpha * min(dead / aux_k, 1) * sum ||e_hat - e||^2 / sum ||e - mean(e)||^2,
// which gives dead latents a gradient towards what the live ones miss. CPU backend.
#pragma once

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

namespace detail {
// Up to this k_aux the top-k of the dead columns is taken in one pass over them, without gathering.
inline constexpr index_t kDirectAuxK = 32;

// Each row's top k of pre's `columns` (ascending): larger value first, ties to the lower latent,
// kept values through ReLU, as ops::topk_rows orders them.
template <class Scalar>
void topk_of_columns(const Matrix<Scalar>& pre, const std::vector<std::int32_t>& columns, index_t k, SparseCodes<Scalar>& out) {
  out.resize(pre.rows(), k, pre.cols());
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t i = 0; i < pre.rows(); ++i) {
    const Scalar* row = pre.row(i).data();
    Scalar best[kDirectAuxK];
    std::int32_t index[kDirectAuxK];
    // The first k columns sorted in, then each later one only when it beats the k-th best (a
    // later column never wins a tie).
    const index_t first = std::min<index_t>(k, static_cast<index_t>(columns.size()));
    for (index_t n = 0; n < first; ++n) {
      const std::int32_t c = columns[static_cast<std::size_t>(n)];
      index_t at = n;
      for (; at > 0 && row[c] > best[at - 1]; --at) best[at] = best[at - 1], index[at] = index[at - 1];
      best[at] = row[c], index[at] = c;
    }
    Scalar bar = best[k - 1];
    for (std::size_t q = static_cast<std::size_t>(first); q < columns.size(); ++q) {
      const std::int32_t c = columns[q];
      const Scalar v = row[c];
      if (!(v > bar)) continue;
      index_t at = k - 1;
      for (; at > 0 && v > best[at - 1]; --at) best[at] = best[at - 1], index[at] = index[at - 1];
      best[at] = v, index[at] = c;
      bar = best[k - 1];
    }
    std::int32_t* idx = out.row_indices(i);
    Scalar* val = out.row_values(i);
    for (index_t s = 0; s < k; ++s) idx[s] = index[s], val[s] = std::max(best[s], Scalar(0));
  }
}

// sum_i ||e_i - mean(e)||^2 for the residual e = x - x_hat, as sum ||e_i||^2 - B ||mean(e)||^2
// accumulated in double in one pass: column blocks in parallel, each column summed in row order and
// the blocks combined in order, so the result does not depend on the thread count.
template <class Scalar>
double residual_variance(const Matrix<Scalar>& x, const Matrix<Scalar>& x_hat) {
  constexpr index_t kBlock = 64;
  const index_t rows = x.rows(), cols = x.cols(), blocks = (cols + kBlock - 1) / kBlock;
  std::vector<double> squares(static_cast<std::size_t>(blocks)), squared_sums(static_cast<std::size_t>(blocks));
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t b = 0; b < blocks; ++b) {
    const index_t c0 = b * kBlock, len = std::min(kBlock, cols - c0);
    double sum[kBlock] = {}, square[kBlock] = {};
    for (index_t i = 0; i < rows; ++i) {
      const Scalar* xi = x.row(i).data() + c0;
      const Scalar* hi = x_hat.row(i).data() + c0;
      for (index_t c = 0; c < len; ++c) {
        const auto v = static_cast<double>(xi[c] - hi[c]);
        sum[c] += v, square[c] += v * v;
      }
    }
    double sq = 0, ss = 0;
    for (index_t c = 0; c < len; ++c) sq += square[c], ss += sum[c] * sum[c];
    squares[static_cast<std::size_t>(b)] = sq, squared_sums[static_cast<std::size_t>(b)] = ss;
  }
  double sq = 0, ss = 0;
  for (index_t b = 0; b < blocks; ++b) sq += squares[static_cast<std::size_t>(b)], ss += squared_sums[static_cast<std::size_t>(b)];
  return rows == 0 ? 0.0 : std::max(0.0, sq - ss / static_cast<double>(rows));
}

// AuxK's decode of the residual without storing it: per row, r = sum_s z_s w_dec[j_s] - (x - x_hat)
// (e_hat - e), g = scale * r and dcode[s] = g . w_dec[j_s]. Returns sum ||r||^2, summed in double
// in row order.
template <class Scalar>
double decode_residual(const SparseCodes<Scalar>& codes, const Matrix<Scalar>& w_dec, const Matrix<Scalar>& x,
                       const Matrix<Scalar>& x_hat, Scalar scale, Matrix<Scalar>& g, std::vector<Scalar>& dcode) {
  const index_t rows = codes.rows, k = codes.k;
  g.resize(rows, x.cols());
  dcode.assign(static_cast<std::size_t>(rows * k), Scalar(0));
  std::vector<double> row_sse(static_cast<std::size_t>(rows));
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (index_t i = 0; i < rows; ++i) {
    auto gi = g.row(i);
    gi = x_hat.row(i) - x.row(i);
    const std::int32_t* idx = codes.row_indices(i);
    const Scalar* val = codes.row_values(i);
    for (index_t s = 0; s < k; ++s)
      if (val[s] != Scalar(0)) gi.noalias() += val[s] * w_dec.row(idx[s]);
    row_sse[static_cast<std::size_t>(i)] = static_cast<double>(gi.squaredNorm());
    gi *= scale;
    for (index_t s = 0; s < k; ++s)
      if (val[s] > Scalar(0)) dcode[static_cast<std::size_t>(i * k + s)] = gi.dot(w_dec.row(idx[s]));
  }
  double sse = 0;
  for (const double r : row_sse) sse += r;
  return sse;
}
}  // namespace detail

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
  if (k <= detail::kDirectAuxK) {
    detail::topk_of_columns(pre, s.columns, k, s.codes);
  } else {
    s.pre.resize(pre.rows(), num_dead);
    for (index_t i = 0; i < pre.rows(); ++i)
      for (index_t c = 0; c < num_dead; ++c) s.pre(i, c) = pre(i, s.columns[static_cast<std::size_t>(c)]);
    ops::topk_rows(cpu{}, s.pre, k, Selection::value, s.codes);
    for (auto& j : s.codes.indices) j = s.columns[static_cast<std::size_t>(j)];
    s.codes.num_latents = pre.cols();
  }
  const double variance = detail::residual_variance(x, x_hat);
  if (variance == 0) return 0;
  const double weight = alpha * std::min(static_cast<double>(num_dead) / static_cast<double>(aux_k), 1.0) / variance;
  // s.g = dL/de_hat = 2 weight (e_hat - e); dcode and the weight gradients as for the main decode.
  const double sse = detail::decode_residual(s.codes, p.w_dec, x, x_hat, static_cast<Scalar>(2 * weight), s.g, s.dcode);
  ops::add_sparse_weight_gradients(cpu{}, s.codes, s.g, x_in, s.groups, s.dcode, grad.w_enc, grad.b_enc, grad.w_dec);
  if (decoder_bias)  // through the encoder input x - b_dec only: e_hat has no bias and e is a constant
    for (std::size_t e = 0; e < s.dcode.size(); ++e)
      if (s.dcode[e] != Scalar(0)) grad.b_dec.noalias() -= s.dcode[e] * p.w_enc.row(s.codes.indices[e]).transpose();
  return weight * sse;
}

}  // namespace sae
