// The encoder on the CUDA backend: pre = x W_enc^T + b_enc through cuBLAS in the asked precision,
// then the exact row-wise top-k (kernels.cuh).
#pragma once

#include <sae/backend/cuda/kernels.cuh>
#include <sae/backend/cuda/storage.cuh>
#include <sae/core/selection.hpp>

namespace sae::ops {

// Column-major view for cuBLAS: pre^T[F, B] = w_enc[F, D] x^T[D, B].
inline void encoder_preactivations(cuda, const cuda_backend::DeviceMatrix<float>& x,
                                   const cuda_backend::DeviceMatrix<float>& w_enc,
                                   const cuda_backend::DeviceMatrix<float>& b_enc, cuda_backend::DeviceMatrix<float>& pre,
                                   EncoderPrecision precision, cuda_backend::EncoderScratch& scratch,
                                   const cuda_backend::NoPacking* = nullptr) {
  namespace kn = cuda_backend::kernels;
  const auto& ctx = cuda_backend::context();
  const int rows = static_cast<int>(x.rows()), d = static_cast<int>(x.cols()), f = static_cast<int>(w_enc.rows());
  pre.resize(rows, f);
  const float one = 1.0f, zero = 0.0f;
  // The handle is shared by every model, so each call sets its own arithmetic.
  SAE_CUDA_CHECK(cublasSetMathMode(ctx.handle(), precision == EncoderPrecision::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                                     : CUBLAS_DEFAULT_MATH));
  if (precision == EncoderPrecision::bf16) {
    scratch.x16.resize(static_cast<std::size_t>(x.size()));
    scratch.w16.resize(static_cast<std::size_t>(w_enc.size()));
    kn::to_bf16_kernel<<<kn::grid_for(scratch.x16.size(), 256), 256, 0, ctx.stream()>>>(x.data(), scratch.x16.data(),
                                                                                                 scratch.x16.size());
    kn::to_bf16_kernel<<<kn::grid_for(scratch.w16.size(), 256), 256, 0, ctx.stream()>>>(
        w_enc.data(), scratch.w16.data(), scratch.w16.size());
    SAE_CUDA_CHECK_LAUNCH();
    SAE_CUDA_CHECK(cublasGemmEx(ctx.handle(), CUBLAS_OP_T, CUBLAS_OP_N, f, rows, d, &one, scratch.w16.data(), CUDA_R_16BF, d,
                                scratch.x16.data(), CUDA_R_16BF, d, &zero, pre.data(), CUDA_R_32F, f, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
  } else {
    SAE_CUDA_CHECK(cublasSgemm(ctx.handle(), CUBLAS_OP_T, CUBLAS_OP_N, f, rows, d, &one, w_enc.data(), d, x.data(), d, &zero,
                               pre.data(), f));
  }
  const auto n = static_cast<std::size_t>(pre.size());
  kn::add_bias_kernel<<<kn::grid_for(n, 256), 256, 0, ctx.stream()>>>(pre.data(), b_enc.data(),
                                                                               static_cast<size_t>(rows), f);
  SAE_CUDA_CHECK_LAUNCH();
}

// The k largest entries of each row of pre (by value or magnitude), values through ReLU.
inline void topk_rows(cuda, const cuda_backend::DeviceMatrix<float>& pre, index_t k, Selection selection,
                      cuda_backend::DeviceCodes& codes) {
  namespace kn = cuda_backend::kernels;
  const auto& ctx = cuda_backend::context();
  codes.resize(pre.rows(), k, pre.cols());
  if (pre.rows() == 0) return;
  const int rows = static_cast<int>(pre.rows()), f = static_cast<int>(pre.cols()), kk = static_cast<int>(k);
  if (selection == Selection::magnitude)
    kn::topk_rows_kernel<true><<<rows, kn::kTopkThreads, 0, ctx.stream()>>>(pre.data(), f, kk, codes.indices.data(),
                                                                            codes.values.data());
  else
    kn::topk_rows_kernel<false><<<rows, kn::kTopkThreads, 0, ctx.stream()>>>(pre.data(), f, kk, codes.indices.data(),
                                                                             codes.values.data());
  SAE_CUDA_CHECK_LAUNCH();
}

}  // namespace sae::ops
