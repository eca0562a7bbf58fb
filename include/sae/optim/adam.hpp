// Adam (Kingma & Ba) as an update policy, with exactly PyTorch's arithmetic so our runs track the
// reference implementation:
//   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2,
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// Every element is updated every step, also where the gradient is zero (the moments still decay),
// so sparse gradients give the same result as their dense form.
#pragma once

#include <sae/config.hpp>
#include <sae/core/error.hpp>
#include <sae/core/packet.hpp>
#include <sae/core/types.hpp>
#include <sae/core/row_hooks.hpp>
#include <sae/core/row_sparse.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace sae {

struct AdamConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;

  void validate() const {
    detail::require(lr > 0 && std::isfinite(lr), "AdamConfig", "lr must be positive, got " + std::to_string(lr));
    detail::require(beta1 >= 0 && beta1 < 1, "AdamConfig", "beta1 must be in [0, 1), got " + std::to_string(beta1));
    detail::require(beta2 >= 0 && beta2 < 1, "AdamConfig", "beta2 must be in [0, 1), got " + std::to_string(beta2));
    detail::require(eps > 0, "AdamConfig", "eps must be positive, got " + std::to_string(eps));
  }
};

// Models whose parameters live on a device run the update there (same formula, same scalars).
template <class, class = void>
struct has_device_adam_step : std::false_type {};
template <class M>
struct has_device_adam_step<M, std::void_t<decltype(&M::device_adam_step)>> : std::true_type {};

template <class Scalar>
class Adam {
 public:
  explicit Adam(const AdamConfig& config = {}) : config_(config) { config_.validate(); }

  const AdamConfig& config() const { return config_; }
  std::int64_t steps() const { return t_; }

  // One step over every parameter the model exposes.
  template <class Model>
  void step(Model& model, const typename Model::Gradients& grad) {
    ++t_;
    step_size_ = static_cast<Scalar>(config_.lr / (1.0 - std::pow(config_.beta1, static_cast<double>(t_))));
    inv_sqrt_bc2_ = static_cast<Scalar>(1.0 / std::sqrt(1.0 - std::pow(config_.beta2, static_cast<double>(t_))));
    if constexpr (has_device_adam_step<Model>::value)
      model.device_adam_step(config_, step_size_, inv_sqrt_bc2_, grad);  // state lives with the model (CUDA)
    else
      model.for_each_parameter(grad, [this](int slot, auto& param, const auto& g, const RowHooks& hooks) {
        update(moments(slot, param), param, g, hooks);
      });
  }

 private:
  struct Moments {
    Matrix<Scalar> m, v;  // same shape as the parameter (vectors are stored as one column)
  };

  template <class Param>
  Moments& moments(int slot, const Param& p) {
    if (state_.size() <= static_cast<std::size_t>(slot)) state_.resize(static_cast<std::size_t>(slot) + 1);
    Moments& s = state_[static_cast<std::size_t>(slot)];
    if (s.m.rows() != p.rows() || s.m.cols() != p.cols()) {
      s.m.setZero(p.rows(), p.cols());
      s.v.setZero(p.rows(), p.cols());
    }
    return s;
  }

  // The update of n contiguous elements in one pass, moments in registers; g == nullptr means a
  // zero gradient. The square root is IEEE's (simd::exact_sqrt), as PyTorch's.
  template <bool HasGradient>
  void update_span(Scalar* p, Scalar* m, Scalar* v, const Scalar* g, index_t n) const {
    namespace ei = Eigen::internal;
    using P = simd::Packet<Scalar>;
    constexpr index_t lanes = simd::kLanes<Scalar>;
    const auto b1 = static_cast<Scalar>(config_.beta1), b2 = static_cast<Scalar>(config_.beta2);
    const auto eps = static_cast<Scalar>(config_.eps);
    const P pb1 = ei::pset1<P>(b1), pc1 = ei::pset1<P>(Scalar(1) - b1), pb2 = ei::pset1<P>(b2);
    const P pc2 = ei::pset1<P>(Scalar(1) - b2), pstep = ei::pset1<P>(step_size_), pbc2 = ei::pset1<P>(inv_sqrt_bc2_);
    const P peps = ei::pset1<P>(eps);
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
      p[i] -= step_size_ * mi / (std::sqrt(vi) * inv_sqrt_bc2_ + eps);
    }
  }

  // Blocks of kRowBlock rows are updated in parallel; each row gets its hooks while in cache.
  void update(Moments& s, Matrix<Scalar>& p, const RowSparse<Scalar>& g, const RowHooks& hooks) {
    detail::require(g.total_rows == p.rows() && (g.rows.empty() || g.cols() == p.cols()), "Adam::step()",
                    "gradient shape does not match its parameter");
    std::vector<std::int32_t> slot(static_cast<std::size_t>(p.rows()), -1);
    for (std::size_t r = 0; r < g.rows.size(); ++r) slot[static_cast<std::size_t>(g.rows[r])] = static_cast<std::int32_t>(r);
    const index_t blocks = (p.rows() + kRowBlock - 1) / kRowBlock;
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (index_t b = 0; b < blocks; ++b) {
      const index_t begin = b * kRowBlock, end = std::min(p.rows(), begin + kRowBlock);
      for (index_t j = begin; j < end; ++j) {
        const std::int32_t r = slot[static_cast<std::size_t>(j)];
        if (r >= 0) update_span<true>(p.row(j).data(), s.m.row(j).data(), s.v.row(j).data(), g.values.row(r).data(), p.cols());
        else update_span<false>(p.row(j).data(), s.m.row(j).data(), s.v.row(j).data(), nullptr, p.cols());
        if (hooks.unit_norm) detail::normalize_row(p.row(j));
      }
      if (hooks.after_block) hooks.after_block(begin, end);
    }
  }

  void update(Moments& s, Vector<Scalar>& p, const Vector<Scalar>& g, const RowHooks&) {
    detail::require(g.size() == p.size(), "Adam::step()", "gradient length does not match its parameter");
    update_span<true>(p.data(), s.m.data(), s.v.data(), g.data(), p.size());
  }

  AdamConfig config_;
  std::int64_t t_ = 0;
  Scalar step_size_ = 0, inv_sqrt_bc2_ = 1;
  std::vector<Moments> state_;
};

}  // namespace sae
