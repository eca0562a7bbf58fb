// SGD with momentum (torch.optim.SGD, dampening 0, not Nesterov; backend/cpu/sgd.hpp has the
// formula). CPU models only for now. Like Adam it owns one buffer per parameter slot and applies
// the model's row hooks (decoder unit norm, encoder repacking) in its pass.
#pragma once

#include <sae/backend/cpu/sgd.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/fields.hpp>
#include <sae/core/row_hooks.hpp>
#include <sae/core/types.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace sae {

struct SgdConfig {
  double lr = 1e-2;
  double momentum = 0.9;
  double weight_decay = 0;  // coupled (added to the gradient), as torch.optim.SGD

  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.lr, field("lr", "learning rate").above(0).at_most(1e6));
    v(c.momentum, field("momentum", "SGD momentum").at_least(0).below(1));
    v(c.weight_decay, field("weight_decay", "weight decay added to the gradient").at_least(0).at_most(1e6)
                          .written_when(c.weight_decay != 0));
  }

  void validate() const {
    detail::require(lr > 0 && std::isfinite(lr), "SgdConfig", "lr must be positive, got " + std::to_string(lr));
    detail::require(momentum >= 0 && momentum < 1, "SgdConfig", "momentum must be in [0, 1), got " + std::to_string(momentum));
    detail::require(weight_decay >= 0 && std::isfinite(weight_decay), "SgdConfig",
                    "weight_decay must be >= 0, got " + std::to_string(weight_decay));
  }
};

template <class Scalar, class Backend = cpu>
class Sgd {
  static_assert(std::is_same_v<Backend, cpu>, "Sgd: CPU models only for now (use Adam on sae::cuda)");

 public:
  explicit Sgd(const SgdConfig& config = {}) : config_(config) { config_.validate(); }

  const SgdConfig& config() const { return config_; }
  std::int64_t steps() const { return t_; }

  template <class Model>
  void step(Model& model, const typename Model::Gradients& grad, double lr_factor = 1.0) {
    static_assert(std::is_same_v<typename Model::scalar_type, Scalar>, "Sgd<Scalar>: Scalar must be the model's scalar_type");
    ++t_;
    const ops::SgdStep<Scalar> s{static_cast<Scalar>(config_.lr * lr_factor), static_cast<Scalar>(config_.momentum),
                                 static_cast<Scalar>(config_.weight_decay), t_ == 1};
    model.for_each_parameter(grad, [&](int slot, auto& param, const auto& g, const RowHooks& hooks) {
      if (buffers_.size() <= static_cast<std::size_t>(slot)) buffers_.resize(static_cast<std::size_t>(slot) + 1);
      auto& buf = buffers_[static_cast<std::size_t>(slot)];
      if (buf.rows() != param.rows() || buf.cols() != param.cols()) buf.setZero(param.rows(), param.cols());
      sgd_update(cpu{}, param, buf, g, s, hooks);
    });
  }

 private:
  SgdConfig config_;
  std::int64_t t_ = 0;
  std::vector<Matrix<Scalar>> buffers_;  // momentum, the parameter's shape (vectors as one column)
};

}  // namespace sae
