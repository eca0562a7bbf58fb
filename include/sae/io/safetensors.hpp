// safetensors, Hugging Face's tensor file (what SAELens and sparsify save SAEs in): an 8-byte
// little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
// then the tensors' bytes, row-major, offsets relative to the start of the data. The reader maps
// the file and checks all of it before any tensor is used: the header length within the file and
// at most 100 MB (the reference implementation's limit), the JSON, every tensor's dtype, shape and
// byte range (consistent with each other, in bounds, non-overlapping and together covering the data
// exactly) and string-only metadata. F16, BF16, F32 and F64 convert to the caller's type; other
// dtypes are listed but refused on read. Writing is atomic.
#pragma once

#include <sae/core/bfloat16.hpp>
#include <sae/core/error.hpp>
#include <sae/core/half.hpp>
#include <sae/core/types.hpp>
#include <sae/io/atomic_file.hpp>
#include <sae/io/json.hpp>
#include <sae/io/mapped_file.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace sae::io {

// The float dtypes written here (safetensors' names: F16, BF16, F32).
enum class FloatDType { f16, bf16, f32 };
inline const char* safetensors_name(FloatDType t) {
  switch (t) {
    case FloatDType::f16: return "F16";
    case FloatDType::bf16: return "BF16";
    case FloatDType::f32: return "F32";
  }
  return "?";
}

struct TensorInfo {
  std::string name;
  std::string dtype;               // as in the file: "F32", "BF16", "I64", ...
  std::vector<index_t> shape;
  std::size_t begin = 0, end = 0;  // byte range within the data section
  index_t num_elements() const {
    index_t n = 1;
    for (index_t s : shape) n *= s;
    return n;
  }
};

