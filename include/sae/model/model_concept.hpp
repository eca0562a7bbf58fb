// The model concept: what Trainer, the metrics and the optimizers require of a model, checked at
// compile time with one message per missing piece. A new architecture satisfies this and is then
// trained, scored, swept and checkpointed by the same code as TopK and Matryoshka.
//
//   typename scalar_type, backend_type, Parameters, Gradients, Workspace
//   index_t input_dim() const
//   StepLoss loss_and_gradient(const Matrix<scalar_type>& x, Gradients&, Workspace&)  // may be const
//   Matrix<scalar_type> forward(const Matrix<scalar_type>& x) const
//   void normalize_decoder()                              // after each optimizer step
//   void for_each_parameter(const Gradients&, visitor)    // CPU optimizers: each named slot with its gradient
#pragma once

#include <sae/core/types.hpp>

#include <type_traits>
#include <utility>

namespace sae {

// One training step's losses: the loss the gradient is of, and the MSE of the full reconstruction
// (the same number for TopK; Matryoshka's loss is the mean over its nested prefixes).
struct StepLoss {
  double loss = 0;
  double reconstruction_mse = 0;
};

namespace model_detail {
template <class, class = void>
struct has_types : std::false_type {};
template <class M>
struct has_types<M, std::void_t<typename M::scalar_type, typename M::backend_type, typename M::Parameters,
                                typename M::Gradients, typename M::Workspace>> : std::true_type {};
template <class, class = void>
struct has_input_dim : std::false_type {};
template <class M>
struct has_input_dim<M, std::void_t<decltype(std::declval<const M&>().input_dim())>> : std::true_type {};
template <class, class = void>
struct has_step : std::false_type {};
template <class M>
struct has_step<M, std::enable_if_t<std::is_same_v<
                       decltype(std::declval<M&>().loss_and_gradient(std::declval<const Matrix<typename M::scalar_type>&>(),
                                                                     std::declval<typename M::Gradients&>(),
                                                                     std::declval<typename M::Workspace&>())),
                       StepLoss>>> : std::true_type {};
template <class, class = void>
struct has_forward : std::false_type {};
template <class M>
struct has_forward<M, std::void_t<decltype(std::declval<const M&>().forward(
                          std::declval<const Matrix<typename M::scalar_type>&>()))>> : std::true_type {};
template <class, class = void>
struct has_normalize : std::false_type {};
template <class M>
struct has_normalize<M, std::void_t<decltype(std::declval<M&>().normalize_decoder())>> : std::true_type {};
}  // namespace model_detail

// True when Model can be trained; a static_assert names the first missing piece.
template <class Model>
constexpr bool require_trainable_model() {
  static_assert(model_detail::has_types<Model>::value,
                "sae model concept: the model must name scalar_type, backend_type, Parameters, Gradients and Workspace");
  if constexpr (model_detail::has_types<Model>::value) {
    static_assert(model_detail::has_input_dim<Model>::value, "sae model concept: the model needs index_t input_dim() const");
    static_assert(model_detail::has_step<Model>::value,
                  "sae model concept: the model needs StepLoss loss_and_gradient(const Matrix<scalar_type>&, Gradients&, "
                  "Workspace&)");
    static_assert(model_detail::has_forward<Model>::value,
                  "sae model concept: the model needs Matrix<scalar_type> forward(const Matrix<scalar_type>&) const");
    static_assert(model_detail::has_normalize<Model>::value,
                  "sae model concept: the model needs void normalize_decoder(), called after each optimizer step");
  }
  return true;
}

}  // namespace sae
