// A read-only memory-mapped view of a `.npy` file, for arrays larger than RAM: the OS pages in
// only the rows that are read. Elements are converted to the caller's type on read.
#pragma once

#include <sae/core/error.hpp>
#include <sae/io/mapped_file.hpp>
#include <sae/io/npy_format.hpp>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace sae::io {

// The flat element offset of a multi-index under element `strides`.
inline index_t flat_offset(const std::vector<index_t>& idx, const std::vector<index_t>& strides) {
  index_t off = 0;
  for (std::size_t a = 0; a < idx.size(); ++a) off += idx[a] * strides[a];
  return off;
}

class NpyMmap {
 public:
  explicit NpyMmap(const std::filesystem::path& path)
      : file_(path.string(), ".npy file", detail::kPreludeSize + 2), path_(path.string()) {
    parse();
  }

  const NpyHeader& header() const { return header_; }
  const std::vector<index_t>& shape() const { return header_.shape; }
  const std::string& path() const { return path_; }
  index_t rank() const { return static_cast<index_t>(header_.shape.size()); }
  // The whole file as mapped (header included), e.g. for a content hash.
  const unsigned char* file_bytes() const { return file_.data(); }
  std::size_t file_size() const { return file_.size(); }
  // Element strides (not bytes) of each axis, which encode C or Fortran order.
  const std::vector<index_t>& strides() const { return strides_; }

  // Flat element offset of a multi-index.
  index_t offset(const std::vector<index_t>& idx) const { return flat_offset(idx, strides_); }

  // Reads `count` elements starting at element `start`, `stride` elements apart, into dst.
  template <class T>
  void read(index_t start, index_t stride, index_t count, T* dst) const {
    if (count <= 0) return;
    const index_t last = start + (count - 1) * stride;
    if (start < 0 || last >= header_.num_elements())
      throw invalid_argument("NpyMmap::read(): element range out of bounds for " + path_);
    const unsigned char* data = file_.data() + header_.data_offset;
    const std::size_t item = header_.item_size();
    if (stride == 1) {
      convert_elements(data + static_cast<std::size_t>(start) * item, header_, static_cast<std::size_t>(count), dst);
      return;
    }
    for (index_t i = 0; i < count; ++i)
      convert_elements(data + static_cast<std::size_t>(start + i * stride) * item, header_, 1, dst + i);
  }

 private:
  void parse() {
    const std::size_t len_size = npy_length_field_size(file_.data(), path_);
    if (file_.size() < detail::kPreludeSize + len_size) throw io_error(path_, "truncated .npy header length");
    std::size_t header_len = 0;
    for (std::size_t i = 0; i < len_size; ++i) header_len |= std::size_t{file_.data()[detail::kPreludeSize + i]} << (8 * i);
    const std::size_t text_at = detail::kPreludeSize + len_size;
    if (file_.size() < text_at + header_len)
      throw io_error(path_, "truncated .npy header (expected " + std::to_string(header_len) + " bytes)");
    header_ = parse_npy_header_text(std::string(reinterpret_cast<const char*>(file_.data() + text_at), header_len), path_);
    header_.data_offset = text_at + header_len;
    check_data_size(header_, file_.size() - header_.data_offset, path_);
    const std::size_t r = header_.shape.size();
    strides_.assign(r, 1);
    if (header_.fortran_order) {
      for (std::size_t a = 1; a < r; ++a) strides_[a] = strides_[a - 1] * header_.shape[a - 1];
    } else {
      for (std::size_t a = r; a-- > 1;) strides_[a - 1] = strides_[a] * header_.shape[a];
    }
  }
  MappedFile file_;
  std::string path_;
  NpyHeader header_;
  std::vector<index_t> strides_;
};

}  // namespace sae::io
