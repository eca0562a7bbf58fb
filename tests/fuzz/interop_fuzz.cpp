// libFuzzer target: the SAELens and sparsify imports (import_any) on arbitrary folders. The input
// is split at "\n--8<--\n" into cfg.json and the weights file, which is written both as a SAELens
// folder (sae_weights.safetensors) and as a sparsify one (sae.safetensors); a missing part is a
// missing file. Each import must give a model whose tensors are finite and shaped as its config
// says, or throw sae::error; never crash, read out of bounds or allocate what the files cannot back.
#include "fuzz_common.hpp"

#include <sae/model/interop.hpp>

#include <variant>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string cut = "\n--8<--\n";
  const std::size_t at = text.find(cut);
  const std::string cfg = text.substr(0, at);
  for (const char* weights : {"sae_weights.safetensors", "sae.safetensors"}) {
    const auto dir = sae_fuzz::scratch("interop");
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    sae_fuzz::write_file(dir / "cfg.json", cfg.data(), cfg.size());
    if (at != std::string::npos) sae_fuzz::write_file(dir / weights, text.data() + at + cut.size(), size - at - cut.size());
    try {
      const auto any = sae::import_any<float>(dir);
      std::visit(
          [](const auto& model) {
            const auto& p = model.parameters();
            const sae::index_t f = model.num_latents(), d = model.input_dim();
            if (p.w_enc.rows() != f || p.w_enc.cols() != d || p.w_dec.rows() != f || p.w_dec.cols() != d || p.b_enc.size() != f ||
                (p.b_dec.size() != 0 && p.b_dec.size() != d))
              __builtin_trap();
            if (!p.w_enc.allFinite() || !p.w_dec.allFinite() || !p.b_enc.allFinite() || !p.b_dec.allFinite()) __builtin_trap();
          },
          any);
      if (const auto* jump = std::get_if<sae::JumpReluAutoencoder<float>>(&any); jump && !jump->thresholds().allFinite())
        __builtin_trap();
    } catch (const sae::error&) {
    }
  }
  return 0;
}
