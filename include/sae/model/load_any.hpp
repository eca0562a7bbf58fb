// Any SAE folder this library reads, by what it holds: our checkpoint of any registered
// architecture (config.json: load_any_checkpoint) or a SAELens / sparsify folder (import_any). What
// sae-eval (and any program that takes "an SAE") loads, with what it was and its config as JSON.
#pragma once

#include <sae/core/error.hpp>
#include <sae/data/metadata.hpp>
#include <sae/io/config_json.hpp>
#include <sae/io/json.hpp>
#include <sae/io/run_directory.hpp>
#include <sae/model/checkpoint.hpp>
#include <sae/model/interop.hpp>
#include <sae/model/registry.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <variant>

namespace sae {

template <class Scalar = float>
struct LoadedSae {
  AnyModel<Scalar> model;
  std::string kind;                // "checkpoint (topk)", "saelens folder", "sparsify folder"
  bool ours = false;               // our checkpoint (then `trained_on` may say what its data was)
  io::Json config;                 // our checkpoint's config.json, or the folder's cfg.json, as read
  data::DataMetadata trained_on;   // the training data's metadata our checkpoint recorded (else empty)
  // A SAELens folder with apply_b_dec_to_input = false: its own b_enc. The model's is
  // b_enc + W_enc b_dec (the same pre-activations, see interop.hpp); tools that report the
  // encoder bias by latent (SAEBench) report the folder's.
  std::optional<Vector<double>> folder_encoder_bias;
};

// The SAE in `dir`: our checkpoint when it holds config.json, else a SAELens or sparsify folder
// (detected from its weights file). Errors name the folder.
template <class Scalar = float>
LoadedSae<Scalar> load_any_sae(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const auto reading = io::RunDirectory::settle_before_reading(dir);  // never half of a commit
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw io_error(dir.string(), fs::exists(dir, ec) ? "not a folder" : "no such folder");
  if (fs::exists(dir / "config.json", ec)) {
    LoadedSae<Scalar> s{load_any_checkpoint<Scalar>(dir), "", true, io::read_json_file((dir / "config.json").string()),
                        checkpoint_data_metadata(dir), std::nullopt};
    s.kind = std::visit([](const auto& m) { return "checkpoint (" + std::string(m.architecture) + ")"; }, s.model);
    return s;
  }
  const ExternalFormat format = detect_external_format(dir);
  LoadedSae<Scalar> s{import_any<Scalar>(dir), std::string(name(format)) + " folder", false,
                      io::read_json_file((dir / "cfg.json").string()), {}, std::nullopt};
  if (format == ExternalFormat::saelens) {
    auto folder = interop_detail::read_saelens<double>(dir);
    if (!folder.bias_on_input) {
      interop_detail::read_saelens_tensors(dir, folder);
      s.folder_encoder_bias = folder.b_enc;
    }
  }
  return s;
}

}  // namespace sae
