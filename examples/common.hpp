// Small helpers shared by the example programs: CLI error handling and run-directory setup.
#pragma once

#include <sae/sae.hpp>

#include <cxxopts.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

namespace sae::examples {

// Runs `body`, turning every failure into one clear line on stderr and a non-zero exit code.
template <class Body>
int run_main(const char* program, Body&& body) {
  try {
    return body();
  } catch (const cxxopts::exceptions::exception& e) {
    std::cerr << program << ": " << e.what() << " (see --help)\n";
    return 2;
  } catch (const sae::invalid_argument& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 1;
  }
}

// Throws a usage error unless `ok`.
inline void check_flag(bool ok, const std::string& message) {
  if (!ok) throw sae::invalid_argument(message);
}

inline void make_output_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw sae::io_error(dir.string(), "cannot create output directory: " + ec.message());
}

// Sets the OpenMP/Eigen thread count when the user asked for one (0 = leave the default).
inline void set_threads(int threads) {
  check_flag(threads >= 0, "--threads must be >= 0, got " + std::to_string(threads));
#if SAE_USE_OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#endif
}

}  // namespace sae::examples
