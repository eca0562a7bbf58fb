// An output folder that one run owns at a time and that never loses a good run.
//
// - Ownership: `<out>/.sae-run` names the program whose runs the folder holds. A run writes only
//   into a folder that is new, empty, or marked as its own program's; a folder holding anything
//   else (another program's run, files no run wrote, an earlier version's unmarked run) is refused
//   naming what it holds, and so is a folder among another program's run's outputs.
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
// - Readers of anything inside a run folder call settle_before_reading(path) first: a commit that
//   was cut short is completed (or, while its run still holds the lock, the read is refused).
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

// flock() on a folder itself, held while the object lives: a commit holds its run folder
// exclusively while it publishes, readers hold it shared while they read, so a reader never sees
// half of a commit. Locking the folder (not a file in it) creates nothing, so read-only folders
// and other programs' runs can be read too. Where the folder cannot be opened or locked (a
// filesystem without flock), it is not held and the caller goes on unprotected.
class FolderLock {
 public:
  FolderLock() = default;
  // `operation`: LOCK_SH or LOCK_EX; waits until it is granted.
  FolderLock(const std::filesystem::path& dir, int operation)
      : fd_(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
    if (fd_ >= 0 && !relock(operation)) release();
  }
  FolderLock(FolderLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  FolderLock& operator=(FolderLock&& o) noexcept {
    if (this != &o) release(), fd_ = std::exchange(o.fd_, -1);
    return *this;
  }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;
  ~FolderLock() { release(); }

  bool held() const { return fd_ >= 0; }

  // Changes the lock (shared <-> exclusive, not atomic: flock may release it in between).
  bool relock(int operation) {
    while (::flock(fd_, operation) != 0)
      if (errno != EINTR) return false;
    return true;
  }

 private:
  void release() {
    if (fd_ >= 0) ::close(fd_);  // releases the flock
    fd_ = -1;
  }
  int fd_ = -1;
};

}  // namespace detail

class RunDirectory {
 public:
  static constexpr const char* kStagingPrefix = ".staging-";
  static constexpr const char* kCommitMarker = ".committing";
  static constexpr const char* kManifest = ".sae-outputs";
  static constexpr const char* kOwner = ".sae-run";

  // Creates `out` if needed, takes its lock (or throws naming the holder), finishes any commit a
  // killed run left half done, and opens a fresh staging folder. `program` names this run to
  // other runs that find the folder locked.
  RunDirectory(std::filesystem::path out, const std::string& program) : out_(std::move(out)) {
    namespace fs = std::filesystem;
    if (out_.empty()) throw io_error("--out", "the output directory path is empty");
    std::error_code ec;
    if (fs::exists(out_, ec) && !fs::is_directory(out_, ec))
      throw io_error(out_.string(), "exists and is not a directory; choose another output directory");
    require_owned_by(out_, program);  // before the lock file: a foreign folder gets no new file
    created_out_ = !fs::exists(out_, ec);
    fs::create_directories(out_, ec);
    if (ec) throw io_error(out_.string(), "cannot create the output directory: " + ec.message());
    lock(program);
    require_owned_by(out_, program);  // again under the lock: another program may have claimed it
    mark(out_, program);
    {
      const detail::FolderLock publishing(out_, LOCK_EX);  // readers of the folder wait for it
      finish_commits(out_);
    }
    staging_ = out_ / (std::string(kStagingPrefix) + stamp());
    fs::create_directories(staging_, ec);
    if (ec) throw io_error(staging_.string(), "cannot create the staging folder: " + ec.message());
    if (::access(staging_.c_str(), W_OK) != 0)
      throw io_error(out_.string(), std::string("not writable: ") + std::strerror(errno));
  }

