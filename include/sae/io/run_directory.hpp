// An output folder that one run owns at a time and that never loses a good run.
//
// - Lock: `<out>/.lock` is held with flock() for the run's lifetime (released by the kernel even
//   on SIGKILL) and names its holder, so a second run into the same folder stops and says who.
// - Staging: the run writes into `<out>/.staging-<id>/`; `commit()` moves its files into `<out>`
//   only once the run has succeeded. A run that fails or is killed leaves `<out>` as it was and
//   its partial files in the staging folder, where the next run can reuse finished results.
// - Commit is rolled forward: the staging folder is marked committing before the first file
//   moves, so a commit cut short is completed by the next run before it does anything else.
// - Manifest: `<out>/.sae-outputs` lists the files the last commit wrote; the next commit
//   removes those it did not write again (a figure not regenerated must not outlive its data),
//   except under the folders the program keeps as a result cache. Files a user put there are
//   never touched.
#pragma once

#include <sae/core/error.hpp>
#include <sae/io/atomic_file.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace sae::io {

namespace detail {

inline std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

inline std::string read_small_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every regular file under `root`, as paths relative to it, sorted.
inline std::vector<std::filesystem::path> files_under(const std::filesystem::path& root) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) return files;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec)) files.push_back(std::filesystem::relative(it->path(), root, ec));
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace detail

class RunDirectory {
 public:
  static constexpr const char* kStagingPrefix = ".staging-";
  static constexpr const char* kCommitMarker = ".committing";
  static constexpr const char* kManifest = ".sae-outputs";

