// What the CPU-only models (BatchTopK, JumpReLU, Matryoshka) share around their parameters: the
// host accessors, the encoder's pre-activations through W_enc's panels packed by the optimizer's
// row hooks, sparse decoding, the optimizer's visit of the shared slots with the decoder's unit
// norm. Each model adds its selection and its loss.
#pragma once

#include <sae/backend/cpu/encoder_gemm.hpp>
#include <sae/backend/cpu/rows.hpp>
#include <sae/backend/cpu/sparse.hpp>
#include <sae/core/error.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/types.hpp>
#include <sae/core/fields.hpp>
#include <sae/io/json.hpp>
#include <sae/model/autoencoder_parameters.hpp>

#include <exception>
#include <functional>
#include <string>
#include <utility>

namespace sae::detail {

// W_enc packed for the CPU encoder GEMM (fp32), for the CPU-only models: the optimizer's row hooks
// repack each block of encoder rows right after updating it, so the next step's GEMM reuses the
// panels instead of packing W_enc again (TopK keeps its backend's own).
template <class Scalar>
class EncoderPacking {
 public:
  // The panels when fresh for the current W_enc, else null (the GEMM then packs into its scratch).
  const ops::PackedEncoder* packed() const { return ops::packs_encoder<Scalar> ? &packed_ : nullptr; }
  // W_enc changed outside an optimizer step.
  void invalidate() { packed_.fresh = false; }
  // The hook visit_parameters hands the optimizer for W_enc; call `updated(hooked)` after the visit.
  std::function<void(index_t, index_t)> hook(const Matrix<Scalar>& w_enc) {
    packed_.fresh = false;
    if constexpr (ops::packs_encoder<Scalar>) {
      ops::shape_packed_encoder(packed_, w_enc.rows(), w_enc.cols(), EncoderPrecision::fp32);
      return [this, &w_enc](index_t begin, index_t end) { ops::pack_encoder_rows(w_enc, begin, end, packed_); };
    } else {
      return {};
    }
  }
  void updated(bool hooked) { packed_.fresh = hooked && ops::packs_encoder<Scalar>; }

 private:
  ops::PackedEncoder packed_;
};

template <class Scalar, class Params = AutoencoderParameters<Scalar>>
class CpuDictionary {
 public:
  const Params& parameters() const { return p_; }
  Params& parameters() {
    decoder_normalized_ = false;  // the caller may change the weights
    packing_.invalidate();
    return p_;
  }

  // A no-op right after an optimizer step that already applied the unit-norm row constraint.
  void normalize_decoder() {
    if (!std::exchange(decoder_normalized_, false)) normalize_rows(cpu{}, p_.w_dec);
  }

 protected:
  // `p` checked against the shapes the config implies.
  CpuDictionary(Params p, index_t input_dim, index_t num_latents, bool decoder_bias, const char* caller)
      : p_(std::move(p)), decoder_bias_(decoder_bias) {
    check_parameter_shapes(p_, input_dim, num_latents, decoder_bias, caller);
  }

  const Vector<Scalar>* decoder_bias() const { return decoder_bias_ ? &p_.b_dec : nullptr; }

  // Fills ws.pre (and ws.x_in with the decoder bias) from x; returns the encoder's input.
  template <class Workspace>
  const Matrix<Scalar>& preactivations(const Matrix<Scalar>& x, Workspace& ws) const {
    return encoder_preactivations<Scalar, cpu>(p_, decoder_bias_, x, ws.x_in, ws.pre, EncoderPrecision::fp32, ws.gemm,
                                               packing_.packed());
  }

  Matrix<Scalar> decode_codes(const SparseCodes<Scalar>& codes) const {
    require(codes.num_latents == p_.w_dec.rows(), "decode()",
            "codes have " + std::to_string(codes.num_latents) + " latents, model has " + std::to_string(p_.w_dec.rows()));
    Matrix<Scalar> x_hat;
    sparse_decode(cpu{}, codes, p_.w_dec, decoder_bias(), x_hat);
    return x_hat;
  }

  // The optimizer's visit of slots 0-3 (visit_parameters), repacking W_enc and renormalising the
  // decoder rows in its pass when the visitor takes the row hooks.
  template <class Fn>
  void visit_shared_slots(const AutoencoderGradients<Scalar>& g, Fn& fn) {
    decoder_normalized_ = visit_parameters(p_, g, decoder_bias_, fn, packing_.hook(p_.w_enc));
    packing_.updated(decoder_normalized_);
  }

  Params p_;

 private:
  bool decoder_bias_;
  EncoderPacking<Scalar> packing_;
  bool decoder_normalized_ = false;  // the last optimizer step left w_dec's rows at unit norm
};

}  // namespace sae::detail