  // Refuses `out` unless `program` may write into it: new, empty, or marked as `program`'s run
  // folder, and not inside another program's run folder. The error names the path and what it holds.
  static void require_owned_by(const std::filesystem::path& out, const std::string& program) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const std::string advice = "; " + program + " writes only into a new or empty folder or one of its own run folders: "
                               "choose another output directory";
    // Another program's run folder may hold ours (results/matryoshka beside a grid in results/),
    // but not where its own outputs are: the two runs' commits would mix.
    const fs::path absolute = fs::absolute(out, ec).lexically_normal();
    for (fs::path up = absolute.parent_path(); !up.empty(); up = up.parent_path()) {
      const std::string owner = owner_of(up);
      if (!owner.empty() && owner != program) {
        const std::string inside = absolute.lexically_relative(up).generic_string() + "/";
        for (const auto& line : lines(detail::read_small_file(up / kManifest)))
          if (line.compare(0, inside.size(), inside) == 0)
            throw io_error(out.string(), "is among the outputs of " + up.string() + ", a " + owner + " run folder (it holds " +
                                             line + ")" + advice);
      }
      if (up == up.root_path()) break;
    }
    if (!fs::is_directory(out, ec)) return;
    const std::string owner = owner_of(out);
    if (owner == program) return;
    if (!owner.empty()) throw io_error(out.string(), "holds a " + owner + " run" + advice);
    std::vector<std::string> foreign;
    bool unmarked_run = false;
    for (auto it = fs::directory_iterator(out, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name == ".lock" || name.rfind(std::string(kOwner) + ".tmp.", 0) == 0) continue;  // ours, or a mark being written
      if (!owner_of(it->path()).empty()) continue;  // another run beside (results/matryoshka in results/)
      const bool staging = name.rfind(kStagingPrefix, 0) == 0;
      if (staging && detail::files_under(it->path()).empty()) continue;  // left by a run that wrote nothing
      if (name == kManifest || staging) unmarked_run = true;
      else foreign.push_back(name);
    }
    if (unmarked_run)
      throw io_error(out.string(), "holds a run made by an earlier version, which did not record its program (to let " +
                                       program + " reuse it, write '" + program + "' into " + (out / kOwner).string() +
                                       ")" + advice);
    if (!foreign.empty()) {
      std::sort(foreign.begin(), foreign.end());
      throw io_error(out.string(), "holds " + std::to_string(foreign.size()) + " file(s) no sae run wrote (first: '" +
                                       foreign.front() + "')" + advice);
    }
  }

  // The program whose run folder `dir` is ("" when it is none).
  static std::string owner_of(const std::filesystem::path& dir) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(dir / kOwner, ec)) return "";
    const auto text = lines(detail::read_small_file(dir / kOwner));
    return text.empty() ? std::string("unknown program's") : text.front();
  }

  // Marks `dir` as `program`'s run folder (a sharded run marks the folder its shards live in).
  static void mark(const std::filesystem::path& dir, const std::string& program) {
    if (owner_of(dir) != program) write_text_atomically(dir / kOwner, program + "\n");
  }

  // Held by a reader while it reads inside a run folder (see settle_before_reading).
  using ReadGuard = detail::FolderLock;

  // Call before reading anything inside a run folder (a checkpoint under runs/l4, say), and keep
  // what it returns until the reading is done: a commit cut short there is completed first, and
  // no commit starts while the guard lives (one in progress is waited for), so the reader never
  // mixes two runs' files. A commit cut short while its run still holds the folder is refused.
  [[nodiscard]] static ReadGuard settle_before_reading(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    settle_directory_replacement(path, /*remove_leftovers=*/false);
    const auto committing = [&](const fs::path& dir) {
      for (const auto& s : staging_folders(dir))
        if (fs::exists(s / kCommitMarker, ec)) return true;
      return false;
    };
    for (fs::path dir = fs::absolute(path, ec); !dir.empty(); dir = dir.parent_path()) {
      if (!owner_of(dir).empty() || fs::is_regular_file(dir / kManifest, ec)) {
        ReadGuard guard(dir, LOCK_SH);
        if (!committing(dir)) return guard;
        // A commit was cut short: finish it holding the folder alone (other readers let go first).
        guard = ReadGuard();
        ReadGuard exclusive(dir, LOCK_EX);
        if (committing(dir)) {
          const int fd = ::open((dir / ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
          if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            if (fd >= 0) ::close(fd);
            throw io_error(path.string(), "the run writing " + dir.string() +
                                              " is publishing its outputs right now; read it when that run has finished");
          }
          try {
            finish_commits(dir);
          } catch (...) {
            ::close(fd);
            throw;
          }
          ::close(fd);
        }
        if (exclusive.held()) exclusive.relock(LOCK_SH);
        return exclusive;
      }
      if (dir == dir.root_path()) return {};
    }
    return {};
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
    // A folder this run created and left with nothing else in it goes (its owner mark stays beside
    // an unfinished run's files, so the next run may reuse them); removed while the lock is held, so
    // no run that starts meanwhile loses its mark or lock file.
    if (!committed_ && created_out_ && !fs::exists(staging_, ec) && lock_fd_ >= 0) {
      bool only_ours = true;
      for (auto it = fs::directory_iterator(out_, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
        only_ours = only_ours && (it->path().filename() == ".lock" || it->path().filename() == kOwner);
      if (only_ours && !ec) {
        fs::remove(out_ / kOwner, ec);
        fs::remove(out_ / ".lock", ec);
        fs::remove(out_, ec);
      }
    }
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
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
    auto stale = staging_folders(out_);
    std::sort(stale.rbegin(), stale.rend());  // stamps sort by time
    for (const auto& s : stale)
      if (s != staging_ && std::filesystem::is_regular_file(s / relative, ec)) found.push_back(s / relative);
    return found;
  }

  // Brings an earlier run's finished file or folder into this run (reused results are published
  // with it; a committed one stays where it is, under a folder the commit keeps).
  void adopt(const std::filesystem::path& from, const std::filesystem::path& relative) const {
    namespace fs = std::filesystem;
    if (from == out_ / relative) return;  // already published
    std::error_code ec;
    fs::copy(from, stage(relative), fs::copy_options::overwrite_existing | fs::copy_options::recursive, ec);
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
    const detail::FolderLock publishing(out_, LOCK_EX);  // waits for readers; they wait for it
    write_text_atomically(staging_ / kCommitMarker, obsolete.str());
    detail::kill_point("commit-marked");
    move_into_out(out_, staging_);
    committed_ = true;
    for (const auto& stale : staging_folders(out_)) {
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

  static std::vector<std::filesystem::path> staging_folders(const std::filesystem::path& out) {
    std::vector<std::filesystem::path> found;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(out, ec); !ec && it != std::filesystem::directory_iterator();
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

  // Completes every commit a killed run left half done in `out` (the caller holds its lock).
  static void finish_commits(const std::filesystem::path& out) {
    for (const auto& stale : staging_folders(out))
      if (std::filesystem::exists(stale / kCommitMarker)) move_into_out(out, stale);
  }

  // Moves every file of a staging folder (marked committing) into `out`, removes the files its
  // marker lists as obsolete, then the folder. Safe to repeat after a kill at any point.
  static void move_into_out(const std::filesystem::path& out, const std::filesystem::path& from) {
    namespace fs = std::filesystem;
    std::error_code ec;
    for (const auto& f : detail::files_under(from)) {
      if (f == kCommitMarker) continue;
      const auto target = out / f;
      fs::create_directories(target.parent_path(), ec);
      fs::rename(from / f, target, ec);
      if (ec) throw io_error(target.string(), "cannot publish the run's output: " + ec.message());
      detail::kill_point("commit-rename");
    }
    for (const auto& line : lines(detail::read_small_file(from / kCommitMarker))) fs::remove(out / line, ec);
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

// Refuses an output path that is, holds, or lies inside one of the run's inputs (`inputs`: the flag
// that named each and its path), so a run can never replace or write into what it reads. `role`
// names the others in the message ("input", or "output" for the run's other outputs).
inline void require_apart_from_inputs(const std::filesystem::path& out, const std::string& out_flag,
                                      const std::vector<std::pair<std::string, std::filesystem::path>>& inputs,
                                      const std::string& role = "input") {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto canonical = [&](const fs::path& p) {
    auto c = fs::weakly_canonical(fs::absolute(p, ec), ec);
    return c.filename().empty() ? c.parent_path() : c;  // "dir/" names dir
  };
  const auto within = [](const fs::path& inner, const fs::path& outer) {
    auto i = inner.begin();
    for (auto o = outer.begin(); o != outer.end(); ++o, ++i)
      if (i == inner.end() || *i != *o) return false;
    return true;
  };
  const fs::path o = canonical(out);
  for (const auto& [flag, path] : inputs) {
    const fs::path in = canonical(path);
    if (within(in, o) || within(o, in))
      throw invalid_argument(out_flag + " " + out.string() + ": " +
                             (in == o ? std::string("is") : within(in, o) ? std::string("holds") : std::string("is inside")) +
                             " the " + role + " " + flag + " " + path.string() +
                             (role == "input" ? "; a run never writes over what it reads" : "; two outputs cannot share a folder") +
                             ": choose another output path");
  }
}

}  // namespace sae::io
