// libFuzzer target: the .npy readers (stream loader, memory map, activation gather) on arbitrary
// bytes. They must accept a valid file or throw sae::io_error; never crash, read out of bounds,
// overflow, or allocate what the file cannot back.
#include "fuzz_common.hpp"

#include <sae/io/npy.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = sae_fuzz::scratch("input.npy");
  sae_fuzz::write_file(path, reinterpret_cast<const char*>(data), size);
  try {
    const auto a = sae::io::load_npy<float>(path);
    std::size_t n = 1;
    for (auto s : a.shape) n *= static_cast<std::size_t>(s);
    if (n != a.data.size()) __builtin_trap();  // shape and data must agree
  } catch (const sae::error&) {
  }
  sae_fuzz::gather_activations(path);
  return 0;
}
