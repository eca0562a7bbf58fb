// The scalars of one Adam step, as every backend's update kernel takes them: PyTorch's Adam with
// the bias corrections folded in,
//   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2,
//   p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps),
// where step_size = lr / (1 - b1^t) and inv_sqrt_bc2 = 1 / sqrt(1 - b2^t). AdamW first scales the
// parameter by decay = 1 - lr * weight_decay (torch.optim.AdamW's order); plain Adam has decay 1.
#pragma once

namespace sae {

template <class Scalar>
struct AdamStep {
  Scalar beta1, beta2, eps, step_size, inv_sqrt_bc2;
  Scalar decay = 1;
};

}  // namespace sae
