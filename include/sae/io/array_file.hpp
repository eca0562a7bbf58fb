// An array on disk, whichever format holds it, read through a memory map: a `.npy` file, or one
// tensor of a `.safetensors` file named "acts.safetensors:tensor" (the name may be left out when
// the file holds exactly one tensor). Activations are loaded through this, so every program takes
// either format.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/io/npy_mmap.hpp>
#include <sae/io/safetensors.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sae::io {

class ArrayFile {
 public:
  explicit ArrayFile(const std::filesystem::path& spec) : path_(spec.string()) {
    const std::string s = spec.string();
    const std::string ext = ".safetensors";
    const auto at = s.rfind(ext + ":");
    const bool named = at != std::string::npos;
    const bool whole = s.size() >= ext.size() && s.compare(s.size() - ext.size(), ext.size(), ext) == 0;
    if (!named && !whole) {
      npy_.emplace(spec);
      shape_ = npy_->shape();
      strides_ = npy_->strides();
      return;
    }
    st_.emplace(named ? s.substr(0, at + ext.size()) : s);
    if (named) {
      tensor_ = &st_->tensor(s.substr(at + ext.size() + 1));
    } else {
      if (st_->tensors().size() != 1) {
        std::string names;
        for (const auto& t : st_->tensors()) names += (names.empty() ? "" : ", ") + t.name;
        throw io_error(s, "holds " + std::to_string(st_->tensors().size()) + " tensors (" + (names.empty() ? "none" : names) +
                              "); name one as " + s + ":NAME");
      }
      tensor_ = &st_->tensors().front();
    }
    shape_ = tensor_->shape;
    strides_.assign(shape_.size(), 1);  // safetensors is row-major
    for (std::size_t a = shape_.size(); a-- > 1;) strides_[a - 1] = strides_[a] * shape_[a];
  }
  ArrayFile(const ArrayFile&) = delete;
  ArrayFile& operator=(const ArrayFile&) = delete;

  const std::string& path() const { return path_; }  // as given, tensor name included
  const std::vector<index_t>& shape() const { return shape_; }
  index_t rank() const { return static_cast<index_t>(shape_.size()); }
  const std::vector<index_t>& strides() const { return strides_; }
  std::string shape_string() const { return npy_ ? npy_->header().shape_string() : safetensors_detail::shape_text(shape_); }
  std::string dtype() const { return npy_ ? npy_->header().descr() : tensor_->dtype; }
  std::string tensor_name() const { return tensor_ ? tensor_->name : std::string(); }  // "" for .npy
  const unsigned char* file_bytes() const { return npy_ ? npy_->file_bytes() : st_->file_bytes(); }
  std::size_t file_size() const { return npy_ ? npy_->file_size() : st_->file_size(); }
  // The file's string metadata: a .safetensors file's __metadata__; none for .npy.
  const std::map<std::string, std::string>& metadata() const {
    static const std::map<std::string, std::string> none;
    return st_ ? st_->metadata() : none;
  }
  // Releases the pages of elements [first, last] from the resident set (io/mapped_file.hpp).
  void release(index_t first, index_t last) const {
    const std::size_t item = npy_ ? npy_->header().item_size() : safetensors_detail::item_size(tensor_->dtype);
    const unsigned char* data = npy_ ? npy_->file_bytes() + npy_->header().data_offset : st_->tensor_bytes(*tensor_);
    release_pages(data + static_cast<std::size_t>(first) * item, data + static_cast<std::size_t>(last + 1) * item, file_bytes(),
                  file_bytes() + file_size());
  }
  index_t offset(const std::vector<index_t>& idx) const { return flat_offset(idx, strides_); }
  // `count` elements from element `start`, `stride` apart, converted to T.
  template <class T>
  void read(index_t start, index_t stride, index_t count, T* dst) const {
    if (npy_) npy_->read(start, stride, count, dst);
    else st_->read(*tensor_, start, stride, count, dst);
  }

 private:
  std::string path_;
  std::optional<NpyMmap> npy_;
  std::optional<SafetensorsFile> st_;
  const TensorInfo* tensor_ = nullptr;  // into st_, which does not move
  std::vector<index_t> shape_, strides_;
};

}  // namespace sae::io
