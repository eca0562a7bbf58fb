// Atomic output: write to a temporary file beside the target, then rename over it, so a crash
// or a full disk never leaves a half-written result where a good one used to be.
#pragma once

#include <sae/core/error.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace sae::io {

namespace detail {

// Tests of "killed at any point": when SAE_TEST_KILL_AT is `point` (or `point:n`, the n-th time this
// process reaches it), the process dies here by SIGKILL, as a power cut or an OOM kill would.
inline void kill_point(const char* point) {
  const char* at = std::getenv("SAE_TEST_KILL_AT");
  if (!at) return;
  const std::string spec = at;
  const auto colon = spec.find(':');
  if (spec.compare(0, colon, point) != 0) return;
  static int reached = 0;  // one kill per process, so one counter is enough
  if (colon == std::string::npos || ++reached == std::atoi(spec.c_str() + colon + 1)) ::raise(SIGKILL);
}

// Whether `pid` names a live process on this machine.
inline bool process_alive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

// The pid a `<dir>.<what>.<pid>` sibling of `dir` carries, or -1 when `sibling` is not one.
inline long replacement_pid(const std::filesystem::path& dir, const std::filesystem::path& sibling, const std::string& what) {
  const std::string prefix = dir.filename().string() + ".sae-" + what + ".";
  const std::string name = sibling.filename().string();
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string digits = name.substr(prefix.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::atol(digits.c_str());
}

}  // namespace detail

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

// Finishes what a killed write_directory_atomically left beside `dir`: a previous `dir` moved aside
// comes back when no new one took its place (rolled back), and every leftover of a dead process
// (a partial folder, a previous copy already replaced) is removed. Folders of a live writer stay.
// Called before each replacement and by readers of `dir` (which only roll back, and remove
// nothing: `remove_leftovers` false), so nothing half-done is ever read.
inline void settle_directory_replacement(const std::filesystem::path& given, bool remove_leftovers = true) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dir = given.lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();  // "ckpt/" names ckpt
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  if (dir.filename().empty() || !fs::is_directory(parent, ec)) return;
  std::vector<fs::path> aside, partial;
  for (auto it = fs::directory_iterator(parent, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const long old_pid = detail::replacement_pid(dir, it->path(), "old");
    const long partial_pid = detail::replacement_pid(dir, it->path(), "partial");
    if (old_pid > 0 && !detail::process_alive(old_pid)) aside.push_back(it->path());
    if (partial_pid > 0 && !detail::process_alive(partial_pid)) partial.push_back(it->path());
  }
  for (const auto& p : aside) {
    if (!fs::exists(dir, ec)) fs::rename(p, dir, ec);  // the replacement never arrived: roll back
    else if (remove_leftovers) fs::remove_all(p, ec);
  }
  if (remove_leftovers)
    for (const auto& p : partial) fs::remove_all(p, ec);
}

// Calls `fill(folder)` on a fresh folder beside `dir`, then puts it in `dir`'s place in one step
// (renameat2 RENAME_EXCHANGE; the previous contents are removed after). Where the file system
// cannot exchange, the previous `dir` is moved aside first: a kill between the two renames is
// rolled back by the next settle_directory_replacement. Either way `dir` holds the old or the
// new contents, whole.
inline void write_directory_atomically(const std::filesystem::path& target,
                                       const std::function<void(const std::filesystem::path&)>& fill) {
  namespace fs = std::filesystem;
  fs::path dir = target.lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();  // "ckpt/" names ckpt
  settle_directory_replacement(dir);
  const std::string pid = std::to_string(static_cast<long>(::getpid()));
  const fs::path partial = dir.string() + ".sae-partial." + pid;
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
  detail::kill_point("replace-filled");
  const bool had_previous = fs::exists(dir, ec);
#ifdef RENAME_EXCHANGE
  // SAE_TEST_NO_RENAME_EXCHANGE: tests of the fallback, as on a file system without the exchange.
  if (had_previous && !std::getenv("SAE_TEST_NO_RENAME_EXCHANGE") && ::renameat2(AT_FDCWD, partial.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
    detail::kill_point("replace-exchanged");
    fs::remove_all(partial, ec);  // now the previous contents
    return;
  }
#endif
  const fs::path old = dir.string() + ".sae-old." + pid;
  if (had_previous) {
    fs::rename(dir, old, ec);
    if (ec) throw io_error(dir.string(), "cannot move the previous contents aside: " + ec.message());
    detail::kill_point("replace-aside");
  }
  fs::rename(partial, dir, ec);
  if (ec) {
    if (had_previous) fs::rename(old, dir, ec);
    throw io_error(dir.string(), "cannot move the new contents into place: " + ec.message());
  }
  detail::kill_point("replace-in-place");
  if (had_previous) fs::remove_all(old, ec);
}

}  // namespace sae::io
