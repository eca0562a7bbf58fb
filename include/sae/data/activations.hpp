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

namespace gather_detail {
template <class Scalar>
void reserve(Matrix<Scalar>& out, index_t rows, index_t cols, const io::ArrayFile& view) {
  require_memory(static_cast<double>(rows) * static_cast<double>(cols) * sizeof(Scalar),
                 view.path() + ": loading " + std::to_string(rows) + " x " + std::to_string(cols) + " activations");
  out.resize(rows, cols);
}

// A non-finite value is located in the user's coordinates: (sample, dimension) of a 2-D array,
// (sample, layer, position, dimension) of a 4-D one.
template <class Scalar>
void require_finite_rows(const Matrix<Scalar>& m, const io::ArrayFile& view, std::optional<LayerPosition> where) {
  for (index_t n = 0; n < m.rows(); ++n)
    for (index_t j = 0; j < m.cols(); ++j)
      if (!std::isfinite(m(n, j))) {
        const std::string at = "(sample " + std::to_string(n) + ", " + (where ? describe(*where) + ", " : "") +
                               "dimension " + std::to_string(j) + ")";
        throw io_error(view.path(), "non-finite value (" + std::to_string(static_cast<double>(m(n, j))) + ") at " + at +
                                        "; activations must be finite");
      }
}
}  // namespace gather_detail

// Gathers rows [N, D] from an open view. `where` is required for 4-D arrays.
template <class Scalar>
Matrix<Scalar> gather_activations(const io::ArrayFile& view, std::optional<LayerPosition> where = std::nullopt) {
  const auto& shape = view.shape();
  const std::string& path = view.path();
  // Before any row is read: a zero extent anywhere means nothing to train on.
  if ((shape.size() == 2 || shape.size() == 4) && std::find(shape.begin(), shape.end(), index_t{0}) != shape.end())
    throw io_error(path, "the activation array is empty " + view.shape_string());
  Matrix<Scalar> out;
  if (shape.size() == 2) {
    if (where) throw io_error(path, "a (layer, position) was given but the array is 2-D " + view.shape_string());
    gather_detail::reserve(out, shape[0], shape[1], view);
    for (index_t n = 0; n < shape[0]; ++n)
      view.read(view.offset({n, 0}), view.strides()[1], shape[1], out.row(n).data());
  } else if (shape.size() == 4) {
    if (!where)
      throw io_error(path, "the array is 4-D " + view.shape_string() +
                               " [N, layers, positions, D]; choose a layer and a position");
    if (where->layer < 0 || where->layer >= shape[1])
      throw io_error(path, "layer " + std::to_string(where->layer) + " out of range [0, " + std::to_string(shape[1]) + ")");
    if (where->position < 0 || where->position >= shape[2])
      throw io_error(path, "position " + std::to_string(where->position) + " out of range [0, " +
                               std::to_string(shape[2]) + ")");
    gather_detail::reserve(out, shape[0], shape[3], view);
    for (index_t n = 0; n < shape[0]; ++n)
      view.read(view.offset({n, where->layer, where->position, 0}), view.strides()[3], shape[3], out.row(n).data());
  } else {
    throw io_error(path, "expected a 2-D [N, D] or 4-D [N, layers, positions, D] array but shape is " +
                             view.shape_string());
  }
  gather_detail::require_finite_rows(out, view, where);
  return out;
}

template <class Scalar>
Matrix<Scalar> load_activations(const std::filesystem::path& path, std::optional<LayerPosition> where = std::nullopt) {
  return gather_activations<Scalar>(io::ArrayFile(path), where);
}

}  // namespace sae::data
