// Where the CUDA backend keeps a model's data: device matrices (dense gradients), device sparse
// codes and the scratch its kernels reuse across steps (core/backend.hpp lists the members), with
// the transfers between them and the host data the models take and return. Float only.
#pragma once

#include <sae/backend/cuda/device_matrix.cuh>
#include <sae/backend/cuda/kernels.cuh>
#include <sae/core/backend.hpp>
#include <sae/core/encoder_precision.hpp>
#include <sae/core/error.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/types.hpp>

#include <cuda_bf16.h>

#include <string>
#include <type_traits>
#include <vector>

namespace sae {
namespace cuda_backend {

// Sparse codes on the device: [rows * k] latent indices and values, row-major like SparseCodes.
struct DeviceCodes {
  index_t rows = 0, k = 0, num_latents = 0;
  DeviceBuffer<int> indices;
  DeviceBuffer<float> values;
  void resize(index_t r, index_t k_, index_t f) {
    rows = r, k = k_, num_latents = f;
    indices.resize(static_cast<std::size_t>(r * k_));
    values.resize(static_cast<std::size_t>(r * k_));
  }
};

// The active slots sorted by latent and run-length encoded (CUB's radix sort, encode and scan).
struct LatentGroups {
  DeviceBuffer<int> keys, keys_sorted, order, order_sorted, unique, counts, offsets, num_runs;
  DeviceBuffer<unsigned char> cub_temp;
};

// dL/dcode per slot, and the squared error's per-block partial sums that the loss is read from.
struct CodeGradients {
  DeviceBuffer<float> values;
  DeviceBuffer<double> sse_partials;
  std::vector<double> sse_host;
};

// A sum still on the device (ops::resolve waits for it): the squared error of a step is read
// only after the backward kernels are queued, so the GPU never idles on the host in between.
struct PendingSum {
  const DeviceBuffer<double>* partials;
  std::vector<double>* host;
};

// bf16 copies of x and W_enc for EncoderPrecision::bf16.
struct EncoderScratch {
  DeviceBuffer<__nv_bfloat16> x16, w16;
};

struct NoPacking {};  // cuBLAS reads W_enc as it is

}  // namespace cuda_backend

template <class Scalar>
struct storage<cuda, Scalar> {
  static_assert(std::is_same_v<Scalar, float>, "the CUDA backend trains float models");
  using matrix = cuda_backend::DeviceMatrix<float>;
  using vector = cuda_backend::DeviceMatrix<float>;  // one column
  using row_gradient = cuda_backend::DeviceMatrix<float>;  // dense; untouched rows are zero
  using vector_gradient = cuda_backend::DeviceMatrix<float>;
  using codes = cuda_backend::DeviceCodes;
  using latent_groups = cuda_backend::LatentGroups;
  using code_gradients = cuda_backend::CodeGradients;
  using encoder_scratch = cuda_backend::EncoderScratch;
  using packed_encoder = cuda_backend::NoPacking;
  static constexpr bool host_memory = false;
  static constexpr bool decoder_bias = false;
  static constexpr bool packs_encoder = false;
};

namespace ops {

// Refuses, naming `caller`, a model these kernels cannot compute.
inline void require_supported(cuda, float, index_t k, bool decoder_bias, EncoderPrecision, const char* caller) {
  sae::detail::require(!decoder_bias, caller,
                       "the decoder bias is not implemented on the CUDA backend (the reports' model has none)");
  sae::detail::require(k <= cuda_backend::kernels::kTopkMaxK, caller,
                       "k must be <= " + std::to_string(cuda_backend::kernels::kTopkMaxK) + " on the CUDA backend, got " +
                           std::to_string(k));
}

// Host data copied to the device (into `dst`, reused across calls).
inline const cuda_backend::DeviceMatrix<float>& stage(cuda, const Matrix<float>& host,
                                                      cuda_backend::DeviceMatrix<float>& dst) {
  dst.upload(host, cuda_backend::context());
  return dst;
}
inline const cuda_backend::DeviceCodes& stage(cuda, const SparseCodes<float>& host, cuda_backend::DeviceCodes& dst) {
  dst.resize(host.rows, host.k, host.num_latents);
  dst.indices.upload(host.indices.data(), host.indices.size(), cuda_backend::context());
  dst.values.upload(host.values.data(), host.values.size(), cuda_backend::context());
  return dst;
}

// Results downloaded (these wait for the stream).
inline Matrix<float> to_host(cuda, const cuda_backend::DeviceMatrix<float>& m) {
  Matrix<float> host;
  m.download(host, cuda_backend::context());
  return host;
}
inline SparseCodes<float> to_host(cuda, const cuda_backend::DeviceCodes& codes) {
  SparseCodes<float> host;
  host.resize(codes.rows, codes.k, codes.num_latents);
  codes.indices.download(host.indices.data(), host.indices.size(), cuda_backend::context());
  codes.values.download(host.values.data(), host.values.size(), cuda_backend::context());
  return host;
}

// Parameters between host (Eigen Matrix or Vector) and device.
template <class Host>
void upload(cuda, const Host& host, cuda_backend::DeviceMatrix<float>& stored) {
  stored.upload(host, cuda_backend::context());
  cuda_backend::context().synchronize();  // the caller may free `host` on return
}
template <class Host>
void download(cuda, const cuda_backend::DeviceMatrix<float>& stored, Host& host) {
  stored.download(host, cuda_backend::context());
}

inline double resolve(cuda, cuda_backend::PendingSum sum) {
  sum.host->resize(sum.partials->size());
  sum.partials->download(sum.host->data(), sum.host->size(), cuda_backend::context());
  double total = 0;
  for (const double p : *sum.host) total += p;
  return total;
}

}  // namespace ops
}  // namespace sae
