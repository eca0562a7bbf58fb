// The CUDA backend's kernels: exact row-wise top-k, sparse decode, the residual and loss, the
// sparse backward (code gradients, then weight gradients grouped by latent through a stable radix
// sort, so every sum runs in sample order without atomics), and Adam with the decoder's
// unit-row renormalisation fused in. Float only.
#pragma once

#include <sae/backend/cuda/device_matrix.cuh>
#include <sae/core/adam_step.hpp>

#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_run_length_encode.cuh>
#include <cub/device/device_scan.cuh>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace sae::cuda_backend::kernels {

constexpr int kTopkThreads = 256;
constexpr int kTopkMaxK = 512;  // 2 items per thread in the final block sort
constexpr int kReduceThreads = 256;

// Blocks for a grid-stride loop over n items.
inline int grid_for(std::size_t n, int threads, int max_blocks = 4096) {
  return static_cast<int>(std::max<std::size_t>(1, std::min<std::size_t>((n + threads - 1) / threads, max_blocks)));
}

// Order-preserving map of floats to unsigned ints: larger float, larger key.
__device__ __forceinline__ unsigned sortable_key(float v) {
  const unsigned u = __float_as_uint(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Key in the high half, inverted index in the low half: sorting descending gives larger key first
// and, among equal keys, the lower latent index first — the CPU backend's order.
__device__ __forceinline__ unsigned long long compose(unsigned key, int j) {
  return (static_cast<unsigned long long>(key) << 32) | (0xFFFFFFFFu - static_cast<unsigned>(j));
}

// Exact top-k of each row of pre ([rows, f]); one block per row. A 4-pass 8-bit radix select
// finds the k-th largest key T and how many of the entries equal to T to keep; an ordered block
// scan keeps every entry above T and the lowest-indexed entries equal to T; a block radix sort
// orders the k winners. Values go through ReLU.
template <bool Magnitude>
__global__ void __launch_bounds__(kTopkThreads) topk_rows_kernel(const float* pre, int f, int k, int* out_idx,
                                                                  float* out_val) {
  using Scan = cub::BlockScan<int, kTopkThreads>;
  using Sort = cub::BlockRadixSort<unsigned long long, kTopkThreads, kTopkMaxK / kTopkThreads>;
  __shared__ union {
    typename Scan::TempStorage scan;
    typename Sort::TempStorage sort;
  } tmp;
  __shared__ int hist[256];
  __shared__ unsigned prefix_s;
  __shared__ int remaining_s, gt_base, eq_base;
  __shared__ unsigned long long sel[kTopkMaxK];

  const float* row = pre + static_cast<size_t>(blockIdx.x) * f;
  const auto key_at = [row](int j) { return sortable_key(Magnitude ? fabsf(row[j]) : row[j]); };

  unsigned prefix = 0, mask = 0;
  int remaining = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
    __syncthreads();
    for (int j = threadIdx.x; j < f; j += blockDim.x) {
      const unsigned key = key_at(j);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 0xFFu], 1);  // counts: order-free
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int above = 0, d = 255;
      for (; d > 0; --d) {
        if (above + hist[d] >= remaining) break;
        above += hist[d];
      }
      remaining_s = remaining - above;
      prefix_s = prefix | (static_cast<unsigned>(d) << shift);
    }
    __syncthreads();
    remaining = remaining_s;
    prefix = prefix_s;
    mask |= 0xFFu << shift;
    __syncthreads();
  }
  // prefix is now the k-th largest key T; keep all keys > T and the first `remaining` equal to T.
  const int above_total = k - remaining;
  for (int s = threadIdx.x; s < kTopkMaxK; s += blockDim.x) sel[s] = 0ull;  // sorts last
  if (threadIdx.x == 0) gt_base = eq_base = 0;
  __syncthreads();
  for (int base = 0; base < f; base += blockDim.x) {
    const int j = base + static_cast<int>(threadIdx.x);
    const unsigned key = j < f ? key_at(j) : 0u;
    const int gt = j < f && key > prefix, eq = j < f && key == prefix;
    int gt_rank, eq_rank, gt_sum, eq_sum;
    Scan(tmp.scan).ExclusiveSum(gt, gt_rank, gt_sum);
    __syncthreads();
    Scan(tmp.scan).ExclusiveSum(eq, eq_rank, eq_sum);
    if (gt) sel[gt_base + gt_rank] = compose(key, j);
    if (eq && eq_base + eq_rank < remaining) sel[above_total + eq_base + eq_rank] = compose(key, j);
    __syncthreads();
    if (threadIdx.x == 0) gt_base += gt_sum, eq_base += eq_sum;
    __syncthreads();
  }
  unsigned long long items[kTopkMaxK / kTopkThreads];
  for (int t = 0; t < kTopkMaxK / kTopkThreads; ++t) items[t] = sel[threadIdx.x * (kTopkMaxK / kTopkThreads) + t];
  Sort(tmp.sort).SortDescending(items);
  for (int t = 0; t < kTopkMaxK / kTopkThreads; ++t) {
    const int rank = static_cast<int>(threadIdx.x) * (kTopkMaxK / kTopkThreads) + t;
    if (rank < k) {
      const int j = static_cast<int>(0xFFFFFFFFu - static_cast<unsigned>(items[t] & 0xFFFFFFFFull));
      out_idx[static_cast<size_t>(blockIdx.x) * k + rank] = j;
      out_val[static_cast<size_t>(blockIdx.x) * k + rank] = fmaxf(row[j], 0.0f);
    }
  }
}

// pre[i, j] += b[j]
__global__ void add_bias_kernel(float* pre, const float* b, size_t rows, int cols) {
  for (size_t e = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; e < rows * cols;
       e += static_cast<size_t>(gridDim.x) * blockDim.x)
    pre[e] += b[e % cols];
}