  // Creates `out` if needed, takes its lock (or throws naming the holder), finishes any commit a
  // killed run left half done, and opens a fresh staging folder. `program` names this run to
  // other runs that find the folder locked.
  RunDirectory(std::filesystem::path out, const std::string& program) : out_(std::move(out)) {
    namespace fs = std::filesystem;
    if (out_.empty()) throw io_error("--out", "the output directory path is empty");
    std::error_code ec;
    if (fs::exists(out_, ec) && !fs::is_directory(out_, ec))
      throw io_error(out_.string(), "exists and is not a directory; choose another output directory");
    created_out_ = !fs::exists(out_, ec);
    fs::create_directories(out_, ec);
    if (ec) throw io_error(out_.string(), "cannot create the output directory: " + ec.message());
    lock(program);
    for (const auto& stale : staging_folders())
      if (fs::exists(stale / kCommitMarker)) move_into_out(stale);
    staging_ = out_ / (std::string(kStagingPrefix) + stamp());
    fs::create_directories(staging_, ec);
    if (ec) throw io_error(staging_.string(), "cannot create the staging folder: " + ec.message());
    if (::access(staging_.c_str(), W_OK) != 0)
      throw io_error(out_.string(), std::string("not writable: ") + std::strerror(errno));
  }

  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  // A run that ends without commit() leaves the previous outputs alone and says where its
  // partial files are (see take_unfinished_note); a folder it created and left empty is removed.
  ~RunDirectory() {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!committed_ && !staging_.empty()) {
      if (detail::files_under(staging_).empty()) {
        fs::remove_all(staging_, ec);
      } else if (!quiet_) {
        unfinished_note() = "this run did not finish; the previous outputs in " + out_.string() +
                            " are unchanged and its partial files are in " + staging_.string();
        if (std::uncaught_exceptions() == 0) std::cerr << "note: " << take_unfinished_note() << "\n";
      }
    }
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
    if (!committed_ && created_out_) {
      fs::remove(out_ / ".lock", ec);
      fs::remove(out_, ec);  // only if empty
    }
  }

  // The note of a run that ended by an exception, for the handler to print after the error
  // itself (a destructor runs before the handler); empty when there is none.
  static std::string take_unfinished_note() { return std::exchange(unfinished_note(), std::string()); }

  const std::filesystem::path& out() const { return out_; }
  const std::filesystem::path& staging() const { return staging_; }

  // Where the run writes `relative`; its parent folders are created.
  std::filesystem::path stage(const std::filesystem::path& relative) const { return stage_in(staging_, relative); }

  // The same for a process that writes into another process's staging folder (the ranks of a
  // distributed sweep write into rank 0's).
  static std::filesystem::path stage_in(const std::filesystem::path& staging, const std::filesystem::path& relative) {
    const auto p = staging / relative;
    std::error_code ec;
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec) throw io_error(p.parent_path().string(), "cannot create folder: " + ec.message());
    return p;
  }

  // Existing copies of `relative` from earlier runs, most trusted first: the committed one in
  // `out`, then those in staging folders of runs that did not finish (newest first). The caller
  // checks each one's fingerprint before reusing it.
  std::vector<std::filesystem::path> previous(const std::filesystem::path& relative) const {
    std::vector<std::filesystem::path> found;
    std::error_code ec;
    if (std::filesystem::is_regular_file(out_ / relative, ec)) found.push_back(out_ / relative);
    auto stale = staging_folders();
    std::sort(stale.rbegin(), stale.rend());  // stamps sort by time
    for (const auto& s : stale)
      if (s != staging_ && std::filesystem::is_regular_file(s / relative, ec)) found.push_back(s / relative);
    return found;
  }

  // Brings an earlier run's finished file into this run (reused results are published with it).
  void adopt(const std::filesystem::path& from, const std::filesystem::path& relative) const {
    if (from == out_ / relative) return;  // already published
    std::error_code ec;
    std::filesystem::copy_file(from, stage(relative), std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) throw io_error(from.string(), "cannot copy into the staging folder: " + ec.message());
  }

  // Publishes the staged files into `out`. Files the previous commit wrote and this one did not
  // are removed, except under `keep` (folders relative to `out` holding reusable results). Then
  // every staging folder, including those of failed runs, is removed.
  void commit(const std::vector<std::filesystem::path>& keep = {}) {
    namespace fs = std::filesystem;
    const auto staged = detail::files_under(staging_);
    std::set<std::string> written;
    for (const auto& f : staged) written.insert(f.generic_string());
    std::ostringstream manifest;
    for (const auto& f : staged) manifest << f.generic_string() << '\n';
    // Files of the previous commit that survive: cached results, which stay listed.
    std::ostringstream obsolete;
    for (const auto& line : lines(detail::read_small_file(out_ / kManifest))) {
      if (written.count(line)) continue;
      const bool cached = std::any_of(keep.begin(), keep.end(), [&](const fs::path& k) {
        const std::string prefix = k.generic_string() + "/";
        return line.compare(0, prefix.size(), prefix) == 0;
      });
      (cached ? manifest : obsolete) << line << '\n';
    }
    write_text_atomically(staging_ / kManifest, manifest.str());
    write_text_atomically(staging_ / kCommitMarker, obsolete.str());
    move_into_out(staging_);
    committed_ = true;
    for (const auto& stale : staging_folders()) {
      std::error_code ec;
      fs::remove_all(stale, ec);
    }
  }

  // Tests: leave without the "did not finish" note.
  void set_quiet(bool quiet) { quiet_ = quiet; }

 private:
  static std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(line);
    return out;
  }

  static std::string stamp() {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    char buf[64];
    std::snprintf(buf, sizeof buf, "%020lld-%ld", static_cast<long long>(ns), static_cast<long>(::getpid()));
    return buf;
  }

  std::vector<std::filesystem::path> staging_folders() const {
    std::vector<std::filesystem::path> found;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(out_, ec); !ec && it != std::filesystem::directory_iterator();
         it.increment(ec))
      if (it->path().filename().string().rfind(kStagingPrefix, 0) == 0 && it->is_directory(ec))
        found.push_back(it->path());
    return found;
  }

  void lock(const std::string& program) {
    const auto path = out_ / ".lock";
    lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) throw io_error(out_.string(), std::string("cannot create the lock file (is the folder writable?): ") + std::strerror(errno));
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      std::string holder = detail::read_small_file(path);
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\r')) holder.pop_back();
      ::close(lock_fd_);
      lock_fd_ = -1;
      if (err != EWOULDBLOCK) throw io_error(path.string(), std::string("cannot lock: ") + std::strerror(err));
      throw io_error(out_.string(), "another run is writing into this folder (" +
                                        (holder.empty() ? std::string("holder unknown") : holder) +
                                        "); wait for it to finish or choose another output directory");
    }
    char host[256] = "unknown host";
    ::gethostname(host, sizeof host - 1);
    const std::string who = program + ", pid " + std::to_string(static_cast<long>(::getpid())) + " on " + host +
                            ", started " + detail::now_utc() + "\n";
    if (::ftruncate(lock_fd_, 0) == 0) {
      [[maybe_unused]] const auto n = ::pwrite(lock_fd_, who.data(), who.size(), 0);
    }
  }

  // Moves every file of a staging folder (marked committing) into `out`, removes the files its
  // marker lists as obsolete, then the folder. Safe to repeat after a kill at any point.
  void move_into_out(const std::filesystem::path& from) const {
    namespace fs = std::filesystem;
    std::error_code ec;
    for (const auto& f : detail::files_under(from)) {
      if (f == kCommitMarker) continue;
      const auto target = out_ / f;
      fs::create_directories(target.parent_path(), ec);
      fs::rename(from / f, target, ec);
      if (ec) throw io_error(target.string(), "cannot publish the run's output: " + ec.message());
    }
    for (const auto& line : lines(detail::read_small_file(from / kCommitMarker))) fs::remove(out_ / line, ec);
    fs::remove_all(from, ec);
  }

  static std::string& unfinished_note() {
    static std::string note;
    return note;
  }

  std::filesystem::path out_, staging_;
  int lock_fd_ = -1;
  bool committed_ = false, quiet_ = false, created_out_ = false;
};

}  // namespace sae::io
