// One clear line for an input path that cannot be read: empty, missing, a directory, or
// unreadable, each said as such, before any parser sees the file.
#pragma once

#include <sae/core/error.hpp>

#include <cerrno>
#include <cstring>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

namespace sae::io {

inline void require_readable_file(const std::string& path, const std::string& what = "file") {
  if (path.empty()) throw io_error(path, "no " + what + " given (the path is empty)");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    throw io_error(path, err == ENOENT ? "no such " + what : "cannot access: " + std::string(std::strerror(err)));
  }
  if (S_ISDIR(st.st_mode)) throw io_error(path, "is a directory, not a " + what);
  if (::access(path.c_str(), R_OK) != 0) throw io_error(path, "cannot read: " + std::string(std::strerror(errno)));
}

}  // namespace sae::io