namespace safetensors_detail {
inline constexpr std::size_t kMaxHeader = 100'000'000;

// Bytes per element of each dtype the format defines; 0 for an unknown name.
inline std::size_t item_size(const std::string& dtype) {
  static const std::map<std::string, std::size_t> sizes{
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

inline std::string shape_text(const std::vector<index_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A JSON number that must be a non-negative integer; `what` names it in the error.
inline std::size_t whole_number(const Json& v, const std::string& path, const std::string& what) {
  // Range first: converting a double beyond 2^64 to an integer is undefined.
  if (!v.is_number() || !(v.as_number() >= 0 && v.as_number() <= 9007199254740992.0) ||
      v.as_number() != std::floor(v.as_number()))
    throw io_error(path, what + " must be a non-negative integer");
  return static_cast<std::size_t>(v.as_number());
}
}  // namespace safetensors_detail

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path) : file_(path.string(), ".safetensors file", 8) { parse(); }

  const std::string& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in header order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const {
    for (const auto& t : tensors_)
      if (t.name == name) return &t;
    return nullptr;
  }
  // The tensor `name`; an error names the file and the tensors it has.
  const TensorInfo& tensor(const std::string& name) const {
    if (const TensorInfo* t = find(name)) return *t;
    std::string have;
    for (const auto& t : tensors_) have += (have.empty() ? "" : ", ") + t.name;
    throw io_error(path(), "no tensor '" + name + "' (the file has: " + (have.empty() ? "none" : have) + ")");
  }

  // `count` elements of tensor `t` from element `start`, `stride` elements apart, converted to T
  // (F16, BF16, F32 or F64 tensors; other dtypes are refused naming the tensor).
  template <class T>
  void read(const TensorInfo& t, index_t start, index_t stride, index_t count, T* dst) const {
    if (count <= 0) return;
    if (start < 0 || start + (count - 1) * stride >= t.num_elements())
      throw invalid_argument("SafetensorsFile::read(): element range out of bounds for " + path() + ":" + t.name);
    const std::size_t item = safetensors_detail::item_size(t.dtype);
    const unsigned char* p = data_ + t.begin + static_cast<std::size_t>(start) * item;
    const std::size_t step = static_cast<std::size_t>(stride) * item;
    if (t.dtype == "F32") {
      for (index_t i = 0; i < count; ++i, p += step) dst[i] = static_cast<T>(load<float>(p));
    } else if (t.dtype == "F64") {
      for (index_t i = 0; i < count; ++i, p += step) dst[i] = static_cast<T>(load<double>(p));
    } else if (t.dtype == "F16") {
      for (index_t i = 0; i < count; ++i, p += step) dst[i] = static_cast<T>(half_to_float(load<std::uint16_t>(p)));
    } else if (t.dtype == "BF16") {
      for (index_t i = 0; i < count; ++i, p += step) dst[i] = static_cast<T>(bf16_to_float(load<std::uint16_t>(p)));
    } else {
      throw io_error(path(), "tensor '" + t.name + "' has dtype " + t.dtype + "; only F16, BF16, F32 and F64 are read");
    }
  }

  // A float tensor's elements, converted to Scalar, row-major.
  template <class Scalar>
  std::vector<Scalar> values(const TensorInfo& t) const {
    std::vector<Scalar> out(static_cast<std::size_t>(t.num_elements()));
    read(t, 0, 1, t.num_elements(), out.data());
    return out;
  }

  // The whole file as mapped, e.g. for a content hash.
  const unsigned char* file_bytes() const { return file_.data(); }
  const unsigned char* tensor_bytes(const TensorInfo& t) const { return data_ + t.begin; }
  std::size_t file_size() const { return file_.size(); }

  // A tensor of exactly `rows` x `cols` elements (2-D [rows, cols], or 1-D when cols == 1) as a matrix.
  template <class Scalar>
  Matrix<Scalar> matrix(const std::string& name, index_t rows, index_t cols) const {
    const TensorInfo& t = tensor(name);
    const bool fits = (t.shape.size() == 2 && t.shape[0] == rows && t.shape[1] == cols) ||
                      (cols == 1 && t.shape.size() == 1 && t.shape[0] == rows);
    if (!fits)
      throw io_error(path(), "tensor '" + name + "' has shape " + safetensors_detail::shape_text(t.shape) + ", expected " +
                                 safetensors_detail::shape_text(cols == 1 ? std::vector<index_t>{rows}
                                                                          : std::vector<index_t>{rows, cols}));
    Matrix<Scalar> m(rows, cols);  // row-major, as the file
    read(t, 0, 1, t.num_elements(), m.data());
    return m;
  }
  template <class Scalar>
  Vector<Scalar> vector(const std::string& name, index_t size) const {
    return matrix<Scalar>(name, size, 1).col(0);
  }

 private:
  template <class V>
  static V load(const unsigned char* p) {  // little-endian, as the format stores
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }

  void parse() {
    namespace sd = safetensors_detail;
    const unsigned char* base = file_.data();
    std::uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= std::uint64_t{base[i]} << (8 * i);
    if (n > sd::kMaxHeader) throw io_error(path(), "header length " + std::to_string(n) + " exceeds 100 MB: not a safetensors file?");
    if (n > file_.size() - 8)
      throw io_error(path(), "truncated: header length " + std::to_string(n) + " but only " + std::to_string(file_.size() - 8) +
                                 " bytes follow");
    Json header;
    try {
      header = Json::parse(std::string(reinterpret_cast<const char*>(base + 8), static_cast<std::size_t>(n)), path());
    } catch (const io_error&) {
      throw;
    } catch (const error& e) {
      throw io_error(path(), std::string("header is not valid JSON: ") + e.what());
    }
    if (!header.is_object()) throw io_error(path(), "header must be a JSON object");
    data_ = base + 8 + n;
    const std::size_t data_size = file_.size() - 8 - static_cast<std::size_t>(n);
    for (const auto& [name, entry] : header.as_object()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) throw io_error(path(), "__metadata__ must be an object of strings");
        for (const auto& [k, v] : entry.as_object()) {
          if (!v.is_string()) throw io_error(path(), "__metadata__ value of '" + k + "' must be a string");
          metadata_[k] = v.as_string();
        }
        continue;
      }
      const std::string where = "tensor '" + name + "'";
      if (find(name)) throw io_error(path(), where + " is listed twice");
      if (!entry.is_object()) throw io_error(path(), where + " must be an object");
      for (const auto& [k, v] : entry.as_object())
        if (k != "dtype" && k != "shape" && k != "data_offsets") throw io_error(path(), where + " has an unknown field '" + k + "'");
      TensorInfo t;
      t.name = name;
      const Json* dtype = entry.find("dtype");
      const Json* shape = entry.find("shape");
      const Json* offsets = entry.find("data_offsets");
      if (!dtype || !dtype->is_string()) throw io_error(path(), where + " needs a string dtype");
      t.dtype = dtype->as_string();
      const std::size_t item = sd::item_size(t.dtype);
      if (item == 0) throw io_error(path(), where + " has unknown dtype '" + t.dtype + "'");
      if (!shape || !shape->is_array()) throw io_error(path(), where + " needs a shape array");
      std::size_t elements = 1, extent = 1;  // extent: the nonzero extents' product, which bounds every stride
      for (const auto& s : shape->as_array()) {
        const std::size_t d = sd::whole_number(s, path(), where + " shape entry");
        if (d != 0 && extent > (std::size_t{1} << 60) / d) throw io_error(path(), where + " shape is too large");
        extent *= d != 0 ? d : 1;
        elements *= d;
        t.shape.push_back(static_cast<index_t>(d));
      }
      if (!offsets || !offsets->is_array() || offsets->as_array().size() != 2)
        throw io_error(path(), where + " needs data_offsets [begin, end]");
      t.begin = sd::whole_number(offsets->as_array()[0], path(), where + " data_offsets");
      t.end = sd::whole_number(offsets->as_array()[1], path(), where + " data_offsets");
      if (t.begin > t.end || t.end > data_size)
        throw io_error(path(), where + " data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                                   "] lie outside the " + std::to_string(data_size) + " data bytes");
      if (t.end - t.begin != elements * item)
        throw io_error(path(), where + " has " + std::to_string(t.end - t.begin) + " bytes for shape " +
                                   sd::shape_text(t.shape) + " of " + t.dtype + " (" + std::to_string(elements * item) +
                                   " expected)");
      tensors_.push_back(std::move(t));
    }
    // The byte ranges, in order, must tile the data section: no gap, no overlap, nothing after.
    std::vector<const TensorInfo*> by_offset;
    for (const auto& t : tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->begin != b->begin ? a->begin < b->begin : a->end < b->end; });
    std::size_t at = 0;
    for (const TensorInfo* t : by_offset) {
      if (t->begin != at)
        throw io_error(path(), "tensor '" + t->name + "' starts at byte " + std::to_string(t->begin) + " of the data, expected " +
                                   std::to_string(at) + (t->begin < at ? " (it overlaps the tensor before it)" : " (a gap)"));
      at = t->end;
    }
    if (at != data_size)
      throw io_error(path(), "the tensors cover " + std::to_string(at) + " of the " + std::to_string(data_size) +
                                 " data bytes (trailing bytes or a truncated file)");
  }

  MappedFile file_;
  const unsigned char* data_ = nullptr;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: row-major values, stored as `dtype`.
