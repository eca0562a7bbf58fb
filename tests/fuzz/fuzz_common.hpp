// Shared by the fuzz targets: a scratch file per fuzzing process, and the rule that the library
// may refuse input only with its own exceptions (anything else escaping is a finding).
#pragma once

#include <sae/core/error.hpp>
#include <sae/data/activations.hpp>
#include <sae/io/array_file.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace sae_fuzz {

inline std::filesystem::path scratch(const std::string& name) {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("sae-fuzz-" + std::to_string(static_cast<long>(::getpid())));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir / name;
}

inline void write_file(const std::filesystem::path& p, const char* data, std::size_t size) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(size));
}

// Opens `path` as an activations array and gathers it (a 4-D one at (0, 0)); refusals are fine.
inline void gather_activations(const std::filesystem::path& path) {
  try {
    const sae::io::ArrayFile view(path);
    if (view.rank() == 4) sae::data::gather_activations<float>(view, sae::data::LayerPosition{0, 0});
    else sae::data::gather_activations<double>(view);
  } catch (const sae::error&) {
  }
}

}  // namespace sae_fuzz
