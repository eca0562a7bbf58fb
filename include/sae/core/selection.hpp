// How the k latents of a row are chosen before ReLU.
#pragma once

namespace sae {

enum class Selection {
  value,      // the k largest pre-activations (standard TopK SAE)
  magnitude,  // the k largest |pre-activation|, as the reports' text describes
};

}  // namespace sae
