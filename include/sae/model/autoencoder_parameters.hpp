// The parameters every dictionary model here shares — encoder W_enc [F, D] + b_enc [F], unit-norm
// decoder rows W_dec [F, D], optional decoder bias b_dec [D] — with their initialisation,
// renormalisation and the visit order optimizers rely on. Architectures differ in how latents
// are selected and how the loss is formed (model/dictionary.hpp).
#pragma once

#include <sae/backend/cpu/rows.hpp>
#include <sae/backend/cpu/storage.hpp>
#include <sae/core/backend.hpp>
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
#include <utility>
#include <vector>

namespace sae {

// Backend: where the parameters live (storage<Backend, Scalar>); the default is host memory.
template <class Scalar, class Backend = cpu>
struct AutoencoderParameters {
  using S = storage<Backend, Scalar>;
  typename S::matrix w_enc;  // [F, D]
  typename S::vector b_enc;  // [F]
  typename S::matrix w_dec;  // [F, D], unit rows
  typename S::vector b_dec;  // [D], empty unless decoder_bias
};

template <class Scalar, class Backend = cpu>
struct AutoencoderGradients {
  using S = storage<Backend, Scalar>;
  typename S::row_gradient w_enc;
  typename S::vector_gradient b_enc;
  typename S::row_gradient w_dec;
  typename S::vector_gradient b_dec;

  // Every gradient slot in the optimizers' order, for code that treats them alike (the MPI
  // exchange); an architecture with more slots extends it (JumpReluGradients).
  template <class F>
  void for_each_gradient(F&& f) {
    f(w_enc), f(b_enc), f(w_dec), f(b_dec);
  }
};

namespace detail {

// g_r -= (g_r . w_r) w_r for each row r of a row-sparse gradient, w's rows being unit norm: the
// gradient of the loss as a function of the normalised rows (tests/gradient_test.cpp checks it so).
template <class Scalar>
void project_out_rows(RowSparse<Scalar>& g, const Matrix<Scalar>& w) {
  for (std::size_t s = 0; s < g.rows.size(); ++s) {
    auto row = g.values.row(static_cast<index_t>(s));
    const auto unit = w.row(g.rows[s]);
    row -= row.dot(unit) * unit;
  }
}

// Initialised like the reports' PyTorch layers: W_enc, b_enc ~ U(+-1/sqrt(D)); W_dec ~ U(+-1/sqrt(F))
// then each row scaled to unit norm; b_dec = 0. `tied`: W_enc is then set to W_dec (the decoder's
// transpose in PyTorch's layout; the draws are the same, so W_dec and b_enc do not change).
template <class Scalar>
AutoencoderParameters<Scalar> init_parameters(index_t d, index_t f, bool decoder_bias, std::uint64_t seed,
                                              bool tied = false) {
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
  normalize_rows(cpu{}, p.w_dec);
  if (tied) p.w_enc = p.w_dec;
  return p;
}

// Visits each parameter with its gradient in a fixed slot order (optimizers keep per-slot state).
// A visitor taking a fourth RowHooks argument promises to apply them to each row right after
// updating it: the decoder's unit norm, and `after_w_enc` (if set) on each finished block of
// encoder rows. Then this returns true and the model skips its own passes. A three-argument
// visitor gets no hooks (false).
template <class Scalar, class Backend, class Fn>
bool visit_parameters(AutoencoderParameters<Scalar, Backend>& p, const AutoencoderGradients<Scalar, Backend>& g,
                      bool decoder_bias, Fn&& fn, std::function<void(index_t, index_t)> after_w_enc = {}) {
  using S = storage<Backend, Scalar>;
  if constexpr (std::is_invocable_v<Fn&, int, typename S::matrix&, const typename S::row_gradient&, const RowHooks&>) {
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
template <class Scalar, class Backend>
const typename storage<Backend, Scalar>::matrix& encoder_preactivations(
    const AutoencoderParameters<Scalar, Backend>& p, bool decoder_bias, const typename storage<Backend, Scalar>::matrix& x,
    typename storage<Backend, Scalar>::matrix& x_in, typename storage<Backend, Scalar>::matrix& pre,
    EncoderPrecision precision, typename storage<Backend, Scalar>::encoder_scratch& scratch,
    const typename storage<Backend, Scalar>::packed_encoder* packed = nullptr) {
  require(x.cols() == p.w_enc.cols(), "encode()",
          "input has " + std::to_string(x.cols()) + " columns, model expects input_dim=" + std::to_string(p.w_enc.cols()));
  const typename storage<Backend, Scalar>::matrix* in = &x;
  if constexpr (storage<Backend, Scalar>::decoder_bias)
    if (decoder_bias) {
      subtract_row(Backend{}, x, p.b_dec, x_in);
      in = &x_in;
    }
  encoder_preactivations(Backend{}, *in, p.w_enc, p.b_enc, pre, precision, scratch, packed);
  return *in;
}

}  // namespace detail

// A model's parameters where its backend computes, with a host view for checkpoints and analyses:
// on the CPU they are the host view; a device backend's are downloaded into a host copy when read
// after the kernels changed them. `HostParameters`: an architecture's own (more slots), host backends only.
template <class Scalar, class Backend, class HostParameters = AutoencoderParameters<Scalar>>
class ResidentParameters {
  using S = storage<Backend, Scalar>;
  struct None {};
  static_assert(S::host_memory || std::is_same_v<HostParameters, AutoencoderParameters<Scalar>>,
                "parameter slots beyond w_enc, b_enc, w_dec, b_dec are host-only for now: this backend lacks their storage");

 public:
  using Host = HostParameters;
  using Stored = std::conditional_t<S::host_memory, HostParameters, AutoencoderParameters<Scalar, Backend>>;

  explicit ResidentParameters(Host host) {
    if constexpr (S::host_memory) {
      stored_ = std::move(host);
    } else {
      upload(Backend{}, host.w_enc, stored_.w_enc);
      upload(Backend{}, host.b_enc, stored_.b_enc);
      upload(Backend{}, host.w_dec, stored_.w_dec);
      upload(Backend{}, host.b_dec, stored_.b_dec);
      host_ = std::move(host);
    }
  }

  const Stored& stored() const { return stored_; }
  // For the kernels to write; a device backend's host copy is out of date after.
  Stored& stored_for_update() {
    stale_ = true;
    return stored_;
  }
  const Host& host() const {
    if constexpr (S::host_memory) {
      return stored_;
    } else {
      if (std::exchange(stale_, false)) {
        download(Backend{}, stored_.w_enc, host_.w_enc);
        download(Backend{}, stored_.b_enc, host_.b_enc);
        download(Backend{}, stored_.w_dec, host_.w_dec);
        download(Backend{}, stored_.b_dec, host_.b_dec);
      }
      return host_;
    }
  }

 private:
  Stored stored_;
  mutable std::conditional_t<S::host_memory, None, Host> host_;
  mutable bool stale_ = false;
};

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
