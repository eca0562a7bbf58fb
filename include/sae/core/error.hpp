// The exceptions sae throws. Messages say what, where, and what was expected.
#pragma once

#include <stdexcept>
#include <string>

namespace sae {

// Base of every sae exception, so callers can catch the library's errors in one place.
struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A file could not be read or written, or its contents are malformed. The message names the file.
struct io_error : error {
  io_error(const std::string& path, const std::string& problem)
      : error((path.empty() ? std::string("(empty path)") : path) + ": " + problem) {}
};

// An argument has the wrong shape or value. The message names the caller.
struct invalid_argument : error {
  using error::error;
};

// Training diverged or produced values that cannot be used (NaN/Inf).
struct numeric_error : error {
  using error::error;
};

namespace detail {
// mlpack-style size check: `require(x.cols() == d, "encode()", "input has ...")`.
inline void require(bool ok, const char* caller, const std::string& what) {
  if (!ok) throw invalid_argument(std::string(caller) + ": " + what);
}
}  // namespace detail

}  // namespace sae
