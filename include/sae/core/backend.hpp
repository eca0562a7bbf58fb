// Backend tags. Kernels are free functions in sae::ops overloaded on these empty types
// (Thrust-style tag dispatch). Models call them unqualified, `topk_rows(Backend{}, ...)`: the tags
// derive from ops::backend_tag, so argument-dependent lookup finds each backend's overload where the
// model is instantiated, whatever order the headers came in. A backend without an op a model needs
// fails to compile there with a static_assert naming the op (has_op below).
#pragma once

#include <type_traits>

namespace sae {

namespace ops {
struct backend_tag {};  // the base that makes sae::ops an associated namespace of every tag
}  // namespace ops

struct cpu : ops::backend_tag {};   // Eigen + OpenMP kernels, include/sae/backend/cpu/
struct cuda : ops::backend_tag {};  // CUDA kernels, include/sae/backend/cuda/ (only through <sae/cuda.hpp>)

// Whether a backend's kernels are compiled into this translation unit. <sae/cuda.hpp> turns the
// cuda one on; models static_assert on it so a missing include fails with a readable message.
template <class Backend>
struct backend_available : std::false_type {};
template <>
struct backend_available<cpu> : std::true_type {};

// Where a backend keeps a model's data, specialised by each backend (backend/<name>/storage):
//   matrix, vector             parameters and per-batch activations
//   row_gradient               a weight matrix's gradient (the CPU keeps only the touched rows)
//   vector_gradient            a bias's gradient
//   codes                      the sparse codes of a batch (k latents per row)
//   latent_groups              codes regrouped by latent, for the weight gradients
//   code_gradients             dL/dcode per selected slot
//   encoder_scratch            the encoder GEMM's buffers
//   packed_encoder             W_enc as the encoder GEMM reads it (repacked after optimizer steps)
//   host_memory                whether these are the host's Eigen types (no transfers needed)
//   decoder_bias, packs_encoder  which optional features the backend's kernels provide
template <class Backend, class Scalar>
struct storage;

// Whether an op resolves for a backend: Op<Backend, Scalar> is the op's call expression, so a model
// can static_assert that its backend has every op it needs and name the one missing.
namespace backend_detail {
template <class Void, template <class, class> class Op, class Backend, class Scalar>
struct has_op : std::false_type {};
template <template <class, class> class Op, class Backend, class Scalar>
struct has_op<std::void_t<Op<Backend, Scalar>>, Op, Backend, Scalar> : std::true_type {};
}  // namespace backend_detail
template <template <class, class> class Op, class Backend, class Scalar>
inline constexpr bool has_op = backend_detail::has_op<void, Op, Backend, Scalar>::value;

}  // namespace sae