struct TensorToWrite {
  std::string name;
  std::vector<index_t> shape;
  std::vector<float> values;
  FloatDType dtype = FloatDType::f32;
};

// A 2-D [rows, cols] tensor from a matrix, or 1-D from a vector.
template <class Derived>
TensorToWrite tensor_to_write(std::string name, const Eigen::MatrixBase<Derived>& m, FloatDType dtype, bool one_d = false) {
  TensorToWrite t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = one_d ? std::vector<index_t>{m.size()} : std::vector<index_t>{m.rows(), m.cols()};
  t.values.reserve(static_cast<std::size_t>(m.size()));
  for (index_t i = 0; i < m.rows(); ++i)
    for (index_t j = 0; j < m.cols(); ++j) t.values.push_back(static_cast<float>(m(i, j)));
  return t;
}

// Writes the tensors in the given order, the header padded with spaces to a multiple of 8 bytes
// (as the reference writer does, so the data is aligned).
inline void save_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json m = Json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  std::size_t offset = 0;
  for (const auto& t : tensors) {
    index_t elements = 1;
    for (index_t s : t.shape) elements *= s;
    sae::detail::require(static_cast<std::size_t>(elements) == t.values.size(), "save_safetensors()",
                         "tensor '" + t.name + "' has " + std::to_string(t.values.size()) + " values for shape " +
                             safetensors_detail::shape_text(t.shape));
    sae::detail::require(header.find(t.name) == nullptr && t.name != "__metadata__", "save_safetensors()",
                         "tensor name '" + t.name + "' is used twice or reserved");
    Json shape = Json::array();
    for (index_t s : t.shape) shape.push_back(static_cast<long long>(s));
    const std::size_t bytes = t.values.size() * (t.dtype == FloatDType::f32 ? 4 : 2);
    Json entry = Json::object();
    entry["dtype"] = safetensors_name(t.dtype);
    entry["shape"] = shape;
    entry["data_offsets"] = Json(Json::Array{Json(static_cast<unsigned long long>(offset)),
                                             Json(static_cast<unsigned long long>(offset + bytes))});
    header[t.name] = entry;
    offset += bytes;
  }
  std::string text = header.dump(-1);
  text.append((8 - text.size() % 8) % 8, ' ');
  write_atomically(path, [&](std::ostream& out) {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((static_cast<std::uint64_t>(text.size()) >> (8 * i)) & 0xffu);
    out.write(reinterpret_cast<const char*>(len), 8);
    out << text;
    std::vector<unsigned char> buf;
    for (const auto& t : tensors) {
      buf.clear();
      for (float v : t.values) {
        if (t.dtype == FloatDType::f32) {
          unsigned char b[4];
          std::memcpy(b, &v, 4);
          buf.insert(buf.end(), b, b + 4);
        } else {
          const std::uint16_t h = t.dtype == FloatDType::f16 ? float_to_half(v) : float_to_bf16(v);
          buf.push_back(static_cast<unsigned char>(h & 0xffu));
          buf.push_back(static_cast<unsigned char>(h >> 8));
        }
      }
      out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
    }
  });
}

}  // namespace sae::io
