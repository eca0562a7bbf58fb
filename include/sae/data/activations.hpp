// Loading activations from `.npy`: a 2-D [N, D] array as is, or one (layer, position) slice of a
// 4-D [N, layers, positions, D] array, gathered through a memory map so the whole file is never
// read. Values must be finite.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/memory.hpp>
#include <sae/core/types.hpp>
#include <sae/io/npy_format.hpp>
#include <sae/io/array_file.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <string>

namespace sae::data {

// Which slice of a 4-D array to use. Ignored (must be unset) for 2-D arrays.
struct LayerPosition {
  index_t layer = 0;
  index_t position = 0;
};

// "layer 4, position 3", for messages and reports.
inline std::string describe(const LayerPosition& w) {
  return "layer " + std::to_string(w.layer) + ", position " + std::to_string(w.position);
}

// "acts.npy (layer 4, position 3)", or the path alone for a 2-D array: a data source in reports.
inline std::string describe_source(const std::string& path, const std::optional<LayerPosition>& where) {
  return path + (where ? " (" + describe(*where) + ")" : "");
}

// The slice to read: the one given, or (0, 0) for a 4-D array given none.
inline std::optional<LayerPosition> slice_or_default(const io::ArrayFile& view, std::optional<LayerPosition> where) {
  if (view.rank() == 4 && !where) where = LayerPosition{0, 0};
  return where;
}

// Checks that `view` holds activations to read with `where`: a 2-D [N, D] array (no slice), or a
// 4-D [N, layers, positions, D] one with a slice in range; nothing empty. Before any row is read.
inline void check_activation_array(const io::ArrayFile& view, const std::optional<LayerPosition>& where) {
  const auto& shape = view.shape();
  const std::string& path = view.path();
  if ((shape.size() == 2 || shape.size() == 4) && std::find(shape.begin(), shape.end(), index_t{0}) != shape.end())
    throw io_error(path, "the activation array is empty " + view.shape_string());
  if (shape.size() == 2) {
    if (where) throw io_error(path, "a (layer, position) was given but the array is 2-D " + view.shape_string());
  } else if (shape.size() == 4) {
    if (!where)
      throw io_error(path, "the array is 4-D " + view.shape_string() +
                               " [N, layers, positions, D]; choose a layer and a position");
    if (where->layer < 0 || where->layer >= shape[1])
      throw io_error(path, "layer " + std::to_string(where->layer) + " out of range [0, " + std::to_string(shape[1]) + ")");
    if (where->position < 0 || where->position >= shape[2])
      throw io_error(path, "position " + std::to_string(where->position) + " out of range [0, " +
                               std::to_string(shape[2]) + ")");
  } else {
    throw io_error(path, "expected a 2-D [N, D] or 4-D [N, layers, positions, D] array but shape is " +
                             view.shape_string());
  }
}

// Row `n` of a checked array (check_activation_array) into `out` (D values), converted from the
// stored dtype. A non-finite value is refused in the user's coordinates: (sample, dimension) of a
// 2-D array, (sample, layer, position, dimension) of a 4-D one.
template <class Scalar>
void read_activation_row(const io::ArrayFile& view, const std::optional<LayerPosition>& where, index_t n, Scalar* out) {
  const index_t d = view.shape().back();
  view.read(where ? view.offset({n, where->layer, where->position, 0}) : view.offset({n, 0}), view.strides().back(), d, out);
  for (index_t j = 0; j < d; ++j)
    if (!std::isfinite(out[j]))
      throw io_error(view.path(), "non-finite value (" + std::to_string(static_cast<double>(out[j])) + ") at (sample " +
                                      std::to_string(n) + ", " + (where ? describe(*where) + ", " : "") + "dimension " +
                                      std::to_string(j) + "); activations must be finite");
}

// Gathers rows [N, D] from an open view. `where` is required for 4-D arrays.
template <class Scalar>
Matrix<Scalar> gather_activations(const io::ArrayFile& view, std::optional<LayerPosition> where = std::nullopt) {
  check_activation_array(view, where);
  const index_t rows = view.shape()[0], cols = view.shape().back();
  require_memory(static_cast<double>(rows) * static_cast<double>(cols) * sizeof(Scalar),
                 view.path() + ": loading " + std::to_string(rows) + " x " + std::to_string(cols) + " activations");
  Matrix<Scalar> out(rows, cols);
  for (index_t n = 0; n < rows; ++n) read_activation_row(view, where, n, out.row(n).data());
  return out;
}

template <class Scalar>
Matrix<Scalar> load_activations(const std::filesystem::path& path, std::optional<LayerPosition> where = std::nullopt) {
  return gather_activations<Scalar>(io::ArrayFile(path), where);
}

}  // namespace sae::data
