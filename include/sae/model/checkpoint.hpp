// Checkpoints: a directory holding config.json and one .npy per parameter
// (w_enc [F, D], b_enc [F], w_dec [F, D], and b_dec [D] when the decoder bias is on).
// The directory is assembled beside the target and renamed into place, so an interrupted save
// never damages the previous checkpoint.
#pragma once

#include <sae/core/error.hpp>
#include <sae/io/json.hpp>
#include <sae/io/npy.hpp>
#include <sae/model/topk_autoencoder.hpp>

#include <filesystem>
#include <string>
#include <unistd.h>

namespace sae {

inline constexpr const char* kCheckpointFormat = "sae.topk.v1";

inline io::Json to_json(const TopKConfig& c) {
  io::Json j = io::Json::object();
  j["input_dim"] = c.input_dim;
  j["num_latents"] = c.num_latents;
  j["k"] = c.k;
  j["selection"] = c.selection == Selection::magnitude ? "magnitude" : "value";
  j["decoder_bias"] = c.decoder_bias;
  j["seed"] = static_cast<double>(c.seed);
  return j;
}

inline TopKConfig topk_config_from_json(const io::Json& j, const std::string& source) {
  try {
    TopKConfig c;
    c.input_dim = j.at("input_dim").as_int();
    c.num_latents = j.at("num_latents").as_int();
    c.k = j.at("k").as_int();
    const std::string sel = j.at("selection").as_string();
    if (sel != "value" && sel != "magnitude") throw error("selection must be 'value' or 'magnitude', got '" + sel + "'");
    c.selection = sel == "magnitude" ? Selection::magnitude : Selection::value;
    c.decoder_bias = j.at("decoder_bias").as_bool();
    c.seed = static_cast<std::uint64_t>(j.at("seed").as_number());
    c.validate("checkpoint config");
    return c;
  } catch (const io_error&) {
    throw;
  } catch (const error& e) {
    throw io_error(source, e.what());
  }
}

template <class Scalar, class Backend>
void save_checkpoint(const std::filesystem::path& dir, const TopKAutoencoder<Scalar, Backend>& model) {
  namespace fs = std::filesystem;
  const fs::path partial = dir.string() + ".partial." + std::to_string(static_cast<long>(::getpid()));
  std::error_code ec;
  fs::remove_all(partial, ec);
  fs::create_directories(partial, ec);
  if (ec) throw io_error(partial.string(), "cannot create checkpoint directory: " + ec.message());
  const auto& p = model.parameters();
  io::save_npy(partial / "w_enc.npy", p.w_enc);
  io::save_npy(partial / "b_enc.npy", p.b_enc);
  io::save_npy(partial / "w_dec.npy", p.w_dec);
  if (model.config().decoder_bias) io::save_npy(partial / "b_dec.npy", p.b_dec);
  io::Json meta = io::Json::object();
  meta["format"] = kCheckpointFormat;
  meta["scalar"] = std::is_same_v<Scalar, float> ? "float32" : "float64";
  meta["config"] = to_json(model.config());
  io::write_text_atomically(partial / "config.json", meta.dump() + "\n");

  const fs::path old = dir.string() + ".old." + std::to_string(static_cast<long>(::getpid()));
  const bool had_previous = fs::exists(dir);
  if (had_previous) {
    fs::rename(dir, old, ec);
    if (ec) throw io_error(dir.string(), "cannot move the previous checkpoint aside: " + ec.message());
  }
  fs::rename(partial, dir, ec);
  if (ec) {
    if (had_previous) fs::rename(old, dir);
    throw io_error(dir.string(), "cannot move the new checkpoint into place: " + ec.message());
  }
  if (had_previous) fs::remove_all(old, ec);
}

// Loads a checkpoint written by save_checkpoint (any stored float width converts to Scalar).
template <class Scalar, class Backend = cpu>
TopKAutoencoder<Scalar, Backend> load_checkpoint(const std::filesystem::path& dir) {
  const std::filesystem::path config_path = dir / "config.json";
  const io::Json meta = io::read_json_file(config_path.string());
  const std::string source = config_path.string();
  const io::Json* format = meta.is_object() ? meta.find("format") : nullptr;
  if (!format || !format->is_string() || format->as_string() != kCheckpointFormat)
    throw io_error(source, std::string("not an sae checkpoint (expected \"format\": \"") + kCheckpointFormat + "\")");
  const io::Json* config_json = meta.find("config");
  if (!config_json || !config_json->is_object()) throw io_error(source, "missing \"config\" object");
  const TopKConfig config = topk_config_from_json(*config_json, source);

  const auto check_matrix = [&](const char* name, index_t rows, index_t cols) {
    const std::filesystem::path f = dir / name;
    Matrix<Scalar> m = io::load_npy_matrix<Scalar>(f);
    if (m.rows() != rows || m.cols() != cols)
      throw io_error(f.string(), "shape (" + std::to_string(m.rows()) + ", " + std::to_string(m.cols()) +
                                     ") does not match the config's (" + std::to_string(rows) + ", " +
                                     std::to_string(cols) + ")");
    return m;
  };
  const auto check_vector = [&](const char* name, index_t size) {
    const std::filesystem::path f = dir / name;
    Vector<Scalar> v = io::load_npy_vector<Scalar>(f);
    if (v.size() != size)
      throw io_error(f.string(), "length " + std::to_string(v.size()) + " does not match the config's " +
                                     std::to_string(size));
    return v;
  };
  TopKParameters<Scalar> p;
  p.w_enc = check_matrix("w_enc.npy", config.num_latents, config.input_dim);
  p.b_enc = check_vector("b_enc.npy", config.num_latents);
  p.w_dec = check_matrix("w_dec.npy", config.num_latents, config.input_dim);
  if (config.decoder_bias) p.b_dec = check_vector("b_dec.npy", config.input_dim);
  return TopKAutoencoder<Scalar, Backend>(config, std::move(p));
}

}  // namespace sae
