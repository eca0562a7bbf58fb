// Load and save `.npy` arrays (versions 1-3; float16/32/64 in either byte order; C or Fortran
// order; any rank). Loaded data is always returned in C order, converted to the requested type.
#pragma once

#include <sae/core/error.hpp>
#include <sae/io/input_file.hpp>
#include <sae/core/half.hpp>
#include <sae/core/types.hpp>
#include <sae/io/atomic_file.hpp>
#include <sae/io/npy_format.hpp>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace sae::io {

template <class T>
struct NpyArray {
  std::vector<index_t> shape;
  std::vector<T> data;  // C order

  index_t rank() const { return static_cast<index_t>(shape.size()); }
  index_t size() const { return static_cast<index_t>(data.size()); }
};

struct NpyLoadOptions {
  bool require_finite = true;  // NaN/Inf is an error unless the caller opts out
};

// Reads the header of an open stream positioned at the start of the file.
inline NpyHeader read_npy_header(std::istream& in, const std::string& path) {
  unsigned char prelude[detail::kPreludeSize + 4];
  if (!in.read(reinterpret_cast<char*>(prelude), detail::kPreludeSize))
    throw io_error(path, "truncated .npy file (shorter than its 8-byte prelude)");
  const std::size_t len_size = npy_length_field_size(prelude, path);
  if (!in.read(reinterpret_cast<char*>(prelude + detail::kPreludeSize), static_cast<std::streamsize>(len_size)))
    throw io_error(path, "truncated .npy header length");
  std::size_t header_len = 0;
  for (std::size_t i = 0; i < len_size; ++i) header_len |= std::size_t{prelude[detail::kPreludeSize + i]} << (8 * i);
  // The length field is untrusted: check it against what the stream holds before allocating.
  const auto here = in.tellg();
  in.seekg(0, std::ios::end);
  const auto end = in.tellg();
  in.seekg(here);
  if (here >= 0 && end >= here && header_len > static_cast<std::size_t>(end - here))
    throw io_error(path, "truncated .npy header (its length field says " + std::to_string(header_len) + " bytes, " +
                             std::to_string(static_cast<long long>(end - here)) + " remain)");
  std::string text(header_len, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(header_len)))
    throw io_error(path, "truncated .npy header (expected " + std::to_string(header_len) + " bytes)");
  NpyHeader h = parse_npy_header_text(text, path);
  h.data_offset = detail::kPreludeSize + len_size + header_len;
  return h;
}

