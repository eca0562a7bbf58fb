// Adam's update on the CPU (core/adam_step.hpp has the formula). Every element is updated every
// step, also where the gradient is zero (the moments still decay), so a row-sparse gradient gives
// the same result as its dense form. The square root is IEEE's (simd::exact_sqrt), as PyTorch's.
#pragma once

#include <sae/config.hpp>
#include <sae/backend/cpu/row_update.hpp>
#include <sae/core/adam_step.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/packet.hpp>
#include <sae/core/row_hooks.hpp>
#include <sae/core/row_sparse.hpp>
#include <sae/core/types.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace sae::ops {

namespace detail {
// The update of n contiguous elements in one pass, moments in registers; g == nullptr means a
// zero gradient.
template <bool HasGradient, class Scalar>
void adam_span(const AdamStep<Scalar>& a, Scalar* p, Scalar* m, Scalar* v, const Scalar* g, index_t n) {
  namespace ei = Eigen::internal;
  using P = simd::Packet<Scalar>;
  constexpr index_t lanes = simd::kLanes<Scalar>;
  const Scalar b1 = a.beta1, b2 = a.beta2;
  const P pb1 = ei::pset1<P>(b1), pc1 = ei::pset1<P>(Scalar(1) - b1), pb2 = ei::pset1<P>(b2);
  const P pc2 = ei::pset1<P>(Scalar(1) - b2), pstep = ei::pset1<P>(a.step_size), pbc2 = ei::pset1<P>(a.inv_sqrt_bc2);
  const P peps = ei::pset1<P>(a.eps);
  index_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    P mi = ei::pmul(pb1, ei::ploadu<P>(m + i)), vi = ei::pmul(pb2, ei::ploadu<P>(v + i));
    if constexpr (HasGradient) {
      const P gi = ei::ploadu<P>(g + i);
      mi = ei::padd(mi, ei::pmul(pc1, gi));
      vi = ei::padd(vi, ei::pmul(pc2, ei::pmul(gi, gi)));
    }
    ei::pstoreu(m + i, mi);
    ei::pstoreu(v + i, vi);
    const P denom = ei::padd(ei::pmul(simd::exact_sqrt(vi), pbc2), peps);
    ei::pstoreu(p + i, ei::psub(ei::ploadu<P>(p + i), ei::pdiv(ei::pmul(pstep, mi), denom)));
  }
  for (; i < n; ++i) {
    Scalar mi = b1 * m[i], vi = b2 * v[i];
    if constexpr (HasGradient) {
      mi += (Scalar(1) - b1) * g[i];
      vi += (Scalar(1) - b2) * (g[i] * g[i]);
    }
    m[i] = mi;
    v[i] = vi;
    p[i] -= a.step_size * mi / (std::sqrt(vi) * a.inv_sqrt_bc2 + a.eps);
  }
}
}  // namespace detail

// Moments of a parameter's shape, zeroed (vectors are stored as one column).
template <class Scalar>
void zero_moments(cpu, index_t rows, index_t cols, Matrix<Scalar>& m) {
  if (m.rows() != rows || m.cols() != cols) m.setZero(rows, cols);
}

// A weight matrix with a row-sparse gradient (rows in parallel blocks, hooks while in cache).
template <class Scalar>
void adam_update(cpu, Matrix<Scalar>& p, Matrix<Scalar>& m, Matrix<Scalar>& v, const RowSparse<Scalar>& g,
                 const AdamStep<Scalar>& a, const RowHooks& hooks) {
  detail::update_rows(p, g, hooks, "Adam::step()", [&](index_t j, const Scalar* g_row) {
    if (a.decay != Scalar(1)) p.row(j) *= a.decay;  // AdamW's decoupled weight decay
    if (g_row) detail::adam_span<true>(a, p.row(j).data(), m.row(j).data(), v.row(j).data(), g_row, p.cols());
    else detail::adam_span<false>(a, p.row(j).data(), m.row(j).data(), v.row(j).data(), g_row, p.cols());
  });
}

// A bias with a dense gradient.
template <class Scalar>
void adam_update(cpu, Vector<Scalar>& p, Matrix<Scalar>& m, Matrix<Scalar>& v, const Vector<Scalar>& g,
                 const AdamStep<Scalar>& a, const RowHooks&) {
  sae::detail::require(g.size() == p.size(), "Adam::step()", "gradient length does not match its parameter");
  if (a.decay != Scalar(1)) p *= a.decay;
  detail::adam_span<true>(a, p.data(), m.data(), v.data(), g.data(), p.size());
}

}  // namespace sae::ops
