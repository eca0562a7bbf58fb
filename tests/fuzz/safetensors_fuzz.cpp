// libFuzzer target: the .safetensors reader (header, tensor table, element reads) and the
// activation gather through it, on arbitrary bytes. They must accept a valid file or throw
// sae::error; never crash, read out of bounds, overflow, or allocate what the file cannot back.
#include "fuzz_common.hpp"

#include <sae/io/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = sae_fuzz::scratch("input.safetensors");
  sae_fuzz::write_file(path, reinterpret_cast<const char*>(data), size);
  try {
    const sae::io::SafetensorsFile f(path);
    for (const auto& t : f.tensors()) {
      if (static_cast<std::size_t>(t.num_elements()) > (std::size_t{1} << 20)) continue;  // backed by the file: small
      try {
        const auto v = f.values<float>(t);
        if (v.size() != static_cast<std::size_t>(t.num_elements())) __builtin_trap();
      } catch (const sae::error&) {
      }
    }
  } catch (const sae::error&) {
  }
  sae_fuzz::gather_activations(path);
  return 0;
}
