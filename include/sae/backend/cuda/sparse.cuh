// Sparse decode and the sparse backward pass on the CUDA backend: the residual and its loss, the
// code gradients, then the weight gradients grouped by latent through a stable radix sort, so
// every sum runs in sample order without atomics (kernels.cuh).
#pragma once

#include <sae/backend/cuda/kernels.cuh>
#include <sae/backend/cuda/storage.cuh>

#include <algorithm>

namespace sae::ops {

namespace cuda_detail {
constexpr int kLossBlocks = 256;  // fixed, so the loss is summed in the same order every time

inline void require_no_bias(const cuda_backend::DeviceMatrix<float>* b_dec) {
  sae::detail::require(b_dec == nullptr, "sparse_decode()", "the decoder bias is not implemented on the CUDA backend");
}

// Active slots sorted by latent (stable, so each latent's samples ascend), then run-length
// encoded into (latent, offset, count) runs for weight_grad_kernel.
inline void group_by_latent(const cuda_backend::DeviceCodes& codes, cuda_backend::LatentGroups& g) {
  namespace kn = cuda_backend::kernels;
  const auto& ctx = cuda_backend::context();
  const int entries = static_cast<int>(codes.rows * codes.k);
  const auto n = static_cast<std::size_t>(entries);
  for (auto* b : {&g.keys, &g.keys_sorted, &g.order, &g.order_sorted, &g.unique, &g.counts, &g.offsets}) b->resize(n);
  g.num_runs.resize(1);
  kn::group_keys_kernel<<<kn::grid_for(n, 256, 1 << 30), 256, 0, ctx.stream()>>>(
      codes.indices.data(), codes.values.data(), entries, static_cast<int>(codes.num_latents), g.keys.data(), g.order.data());
  SAE_CUDA_CHECK_LAUNCH();
  int end_bit = 1;
  while ((index_t{1} << end_bit) <= codes.num_latents) ++end_bit;
  std::size_t sort_bytes = 0, rle_bytes = 0, scan_bytes = 0;
  SAE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, g.keys.data(), g.keys_sorted.data(), g.order.data(),
                                                 g.order_sorted.data(), entries, 0, end_bit, ctx.stream()));
  SAE_CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(nullptr, rle_bytes, g.keys_sorted.data(), g.unique.data(),
                                                    g.counts.data(), g.num_runs.data(), entries, ctx.stream()));
  SAE_CUDA_CHECK(
      cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, g.counts.data(), g.offsets.data(), entries, ctx.stream()));
  g.cub_temp.resize(std::max({sort_bytes, rle_bytes, scan_bytes}));
  SAE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(g.cub_temp.data(), sort_bytes, g.keys.data(), g.keys_sorted.data(),
                                                 g.order.data(), g.order_sorted.data(), entries, 0, end_bit, ctx.stream()));
  SAE_CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(g.cub_temp.data(), rle_bytes, g.keys_sorted.data(), g.unique.data(),
                                                    g.counts.data(), g.num_runs.data(), entries, ctx.stream()));
  // Counts past the last run are never read; the scan over all `entries` is harmless.
  SAE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(g.cub_temp.data(), scan_bytes, g.counts.data(), g.offsets.data(), entries,
                                               ctx.stream()));
}
}  // namespace cuda_detail

// x_hat[i] = sum_s values[i,s] * w_dec[indices[i,s]]
inline void sparse_decode(cuda, const cuda_backend::DeviceCodes& codes, const cuda_backend::DeviceMatrix<float>& w_dec,
                          const cuda_backend::DeviceMatrix<float>* b_dec, cuda_backend::DeviceMatrix<float>& x_hat) {
  cuda_detail::require_no_bias(b_dec);
  x_hat.resize(codes.rows, w_dec.cols());
  if (codes.rows == 0) return;
  cuda_backend::kernels::decode_kernel<<<static_cast<int>(codes.rows), 128, 0, cuda_backend::context().stream()>>>(
      codes.indices.data(), codes.values.data(), static_cast<int>(codes.k), w_dec.data(), static_cast<int>(w_dec.cols()),
      x_hat.data());
  SAE_CUDA_CHECK_LAUNCH();
}

