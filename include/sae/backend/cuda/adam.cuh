// Adam's update and the decoder's unit-norm rows on the CUDA backend. The decoder's update and
// renormalisation run as one pass (unit_rows_kernel) when the optimizer hands over its row hooks.
#pragma once

#include <sae/backend/cuda/kernels.cuh>
#include <sae/backend/cuda/storage.cuh>
#include <sae/core/adam_step.hpp>
#include <sae/core/row_hooks.hpp>

namespace sae::ops {

// Moments of a parameter's shape, zeroed.
inline void zero_moments(cuda, index_t rows, index_t cols, cuda_backend::DeviceMatrix<float>& m) {
  if (m.rows() == rows && m.cols() == cols) return;
  m.resize(rows, cols);
  m.zero(cuda_backend::context());
}

// Scales each row to unit L2 norm (a zero row is left as is).
inline void normalize_rows(cuda, cuda_backend::DeviceMatrix<float>& w) {
  namespace kn = cuda_backend::kernels;
  if (w.rows() == 0) return;
  kn::unit_rows_kernel<<<static_cast<int>(w.rows()), kn::kReduceThreads, 0, cuda_backend::context().stream()>>>(
      w.data(), nullptr, nullptr, nullptr, static_cast<int>(w.cols()), false, {});
  SAE_CUDA_CHECK_LAUNCH();
}

// p, m, v and g share one shape (biases are one column). hooks.unit_norm renormalises each row in
// the same pass; after_block (the CPU encoder's repacking) has no CUDA counterpart.
inline void adam_update(cuda, cuda_backend::DeviceMatrix<float>& p, cuda_backend::DeviceMatrix<float>& m,
                        cuda_backend::DeviceMatrix<float>& v, const cuda_backend::DeviceMatrix<float>& g,
                        const AdamStep<float>& a, const RowHooks& hooks) {
  namespace kn = cuda_backend::kernels;
  sae::detail::require(g.rows() == p.rows() && g.cols() == p.cols(), "Adam::step()",
                       "gradient shape does not match its parameter");
  sae::detail::require(!hooks.after_block, "Adam::step()", "row-block hooks are CPU-only");
  const auto& ctx = cuda_backend::context();
  if (p.size() == 0) return;
  if (hooks.unit_norm) {
    kn::unit_rows_kernel<<<static_cast<int>(p.rows()), kn::kReduceThreads, 0, ctx.stream()>>>(
        p.data(), m.data(), v.data(), g.data(), static_cast<int>(p.cols()), true, a);
  } else {
    const auto n = static_cast<std::size_t>(p.size());
    kn::adam_kernel<<<kn::grid_for(n, 256), 256, 0, ctx.stream()>>>(p.data(), m.data(), v.data(), g.data(), n, a);
  }
  SAE_CUDA_CHECK_LAUNCH();
}

}  // namespace sae::ops
