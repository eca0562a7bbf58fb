// SGD with momentum on the CPU, torch.optim.SGD's arithmetic (dampening 0, not Nesterov):
//   d = g + weight_decay * p;  buf = d on the first step, else momentum * buf + d;  p -= lr * buf.
// As for Adam, every element is updated every step (a row absent from a row-sparse gradient has
// g = 0: its momentum still moves it), so a row-sparse gradient gives the result of its dense form.
#pragma once

#include <sae/backend/cpu/row_update.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/row_hooks.hpp>
#include <sae/core/row_sparse.hpp>
#include <sae/core/types.hpp>


namespace sae::ops {

template <class Scalar>
struct SgdStep {
  Scalar lr, momentum, weight_decay;
  bool first;  // the buffer starts as the first step's gradient
};

namespace detail {
template <class Scalar>
void sgd_span(const SgdStep<Scalar>& s, Scalar* p, Scalar* buf, const Scalar* g, index_t n) {
  for (index_t i = 0; i < n; ++i) {
    const Scalar d = (g ? g[i] : Scalar(0)) + s.weight_decay * p[i];
    buf[i] = s.first ? d : s.momentum * buf[i] + d;
    p[i] -= s.lr * buf[i];
  }
}
}  // namespace detail

// A weight matrix with a row-sparse gradient (rows in parallel blocks, hooks while in cache).
template <class Scalar>
void sgd_update(cpu, Matrix<Scalar>& p, Matrix<Scalar>& buf, const RowSparse<Scalar>& g, const SgdStep<Scalar>& s,
                const RowHooks& hooks) {
  detail::update_rows(p, g, hooks, "Sgd::step()",
                      [&](index_t j, const Scalar* g_row) { detail::sgd_span(s, p.row(j).data(), buf.row(j).data(), g_row, p.cols()); });
}

// A bias with a dense gradient.
template <class Scalar>
void sgd_update(cpu, Vector<Scalar>& p, Matrix<Scalar>& buf, const Vector<Scalar>& g, const SgdStep<Scalar>& s,
                const RowHooks&) {
  sae::detail::require(g.size() == p.size(), "Sgd::step()", "gradient length does not match its parameter");
  detail::sgd_span(s, p.data(), buf.data(), g.data(), p.size());
}

}  // namespace sae::ops