// The decode, g = scale * (x_hat - x) and dcode[i,s] = g[i] . w_dec[j], as the CPU backend's
// decode_with_code_gradients; the squared error stays on the device until resolved.
inline cuda_backend::PendingSum decode_with_code_gradients(cuda, const cuda_backend::DeviceCodes& codes,
                                                           const cuda_backend::DeviceMatrix<float>& w_dec,
                                                           const cuda_backend::DeviceMatrix<float>* b_dec,
                                                           const cuda_backend::DeviceMatrix<float>& x, float scale,
                                                           cuda_backend::DeviceMatrix<float>& x_hat,
                                                           cuda_backend::DeviceMatrix<float>& g,
                                                           cuda_backend::CodeGradients& dcode) {
  namespace kn = cuda_backend::kernels;
  const auto& ctx = cuda_backend::context();
  sparse_decode(cuda{}, codes, w_dec, b_dec, x_hat);
  const index_t d = w_dec.cols();
  g.resize(codes.rows, d);
  dcode.sse_partials.resize(cuda_detail::kLossBlocks);
  kn::residual_kernel<<<cuda_detail::kLossBlocks, kn::kReduceThreads, 0, ctx.stream()>>>(
      x_hat.data(), x.data(), static_cast<size_t>(codes.rows * d), scale, g.data(), dcode.sse_partials.data());
  SAE_CUDA_CHECK_LAUNCH();
  const int entries = static_cast<int>(codes.rows * codes.k);
  dcode.values.resize(static_cast<std::size_t>(entries));
  kn::dcode_kernel<<<kn::grid_for(static_cast<std::size_t>(entries) * 32, 256, 1 << 30), 256, 0, ctx.stream()>>>(
      codes.indices.data(), codes.values.data(), entries, static_cast<int>(codes.k), g.data(), w_dec.data(),
      static_cast<int>(d), dcode.values.data());
  SAE_CUDA_CHECK_LAUNCH();
  return {&dcode.sse_partials, &dcode.sse_host};
}

// dw_dec[j] = sum_i z[i,j] g[i], dw_enc[j] = sum_i dcode[i,j] x_in[i], db_enc[j] = sum_i dcode[i,j]
// (dense [F, D]; rows of latents no sample selected are zero).
inline void sparse_weight_gradients(cuda, const cuda_backend::DeviceCodes& codes, const cuda_backend::DeviceMatrix<float>& g,
                                    const cuda_backend::DeviceMatrix<float>& x_in, cuda_backend::LatentGroups& groups,
                                    const cuda_backend::CodeGradients& dcode, cuda_backend::DeviceMatrix<float>& dw_enc,
                                    cuda_backend::DeviceMatrix<float>& db_enc, cuda_backend::DeviceMatrix<float>& dw_dec) {
  const auto& ctx = cuda_backend::context();
  const index_t f = codes.num_latents, d = x_in.cols();
  dw_enc.resize(f, d);
  dw_dec.resize(f, d);
  db_enc.resize(f, 1);
  dw_enc.zero(ctx);
  dw_dec.zero(ctx);
  db_enc.zero(ctx);
  const int entries = static_cast<int>(codes.rows * codes.k);
  if (entries == 0) return;
  cuda_detail::group_by_latent(codes, groups);
  cuda_backend::kernels::weight_grad_kernel<<<entries, 256, 0, ctx.stream()>>>(
      groups.unique.data(), groups.offsets.data(), groups.counts.data(), groups.num_runs.data(), groups.order_sorted.data(),
      codes.values.data(), dcode.values.data(), static_cast<int>(codes.k), static_cast<int>(f), g.data(), x_in.data(),
      static_cast<int>(d), dw_dec.data(), dw_enc.data(), db_enc.data());
  SAE_CUDA_CHECK_LAUNCH();
}

}  // namespace sae::ops
