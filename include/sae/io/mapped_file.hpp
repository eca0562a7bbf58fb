// A read-only memory map of a whole file: the OS pages in only what is read. The array readers
// (.npy, .safetensors) parse their headers from it and read tensors in place.
#pragma once

#include <sae/core/error.hpp>
#include <sae/io/input_file.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sae::io {

// Drops the pages holding bytes [from, to) of the read-only mapping [map_begin, map_end) from this
// process's resident set; the kernel keeps them in its page cache while it can, and a later read
// maps them back. A reader that streams a file larger than memory releases what it has read, so its
// resident set stays the batch it holds, not the file. The range is widened to the 64 KiB windows
// around it (clipped to the mapping), because a page fault also maps the cached pages of its window
// ("fault-around"): released rows' neighbours would otherwise stay mapped and accumulate.
inline void release_pages(const unsigned char* from, const unsigned char* to, const unsigned char* map_begin,
                          const unsigned char* map_end) {
  constexpr std::uintptr_t window = std::uintptr_t{1} << 16;
  const auto at = [](const unsigned char* p) { return reinterpret_cast<std::uintptr_t>(p); };
  const std::uintptr_t first = std::max(at(from) & ~(window - 1), at(map_begin));
  const std::uintptr_t end = std::min((at(to) + window - 1) & ~(window - 1), at(map_end));
  if (end > first) ::madvise(reinterpret_cast<void*>(first), end - first, MADV_DONTNEED);
}

class MappedFile {
 public:
  MappedFile() = default;
  // `what` names the kind of file in errors ("a .npy file"); shorter than `min_size` bytes is an error.
  MappedFile(const std::string& path, const std::string& what, std::size_t min_size) : path_(path) {
    require_readable_file(path_, what);
    const int fd = ::open(path_.c_str(), O_RDONLY);
    if (fd < 0) throw io_error(path_, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      throw io_error(path_, std::string("cannot stat: ") + std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      throw io_error(path_, "is a directory, not " + what);
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ < min_size) {
      ::close(fd);
      throw io_error(path_, "truncated " + what + " (" + std::to_string(size_) + " bytes, shorter than its header)");
    }
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);  // the mapping keeps the file alive
    if (p == MAP_FAILED) throw io_error(path_, std::string("mmap failed: ") + std::strerror(errno));
    base_ = static_cast<const unsigned char*>(p);
  }
  ~MappedFile() { unmap(); }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      unmap();
      path_ = std::move(o.path_);
      base_ = std::exchange(o.base_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }

  const std::string& path() const { return path_; }
  const unsigned char* data() const { return base_; }
  std::size_t size() const { return size_; }

 private:
  void unmap() {
    if (base_) ::munmap(const_cast<unsigned char*>(base_), size_);
    base_ = nullptr;
  }
  std::string path_;
  const unsigned char* base_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace sae::io
