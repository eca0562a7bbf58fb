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

// Calls `fill(folder)` on a fresh folder beside `dir`, then moves it into place: a previous `dir`
// is moved aside first and removed after, so an interrupted write never damages it.
inline void write_directory_atomically(const std::filesystem::path& dir,
                                       const std::function<void(const std::filesystem::path&)>& fill) {
  namespace fs = std::filesystem;
  const std::string pid = std::to_string(static_cast<long>(::getpid()));
  const fs::path partial = dir.string() + ".partial." + pid;
  std::error_code ec;
  fs::remove_all(partial, ec);
  fs::create_directories(partial, ec);
  if (ec) throw io_error(partial.string(), "cannot create directory: " + ec.message());
  try {
    fill(partial);
  } catch (...) {
    fs::remove_all(partial, ec);
    throw;
  }
  const fs::path old = dir.string() + ".old." + pid;
  const bool had_previous = fs::exists(dir);
  if (had_previous) {
    fs::rename(dir, old, ec);
    if (ec) throw io_error(dir.string(), "cannot move the previous contents aside: " + ec.message());
  }
  fs::rename(partial, dir, ec);
  if (ec) {
    if (had_previous) fs::rename(old, dir);
    throw io_error(dir.string(), "cannot move the new contents into place: " + ec.message());
  }
  if (had_previous) fs::remove_all(old, ec);
}

}  // namespace sae::io
