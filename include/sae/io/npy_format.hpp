// The `.npy` format (NumPy NEP 1): header parsing and element conversion shared by the
// in-memory loader (npy.hpp) and the memory-mapped view (npy_mmap.hpp).
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/half.hpp>
#include <sae/core/types.hpp>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace sae::io {

enum class DType { f2, f4, f8 };

inline std::size_t item_size(DType t) { return t == DType::f2 ? 2 : t == DType::f4 ? 4 : 8; }
inline const char* dtype_name(DType t) { return t == DType::f2 ? "f2" : t == DType::f4 ? "f4" : "f8"; }

template <class T>
constexpr DType dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "sae::io reads and writes float or double arrays");
  return std::is_same_v<T, float> ? DType::f4 : DType::f8;
}

struct NpyHeader {
  DType dtype = DType::f4;
  bool big_endian = false;
  bool fortran_order = false;
  std::vector<index_t> shape;  // empty for a 0-d array
  std::size_t data_offset = 0;  // bytes from the start of the file to the first element

  std::string descr() const { return std::string(big_endian ? ">" : "<") + dtype_name(dtype); }
  std::size_t item_size() const { return io::item_size(dtype); }
  index_t num_elements() const {
    index_t n = 1;
    for (index_t d : shape) n *= d;
    return n;
  }
  std::size_t data_bytes() const { return static_cast<std::size_t>(num_elements()) * item_size(); }
  std::string shape_string() const {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
  }
};

namespace detail {

inline constexpr char kMagic[] = "\x93NUMPY";
inline constexpr std::size_t kMagicSize = 6;
inline constexpr std::size_t kPreludeSize = 8;  // magic + major + minor

// Just enough of a Python-literal parser for the header dict NumPy writes:
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = parse_string();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (peek() != '\'' && peek() != '"')
          fail("dtype is structured or not a plain string; only float16/32/64 arrays are supported");
        parse_descr(parse_string(), h);
        have_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = parse_bool();
        have_order = true;
      } else if (key == "shape") {
        h.shape = parse_shape();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "' in header");
      }
      skip_space();
      if (peek() == ',') ++pos_;
    }
    if (!have_descr || !have_order || !have_shape)
      fail("header lacks one of 'descr', 'fortran_order', 'shape'");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw io_error(path_, "malformed .npy header: " + what); }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  char peek() {
    skip_space();
    if (pos_ >= s_.size()) fail("header ends early");
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "' at offset " + std::to_string(pos_));
    ++pos_;
  }
  std::string parse_string() {
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected a quoted string at offset " + std::to_string(pos_));
    const std::size_t end = s_.find(quote, ++pos_);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  bool parse_bool() {
    if (s_.compare(pos_, 4, "True") == 0) return pos_ += 4, true;
    if (s_.compare(pos_, 5, "False") == 0) return pos_ += 5, false;
    fail("fortran_order is neither True nor False");
  }
  std::vector<index_t> parse_shape() {
    std::vector<index_t> shape;
    expect('(');
    while (peek() != ')') {
      if (!std::isdigit(static_cast<unsigned char>(s_[pos_]))) fail("shape holds a non-integer");
      index_t v = 0;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
        if (v > (std::numeric_limits<index_t>::max() - 9) / 10) fail("shape dimension overflows");
        v = v * 10 + (s_[pos_++] - '0');
      }
      if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;  // Python 2 long suffix
      shape.push_back(v);
      if (peek() == ',') ++pos_;
    }
    ++pos_;
    // The product of the nonzero extents bounds every stride and byte offset, also when another
    // extent is 0 (found by fuzzing: shape (0, 10^12, 10^15) overflowed the strides).
    index_t total = 1;
    for (index_t d : shape) {
      if (d == 0) continue;
      if (total > std::numeric_limits<index_t>::max() / 8 / d) fail("shape is too large");
      total *= d;
    }
    return shape;
  }
  void parse_descr(const std::string& d, NpyHeader& h) {
    const auto unsupported = [&] {
      throw io_error(path_, "dtype '" + d +
                                "' is not supported (expected float16, float32 or float64: "
                                "'<f2', '<f4', '<f8' or their big-endian '>' forms)");
    };
    if (d.size() != 3) unsupported();
    if (d[0] == '<' || d[0] == '=') h.big_endian = false;
    else if (d[0] == '>') h.big_endian = true;
    else unsupported();
    const std::string kind = d.substr(1);
    if (kind == "f2") h.dtype = DType::f2;
    else if (kind == "f4") h.dtype = DType::f4;
    else if (kind == "f8") h.dtype = DType::f8;
    else unsupported();
  }

  const std::string& s_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

