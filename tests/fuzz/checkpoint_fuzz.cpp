// libFuzzer target: the checkpoint loader (TopK and Matryoshka) on an arbitrary folder. The input is split at
// "\n--8<--\n" into config.json, w_enc.npy, b_enc.npy, w_dec.npy and b_dec.npy (missing parts
// are missing files). Loading must give a model whose shapes match its config, or throw
// sae::error; never crash or allocate what the files cannot back.
#include "fuzz_common.hpp"

#include <sae/model/checkpoint.hpp>

#include <vector>

using sae::index_t;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string cut = "\n--8<--\n";
  std::vector<std::string> parts;
  for (std::size_t at = 0;;) {
    const std::size_t next = text.find(cut, at);
    parts.push_back(text.substr(at, next == std::string::npos ? std::string::npos : next - at));
    if (next == std::string::npos) break;
    at = next + cut.size();
  }
  const auto dir = sae_fuzz::scratch("checkpoint");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const char* names[] = {"config.json", "w_enc.npy", "b_enc.npy", "w_dec.npy", "b_dec.npy"};
  for (std::size_t i = 0; i < parts.size() && i < 5; ++i) sae_fuzz::write_file(dir / names[i], parts[i].data(), parts[i].size());
  try {
    const auto model = sae::load_checkpoint<float>(dir);
    const auto& c = model.config();
    const auto& p = model.parameters();
    if (p.w_enc.rows() != c.num_latents || p.w_enc.cols() != c.input_dim || p.w_dec.rows() != c.num_latents)
      __builtin_trap();
  } catch (const sae::error&) {
  }
  try {
    const auto model = sae::load_model<sae::MatryoshkaAutoencoder<float>>(dir);
    index_t sum = 0;
    for (auto g : model.config().group_sizes) sum += g;
    if (sum != model.config().num_latents || model.parameters().w_dec.rows() != sum) __builtin_trap();
  } catch (const sae::error&) {
  }
  return 0;
}