__global__ void to_bf16_kernel(const float* in, __nv_bfloat16* out, size_t n) {
  for (size_t e = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[e] = __float2bfloat16(in[e]);
}

// x_hat[i] = sum_s val[i,s] * w_dec[idx[i,s]]; one block per row, threads over D.
__global__ void decode_kernel(const int* idx, const float* val, int k, const float* w_dec, int d, float* x_hat) {
  const size_t i = blockIdx.x;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float acc = 0.0f;
    for (int s = 0; s < k; ++s) {
      const float v = val[i * k + s];
      if (v != 0.0f) acc = fmaf(v, w_dec[static_cast<size_t>(idx[i * k + s]) * d + c], acc);
    }
    x_hat[i * d + c] = acc;
  }
}

// g = scale * (x_hat - x), and each block's sum of squared residuals (in double) into partial[].
// A fixed grid and block size make the sum's order, and so the loss, deterministic.
__global__ void __launch_bounds__(kReduceThreads) residual_kernel(const float* x_hat, const float* x, size_t n,
                                                                  float scale, float* g, double* partial) {
  __shared__ double red[kReduceThreads];
  double acc = 0;
  for (size_t e = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float r = x_hat[e] - x[e];
    acc += static_cast<double>(r) * r;
    if (g) g[e] = r * scale;
  }
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int s = kReduceThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = red[0];
}

// dcode[e] = g[i] . w_dec[j] for each active slot e = (i, s); one warp per slot.
__global__ void dcode_kernel(const int* idx, const float* val, int entries, int k, const float* g, const float* w_dec,
                             int d, float* dcode) {
  const int e = static_cast<int>((blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x) / 32);
  const int lane = threadIdx.x % 32;
  if (e >= entries) return;  // whole warps leave together
  float acc = 0.0f;
  if (val[e] > 0.0f) {
    const size_t i = e / k, j = idx[e];
    for (int c = lane; c < d; c += 32) acc = fmaf(g[i * d + c], w_dec[j * d + c], acc);
  }
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
  if (lane == 0) dcode[e] = acc;
}

// Sort keys for grouping: the latent of each active slot, `f` (sorted last) for inactive ones.
__global__ void group_keys_kernel(const int* idx, const float* val, int entries, int f, int* keys, int* order) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e < entries) {
    keys[e] = val[e] > 0.0f ? idx[e] : f;
    order[e] = e;
  }
}

// One block per latent run (from the stable sort, so samples ascend): dw_dec[j] = sum z * g[i],
// dw_enc[j] = sum dcode * x[i], db_enc[j] = sum dcode. Rows of untouched latents stay zero.
__global__ void weight_grad_kernel(const int* unique, const int* offsets, const int* counts, const int* num_runs,
                                   const int* order, const float* val, const float* dcode, int k, int f, const float* g,
                                   const float* x, int d, float* dw_dec, float* dw_enc, float* db_enc) {
  const int r = blockIdx.x;
  if (r >= *num_runs) return;
  const int j = unique[r];
  if (j >= f) return;
  const int start = offsets[r], end = offsets[r] + counts[r];
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float a_dec = 0.0f, a_enc = 0.0f;
    for (int p = start; p < end; ++p) {
      const int e = order[p];
      const size_t i = e / k;
      a_dec = fmaf(val[e], g[i * d + c], a_dec);
      a_enc = fmaf(dcode[e], x[i * d + c], a_enc);
    }
    dw_dec[static_cast<size_t>(j) * d + c] = a_dec;
    dw_enc[static_cast<size_t>(j) * d + c] = a_enc;
  }
  if (threadIdx.x == 0) {
    float b = 0.0f;
    for (int p = start; p < end; ++p) b += dcode[order[p]];
    db_enc[j] = b;
  }
}

// PyTorch's Adam with the bias corrections folded into two scalars (core/adam_step.hpp), as the
// CPU optimizer does.
__device__ __forceinline__ float adam_update(float& p, float& m, float& v, float g, const AdamStep<float>& a) {
  if (a.decay != 1.0f) p *= a.decay;  // AdamW
  m = a.beta1 * m + (1.0f - a.beta1) * g;
  v = a.beta2 * v + (1.0f - a.beta2) * g * g;
  p -= a.step_size * m / (sqrtf(v) * a.inv_sqrt_bc2 + a.eps);
  return p;
}

__global__ void adam_kernel(float* p, float* m, float* v, const float* g, size_t n, AdamStep<float> a) {
  for (size_t e = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<size_t>(gridDim.x) * blockDim.x)
    adam_update(p[e], m[e], v[e], g[e], a);
}

// Scales each row to unit norm (a zero row is left as is); one block per row. With `adam`, the
// row is first updated by Adam — one pass over the decoder instead of two.
__global__ void __launch_bounds__(kReduceThreads) unit_rows_kernel(float* p, float* m, float* v, const float* g, int d,
                                                                   bool adam, AdamStep<float> a) {
  __shared__ float red[kReduceThreads];
  const size_t base = static_cast<size_t>(blockIdx.x) * d;
  float ss = 0.0f;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    const float q = adam ? adam_update(p[base + c], m[base + c], v[base + c], g[base + c], a) : p[base + c];
    ss += q * q;
  }
  red[threadIdx.x] = ss;
  __syncthreads();
  for (int s = kReduceThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  const float norm = sqrtf(red[0]);
  if (norm > 0.0f)
    for (int c = threadIdx.x; c < d; c += blockDim.x) p[base + c] /= norm;
}

}  // namespace sae::cuda_backend::kernels
