// Atomic output: write to a temporary file beside the target, then rename over it, so a crash
// or a full disk never leaves a half-written result where a good one used to be.
#pragma once

#include <sae/core/error.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <unistd.h>

namespace sae::io {

// Calls `write(stream)`, then publishes the file under `path` in one rename.
inline void write_atomically(const std::filesystem::path& path,
                             const std::function<void(std::ostream&)>& write) {
  const std::filesystem::path tmp =
      path.string() + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw io_error(path.string(), std::string("cannot open for writing: ") + std::strerror(errno));
    try {
      write(out);
    } catch (...) {
      out.close();
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      throw;
    }
    out.flush();
    if (!out) {
      out.close();
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      throw io_error(path.string(), "write failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw io_error(path.string(), "cannot move the finished file into place: " + ec.message());
  }
}

inline void write_text_atomically(const std::filesystem::path& path, const std::string& text) {
  write_atomically(path, [&](std::ostream& out) { out << text; });
}

}  // namespace sae::io
