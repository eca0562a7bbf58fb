// Device memory and the CUDA context. DeviceMatrix is move-only and row-major like the
// host Matrix; transfers are explicit (upload/download) and ordered on the context's stream.
#pragma once

#include <sae/backend/cuda/error.cuh>
#include <sae/core/types.hpp>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace sae::cuda_backend {

// One stream and one cuBLAS handle bound to it.
class Context {
 public:
  Context() {
    SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    SAE_CUDA_CHECK(cublasCreate(&handle_));
    SAE_CUDA_CHECK(cublasSetStream(handle_, stream_));
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() {
    cublasDestroy(handle_);
    cudaStreamDestroy(stream_);
  }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t handle() const { return handle_; }
  void synchronize() const { SAE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_{};
  cublasHandle_t handle_{};
};

// The context every CUDA op runs on: one stream per process, so the kernels of every model are
// ordered one after another (models are not for concurrent use from several host threads).
inline const Context& context() {
  static const Context ctx;
  return ctx;
}

// Owning, move-only device array.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) { resize(n); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { release(); }

  // Reallocates only when growing; contents are not preserved.
  void resize(std::size_t n) {
    if (n <= capacity_) {
      size_ = n;
      return;
    }
    release();
    if (n) SAE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
    size_ = capacity_ = n;
  }
  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  std::size_t size() const { return size_; }

  void upload(const T* host, std::size_t n, const Context& ctx) {
    resize(n);
    if (n) SAE_CUDA_CHECK(cudaMemcpyAsync(ptr_, host, n * sizeof(T), cudaMemcpyHostToDevice, ctx.stream()));
  }
  // Waits for the copy, so `host` is ready on return.
  void download(T* host, std::size_t n, const Context& ctx) const {
    if (n) SAE_CUDA_CHECK(cudaMemcpyAsync(host, ptr_, n * sizeof(T), cudaMemcpyDeviceToHost, ctx.stream()));
    ctx.synchronize();
  }
  void zero(const Context& ctx) {
    if (size_) SAE_CUDA_CHECK(cudaMemsetAsync(ptr_, 0, size_ * sizeof(T), ctx.stream()));
  }

 private:
  void release() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    size_ = capacity_ = 0;
  }
  T* ptr_ = nullptr;
  std::size_t size_ = 0, capacity_ = 0;
};

// A row-major [rows, cols] matrix in device memory.
template <class T>
class DeviceMatrix {
 public:
  DeviceMatrix() = default;
  DeviceMatrix(index_t rows, index_t cols) { resize(rows, cols); }
  void resize(index_t rows, index_t cols) {
    rows_ = rows, cols_ = cols;
    buf_.resize(static_cast<std::size_t>(rows * cols));
  }
  index_t rows() const { return rows_; }
  index_t cols() const { return cols_; }
  index_t size() const { return rows_ * cols_; }
  T* data() { return buf_.data(); }
  const T* data() const { return buf_.data(); }
  void zero(const Context& ctx) { buf_.zero(ctx); }

  // Host Eigen (row-major Matrix or Vector) <-> device.
  template <class Host>
  void upload(const Host& h, const Context& ctx) {
    resize(h.rows(), h.cols());
    buf_.upload(h.data(), static_cast<std::size_t>(h.size()), ctx);
  }
  template <class Host>
  void download(Host& h, const Context& ctx) const {
    h.resize(rows_, cols_);
    buf_.download(h.data(), static_cast<std::size_t>(size()), ctx);
  }

 private:
  index_t rows_ = 0, cols_ = 0;
  DeviceBuffer<T> buf_;
};

}  // namespace sae::cuda_backend
