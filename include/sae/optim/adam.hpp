// Adam (Kingma & Ba) with exactly PyTorch's arithmetic, so our runs track the reference
// implementation (core/adam_step.hpp has the formula), and AdamW (Loshchilov & Hutter: weight_decay
// > 0, decoupled from the gradient, as torch.optim.AdamW). The optimizer owns the step count and the
// moments, one pair per parameter slot, kept where the backend computes; the update itself is the
// backend's kernel, adam_update(Backend{}, ...).
#pragma once

#include <sae/backend/cpu/adam.hpp>
#include <sae/core/adam_step.hpp>
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

struct AdamConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;  // AdamW's decoupled decay: p *= 1 - lr * weight_decay before each update

  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.lr, field("lr", "learning rate").above(0).at_most(1e6));
    v(c.beta1, field("beta1", "first-moment decay").at_least(0).below(1));
    v(c.beta2, field("beta2", "second-moment decay").at_least(0).below(1));
    v(c.eps, field("eps", "added to the root of the second moment").above(0).at_most(1));
    v(c.weight_decay, field("weight_decay", "decoupled weight decay (AdamW; 0 = Adam)").at_least(0).at_most(1e6)
                          .written_when(c.weight_decay != 0));
  }

  void validate() const {
    detail::require(lr > 0 && std::isfinite(lr), "AdamConfig", "lr must be positive, got " + std::to_string(lr));
    detail::require(beta1 >= 0 && beta1 < 1, "AdamConfig", "beta1 must be in [0, 1), got " + std::to_string(beta1));
    detail::require(beta2 >= 0 && beta2 < 1, "AdamConfig", "beta2 must be in [0, 1), got " + std::to_string(beta2));
    detail::require(eps > 0, "AdamConfig", "eps must be positive, got " + std::to_string(eps));
    detail::require(weight_decay >= 0 && std::isfinite(weight_decay), "AdamConfig",
                    "weight_decay must be >= 0, got " + std::to_string(weight_decay));
  }
};

// Backend: where the model's parameters live (Adam<float, sae::cuda> for a CUDA model).
template <class Scalar, class Backend = cpu>
class Adam {
 public:
  explicit Adam(const AdamConfig& config = {}) : config_(config) { config_.validate(); }

  const AdamConfig& config() const { return config_; }
  std::int64_t steps() const { return t_; }

  // One step over every parameter the model exposes, at lr x lr_factor (the trainer's LrSchedule);
  // the visitor takes the row hooks, so the backend's update also renormalises the decoder rows
  // (and repacks the encoder) in its pass.
  template <class Model>
  void step(Model& model, const typename Model::Gradients& grad, double lr_factor = 1.0) {
    static_assert(std::is_same_v<typename Model::backend_type, Backend>,
                  "Adam<Scalar, Backend>: the optimizer's backend must be the model's (Adam<float, sae::cuda> "
                  "trains TopKAutoencoder<float, sae::cuda>)");
    static_assert(std::is_same_v<typename Model::scalar_type, Scalar>,
                  "Adam<Scalar, Backend>: the optimizer's Scalar must be the model's scalar_type");
    ++t_;
    const double t = static_cast<double>(t_), lr = config_.lr * lr_factor;
    const AdamStep<Scalar> a{static_cast<Scalar>(config_.beta1), static_cast<Scalar>(config_.beta2),
                             static_cast<Scalar>(config_.eps), static_cast<Scalar>(lr / (1.0 - std::pow(config_.beta1, t))),
                             static_cast<Scalar>(1.0 / std::sqrt(1.0 - std::pow(config_.beta2, t))),
                             static_cast<Scalar>(1.0 - lr * config_.weight_decay)};
    model.for_each_parameter(grad, [&](int slot, auto& param, const auto& g, const RowHooks& hooks) {
      if (state_.size() <= static_cast<std::size_t>(slot)) state_.resize(static_cast<std::size_t>(slot) + 1);
      Moments& s = state_[static_cast<std::size_t>(slot)];
      zero_moments(Backend{}, param.rows(), param.cols(), s.m);
      zero_moments(Backend{}, param.rows(), param.cols(), s.v);
      adam_update(Backend{}, param, s.m, s.v, g, a, hooks);
    });
  }

 private:
  struct Moments {
    typename storage<Backend, Scalar>::matrix m, v;  // the parameter's shape (vectors as one column)
  };

  AdamConfig config_;
  std::int64_t t_ = 0;
  std::vector<Moments> state_;
};

}  // namespace sae
