// Where a program's rows come from and how they are split, as one field list (core/fields.hpp): the
// programs' --data, --layer, --position, --target-*, --stream and --val-fraction flags and
// config-file keys come from it, and open_data() turns it into a row source.
#pragma once

#include <sae/core/fields.hpp>
#include <sae/core/memory.hpp>
#include <sae/core/types.hpp>
#include <sae/data/activations.hpp>
#include <sae/data/open_rows.hpp>
#include <sae/data/row_source.hpp>
#include <sae/data/split.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace sae::data {

struct DataOptions {
  std::string data;  // a file ([N, D] or [N, layers, positions, D]) or a shard set
  std::optional<index_t> layer, position;  // of a 4-D array: (0, 0) when neither is given, 0 for the one not given
  std::string target_data;                 // targets from another file or shard set (a transcoder)
  std::optional<index_t> target_layer, target_position;  // targets from another slice of a 4-D array
  bool stream = false;                     // read batches from the memory map instead of loading the rows
  std::optional<double> val_fraction;      // hold out this fraction at random; unset: the reports' split

  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.data, field("data", "activations: a .npy or .safetensors[:tensor] file, [N, D] or [N, layers, positions, D], or a "
                            "shard set (a directory, a glob such as 'acts/shard-*.npy', or a manifest .json)"));
    v(c.layer, field("layer", "layer of a 4-D array (default 0)").at_least(0));
    v(c.position, field("position", "position of a 4-D array (default 0)").at_least(0));
    v(c.target_data, field("target_data", "train against targets from this file or shard set, row for row (a "
                                          "transcoder; default: the inputs themselves)"));
    v(c.target_layer, field("target_layer", "targets from this layer of the 4-D array (of --target-data when given, "
                                            "else of --data)").at_least(0));
    v(c.target_position, field("target_position", "targets from this position of the 4-D array (default: the input's)")
                             .at_least(0));
    v(c.stream, field("stream", "read batches from the memory-mapped file(s) in their stored dtype instead of loading "
                                "the rows (automatic when they would not fit in memory)"));
    v(c.val_fraction, field("val_fraction", "hold out this fraction at random instead of the reports' split (used anyway "
                                            "when N <= 5,978)").above(0).below(1));
  }

  // The (layer, position) asked for, if either was.
  std::optional<LayerPosition> slice() const {
    if (!layer && !position) return std::nullopt;
    return LayerPosition{layer.value_or(0), position.value_or(0)};
  }
  // The targets' slice: the one asked for, a part not given taken from the input's.
  std::optional<LayerPosition> target_slice() const {
    if (!target_layer && !target_position) return std::nullopt;  // --target-data's own 2-D rows, or (0, 0) of 4-D
    const LayerPosition in = slice().value_or(LayerPosition{0, 0});
    return LayerPosition{target_layer.value_or(in.layer), target_position.value_or(in.position)};
  }
  bool has_targets() const { return !target_data.empty() || target_layer || target_position; }
  SplitPolicy split(std::uint64_t seed) const { return SplitPolicy{val_fraction, seed}; }
};

// Whether reading every row of `source` (and its targets) into memory as Scalar would take more than
// half of the memory available: then it is read batch by batch from the memory map instead.
template <class Scalar>
bool too_large_for_memory(const RowSource<Scalar>& source) {
  const double bytes = static_cast<double>(source.rows()) *
                       static_cast<double>(source.input_dim() + (source.has_targets() ? source.target_dim() : 0)) *
                       sizeof(Scalar);
  const auto available = available_memory_bytes();
  return available && bytes > 0.5 * *available;
}

// The rows `d` names, with their targets when it names any. In memory (the rows converted to Scalar
// once, the reports' behaviour) unless d.stream, or unless they would take more than half of the
// memory available: then read batch by batch from the memory map. `streaming` (may be null) says
// which was chosen.
template <class Scalar>
RowSourcePtr<Scalar> open_data(const DataOptions& d, bool* streaming = nullptr) {
  const RowSourcePtr<Scalar> inputs = open_rows<Scalar>(d.data, d.slice());
  const RowSourcePtr<Scalar> targets =
      d.has_targets() ? open_rows<Scalar>(d.target_data.empty() ? d.data : d.target_data, d.target_slice()) : nullptr;
  const auto paired = [](RowSourcePtr<Scalar> in, RowSourcePtr<Scalar> out) -> RowSourcePtr<Scalar> {
    if (!out) return in;
    return std::make_shared<const PairedRows<Scalar>>(std::move(in), std::move(out));
  };
  RowSourcePtr<Scalar> source = paired(inputs, targets);  // row counts checked before anything is loaded
  const bool stream = d.stream || too_large_for_memory(*source);
  if (streaming) *streaming = stream;
  if (stream) return source;
  const auto load = [](const RowSourcePtr<Scalar>& rows) -> RowSourcePtr<Scalar> {
    if (!rows) return nullptr;
    return std::make_shared<const MatrixRows<Scalar>>(read_all_inputs(*rows), rows->describe(), rows->fingerprint(),
                                                      rows->metadata());
  };
  return paired(load(inputs), load(targets));
}

}  // namespace sae::data
