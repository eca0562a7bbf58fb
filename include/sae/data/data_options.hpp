// Where a program's rows come from and how they are split, as one field list (core/fields.hpp): the
// programs' --data, --layer, --position and --val-fraction flags and config-file keys come from it.
#pragma once

#include <sae/core/fields.hpp>
#include <sae/core/types.hpp>
#include <sae/data/activations.hpp>
#include <sae/data/split.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace sae::data {

struct DataOptions {
  std::string data;  // .npy or .safetensors[:tensor], [N, D] or [N, layers, positions, D]
  std::optional<index_t> layer, position;  // of a 4-D array: (0, 0) when neither is given, 0 for the one not given
  std::optional<double> val_fraction;      // hold out this fraction at random; unset: the reports' split

  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.data, field("data", "activations .npy (or .safetensors[:tensor]), [N, D] or [N, layers, positions, D]"));
    v(c.layer, field("layer", "layer of a 4-D array (default 0)").at_least(0));
    v(c.position, field("position", "position of a 4-D array (default 0)").at_least(0));
    v(c.val_fraction, field("val_fraction", "hold out this fraction at random instead of the reports' split (used anyway "
                                            "when N <= 5,978)").above(0).below(1));
  }

  // The (layer, position) asked for, if either was.
  std::optional<LayerPosition> slice() const {
    if (!layer && !position) return std::nullopt;
    return LayerPosition{layer.value_or(0), position.value_or(0)};
  }
  SplitPolicy split(std::uint64_t seed) const { return SplitPolicy{val_fraction, seed}; }
};

}  // namespace sae::data