inline NpyHeader read_npy_header(const std::filesystem::path& path) {
  require_readable_file(path.string(), ".npy file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(path.string(), "cannot open");
  return read_npy_header(in, path.string());
}

namespace detail {
// Permutes Fortran-ordered data into C order.
template <class T>
std::vector<T> fortran_to_c(const std::vector<T>& f, const std::vector<index_t>& shape) {
  std::vector<T> c(f.size());
  const std::size_t rank = shape.size();
  std::vector<index_t> f_stride(rank, 1), idx(rank, 0);
  for (std::size_t a = 1; a < rank; ++a) f_stride[a] = f_stride[a - 1] * shape[a - 1];
  for (std::size_t flat = 0; flat < c.size(); ++flat) {
    index_t off = 0;
    for (std::size_t a = 0; a < rank; ++a) off += idx[a] * f_stride[a];
    c[flat] = f[static_cast<std::size_t>(off)];
    for (std::size_t a = rank; a-- > 0;) {  // advance the C-order multi-index
      if (++idx[a] < shape[a]) break;
      idx[a] = 0;
    }
  }
  return c;
}
}  // namespace detail

template <class T>
NpyArray<T> load_npy(const std::filesystem::path& path, const NpyLoadOptions& options = {}) {
  const std::string name = path.string();
  require_readable_file(name, ".npy file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(name, "cannot open");
  const NpyHeader h = read_npy_header(in, name);

  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<std::size_t>(in.tellg());
  check_data_size(h, file_size - h.data_offset, name);
  in.seekg(static_cast<std::streamoff>(h.data_offset));
  std::vector<unsigned char> raw(h.data_bytes());
  if (!in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(raw.size())))
    throw io_error(name, "read failed");

  NpyArray<T> out;
  out.shape = h.shape;
  out.data.resize(static_cast<std::size_t>(h.num_elements()));
  convert_elements(raw.data(), h, out.data.size(), out.data.data());
  if (h.fortran_order && h.shape.size() > 1) out.data = detail::fortran_to_c(out.data, h.shape);
  if (options.require_finite) require_finite(out.data.data(), out.data.size(), name);
  return out;
}

// Loads a 2-D array as a row-major matrix.
template <class T>
Matrix<T> load_npy_matrix(const std::filesystem::path& path, const NpyLoadOptions& options = {}) {
  NpyArray<T> a = load_npy<T>(path, options);
  if (a.rank() != 2)
    throw io_error(path.string(), "expected a 2-D array but shape is " + std::to_string(a.rank()) + "-D");
  return ConstMatrixMap<T>(a.data.data(), a.shape[0], a.shape[1]);
}

// Loads a 1-D array as a vector.
template <class T>
Vector<T> load_npy_vector(const std::filesystem::path& path, const NpyLoadOptions& options = {}) {
  NpyArray<T> a = load_npy<T>(path, options);
  if (a.rank() != 1)
    throw io_error(path.string(), "expected a 1-D array but shape is " + std::to_string(a.rank()) + "-D");
  return Eigen::Map<const Vector<T>>(a.data.data(), a.shape[0]);
}

struct NpySaveOptions {
  std::optional<DType> dtype;   // default: the element type's own (f4 for float, f8 for double)
  bool fortran_order = false;   // write column-major data (as NumPy's order='F')
};

// Writes `data` (C order unless options.fortran_order) atomically, little-endian.
template <class T>
void save_npy(const std::filesystem::path& path, const T* data, const std::vector<index_t>& shape,
              const NpySaveOptions& options = {}) {
  const DType dtype = options.dtype.value_or(dtype_of<T>());
  index_t count = 1;
  for (index_t d : shape) count *= d;
  std::vector<T> ordered;
  const T* src = data;
  if (options.fortran_order && shape.size() > 1) {  // transpose C -> F by reversing the axes
    std::vector<index_t> reversed(shape.rbegin(), shape.rend());
    std::vector<T> c(data, data + count);
    // A C-ordered array of reversed shape read as F order is the transpose we need.
    ordered = detail::fortran_to_c(c, reversed);
    src = ordered.data();
  }
  write_atomically(path, [&](std::ostream& out) {
    out << make_npy_header(dtype, shape, options.fortran_order);
    std::vector<unsigned char> buf(static_cast<std::size_t>(count) * item_size(dtype));
    for (index_t i = 0; i < count; ++i) {
      unsigned char* p = buf.data() + static_cast<std::size_t>(i) * item_size(dtype);
      const auto put = [&](auto v) {  // little-endian regardless of host order
        unsigned char b[sizeof v];
        std::memcpy(b, &v, sizeof v);
        for (std::size_t j = 0; j < sizeof v; ++j) p[j] = b[detail::host_is_big_endian() ? sizeof v - 1 - j : j];
      };
      if (dtype == DType::f2) put(float_to_half(static_cast<float>(src[i])));
      else if (dtype == DType::f4) put(static_cast<float>(src[i]));
      else put(static_cast<double>(src[i]));
    }
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
  });
}

template <class Derived>
void save_npy(const std::filesystem::path& path, const Eigen::DenseBase<Derived>& m, const NpySaveOptions& options = {}) {
  using T = typename Derived::Scalar;
  const Matrix<T> rowmajor = m;  // materialise in C order
  const bool is_vector = Derived::ColsAtCompileTime == 1;
  const std::vector<index_t> shape = is_vector ? std::vector<index_t>{rowmajor.rows()}
                                               : std::vector<index_t>{rowmajor.rows(), rowmajor.cols()};
  save_npy(path, rowmajor.data(), shape, options);
}

}  // namespace sae::io
