// How the k latents of a row are chosen before ReLU.
#pragma once

#include <array>
#include <utility>

namespace sae {

enum class Selection {
  value,      // the k largest pre-activations (standard TopK SAE)
  magnitude,  // the k largest |pre-activation|, as the reports' text describes
};

// Names for configs, flags and checkpoints (core/fields.hpp).
inline std::array<std::pair<Selection, const char*>, 2> enum_names(Selection) {
  return {{{Selection::value, "value"}, {Selection::magnitude, "magnitude"}}};
}

}  // namespace sae