inline bool host_is_big_endian() {
  const std::uint16_t probe = 1;
  unsigned char first;
  std::memcpy(&first, &probe, 1);
  return first == 0;
}

template <class U>
inline U load_swapped(const unsigned char* p, bool swap) {
  unsigned char b[sizeof(U)];
  for (std::size_t i = 0; i < sizeof(U); ++i) b[i] = swap ? p[sizeof(U) - 1 - i] : p[i];
  U u;
  std::memcpy(&u, b, sizeof(U));
  return u;
}

}  // namespace detail

// Header length in bytes from the 8-byte prelude's version (v1: 2-byte length; v2, v3: 4-byte).
inline std::size_t npy_length_field_size(const unsigned char* prelude, const std::string& path) {
  if (std::memcmp(prelude, detail::kMagic, detail::kMagicSize) != 0)
    throw io_error(path, "not a .npy file (bad magic bytes)");
  const int major = prelude[6];
  if (major == 1) return 2;
  if (major == 2 || major == 3) return 4;
  throw io_error(path, "unsupported .npy format version " + std::to_string(major) + "." +
                           std::to_string(prelude[7]));
}

// Parses the dict that follows the length field. `data_offset` is set by the caller.
inline NpyHeader parse_npy_header_text(const std::string& text, const std::string& path) {
  return detail::HeaderParser(text, path).parse();
}

// Throws unless exactly the bytes the header promises follow it.
inline void check_data_size(const NpyHeader& h, std::size_t have, const std::string& path) {
  if (have == h.data_bytes()) return;
  throw io_error(path, std::string(have < h.data_bytes() ? "truncated data: " : "size mismatch: ") + "shape " +
                           h.shape_string() + " of '" + h.descr() + "' needs " + std::to_string(h.data_bytes()) +
                           " bytes but the file holds " + std::to_string(have));
}

// Converts `count` stored elements at `src` into T.
template <class T>
void convert_elements(const unsigned char* src, const NpyHeader& h, std::size_t count, T* dst) {
  if (count == 0) return;  // an empty array may come with null pointers, which memcpy must not see
  const bool swap = h.big_endian != detail::host_is_big_endian();
  switch (h.dtype) {
    case DType::f2:
      for (std::size_t i = 0; i < count; ++i)
        dst[i] = static_cast<T>(half_to_float(detail::load_swapped<std::uint16_t>(src + 2 * i, swap)));
      break;
    case DType::f4:
      if (!swap && std::is_same_v<T, float>) {
        std::memcpy(dst, src, count * 4);
      } else {
        for (std::size_t i = 0; i < count; ++i)
          dst[i] = static_cast<T>(detail::load_swapped<float>(src + 4 * i, swap));
      }
      break;
    case DType::f8:
      if (!swap && std::is_same_v<T, double>) {
        std::memcpy(dst, src, count * 8);
      } else {
        for (std::size_t i = 0; i < count; ++i)
          dst[i] = static_cast<T>(detail::load_swapped<double>(src + 8 * i, swap));
      }
      break;
  }
}

// Throws if any element is NaN or Inf, naming the first bad flat index.
template <class T>
void require_finite(const T* data, std::size_t count, const std::string& path) {
  for (std::size_t i = 0; i < count; ++i)
    if (!std::isfinite(data[i]))
      throw io_error(path, "non-finite value (" + std::to_string(data[i]) + ") at flat index " +
                               std::to_string(i) + "; activations must be finite");
}

// Serialises a v1 header (v2 when the dict is too long for a 2-byte length), padded so the data
// starts on a 64-byte boundary as NumPy does.
inline std::string make_npy_header(DType dtype, const std::vector<index_t>& shape, bool fortran_order) {
  NpyHeader h;
  h.dtype = dtype;
  h.shape = shape;
  std::string dict = "{'descr': '" + h.descr() + "', 'fortran_order': " + (fortran_order ? "True" : "False") +
                     ", 'shape': " + h.shape_string() + ", }";
  for (int version = 1; version <= 2; ++version) {
    const std::size_t len_size = version == 1 ? 2 : 4;
    const std::size_t unpadded = detail::kPreludeSize + len_size + dict.size() + 1;
    const std::size_t total = (unpadded + 63) / 64 * 64;
    const std::size_t header_len = total - detail::kPreludeSize - len_size;
    if (version == 1 && header_len > 0xffff) continue;
    std::string out(detail::kMagic, detail::kMagicSize);
    out += static_cast<char>(version);
    out += '\0';
    for (std::size_t i = 0; i < len_size; ++i) out += static_cast<char>((header_len >> (8 * i)) & 0xff);
    out += dict;
    out.append(header_len - dict.size() - 1, ' ');
    out += '\n';
    return out;
  }
  return {};  // unreachable: a v2 length field holds any header
}

}  // namespace sae::io
