// CUDA and cuBLAS failures as sae::cuda_error, naming the call and where it was made.
#pragma once

#include <sae/core/error.hpp>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

namespace sae {

struct cuda_error : error {
  using error::error;
};

namespace cuda_detail {
inline void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess)
    throw cuda_error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                     cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}
inline void check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw cuda_error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": cuBLAS status " +
                     std::to_string(static_cast<int>(status)));
}
}  // namespace cuda_detail

// Number of CUDA devices, 0 when there is no driver or no device (tests skip on 0).
inline int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

}  // namespace sae

#define SAE_CUDA_CHECK(call) ::sae::cuda_detail::check((call), #call, __FILE__, __LINE__)
// After a kernel launch: launch-configuration errors surface here, not at the next sync.
#define SAE_CUDA_CHECK_LAUNCH() ::sae::cuda_detail::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
