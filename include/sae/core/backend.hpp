// Backend tags. Kernels are free functions overloaded on these empty types (Thrust-style tag
// dispatch), so models call `ops::topk_rows(Backend{}, ...)` and contain no #ifdef.
#pragma once

#include <type_traits>

namespace sae {

struct cpu {};   // Eigen + OpenMP kernels, include/sae/backend/cpu/
struct cuda {};  // CUDA kernels, include/sae/backend/cuda/ (only through <sae/cuda.hpp>)

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

}  // namespace sae
