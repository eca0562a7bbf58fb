// Checkpoints of any architecture: a directory holding config.json (format, architecture, scalar
// type, config, any state beyond the parameters, and the training data's metadata) and one <slot>.npy per named parameter slot
// (w_enc [F, D], b_enc [F], w_dec [F, D], and b_dec [D] with the decoder bias). The directory is
// assembled beside the target and renamed into place, so an interrupted save never damages the
// previous checkpoint.
//
// A model is checkpointable when it names `architecture`, a `Config` with a field list
// (core/fields.hpp; its JSON is the checkpoint's "config"), `for_each_slot` and has a (Config,
// Parameters) constructor; `state_to_json` / `state_from_json` are optional (Matryoshka's threshold).
#pragma once

#include <sae/core/error.hpp>
#include <sae/data/metadata.hpp>
#include <sae/io/atomic_file.hpp>
#include <sae/io/config_json.hpp>
#include <sae/io/json.hpp>
#include <sae/io/npy.hpp>
#include <sae/io/run_directory.hpp>
#include <sae/model/batch_topk_autoencoder.hpp>
#include <sae/model/jumprelu_autoencoder.hpp>
#include <sae/model/matryoshka_autoencoder.hpp>
#include <sae/model/topk_autoencoder.hpp>

#include <filesystem>
#include <string>
#include <type_traits>

namespace sae {

inline constexpr const char* kCheckpointFormat = "sae.checkpoint.v2";
inline constexpr const char* kTopKCheckpointFormatV1 = "sae.topk.v1";  // still read: a TopK checkpoint

namespace checkpoint_detail {
template <class, class = void>
struct has_state : std::false_type {};
template <class M>
struct has_state<M, std::void_t<decltype(std::declval<const M&>().state_to_json())>> : std::true_type {};

// The architecture a checkpoint's config.json names ("topk" for the v1 format); an error if it is
// not one of ours.
inline std::string architecture_of(const io::Json& meta, const std::string& source) {
  const io::Json* format = meta.is_object() ? meta.find("format") : nullptr;
  const bool v1 = format && format->is_string() && format->as_string() == kTopKCheckpointFormatV1;
  if (!format || !format->is_string() || (format->as_string() != kCheckpointFormat && !v1))
    throw io_error(source, std::string("not an sae checkpoint (expected \"format\": \"") + kCheckpointFormat + "\")");
  const io::Json* arch = v1 ? nullptr : meta.find("architecture");
  return v1 ? "topk" : arch && arch->is_string() ? arch->as_string() : "";
}
}  // namespace checkpoint_detail

// The architecture of the checkpoint in `dir` ("topk", "batchtopk", "jumprelu", "matryoshka"), to choose the Model to load.
inline std::string checkpoint_architecture(const std::filesystem::path& dir) {
  const auto reading = io::RunDirectory::settle_before_reading(dir);
  const std::string source = (dir / "config.json").string();
  return checkpoint_detail::architecture_of(io::read_json_file(source), source);
}

// `data`: what the training rows said they were (data/metadata.hpp), so that applying the
// checkpoint to other activations can be refused.
template <class Model>
void save_checkpoint(const std::filesystem::path& dir, const Model& model, const data::DataMetadata& data = {}) {
  using Scalar = typename Model::scalar_type;
  const auto& p = model.parameters();  // a host copy for device models
  io::write_directory_atomically(dir, [&](const std::filesystem::path& partial) {
    Model::for_each_slot(p, model.config(), [&](const char* name, const auto& param, index_t, index_t) {
      io::save_npy(partial / (std::string(name) + ".npy"), param);
    });
    io::Json meta = io::Json::object();
    meta["format"] = kCheckpointFormat;
    meta["architecture"] = Model::architecture;
    meta["scalar"] = std::is_same_v<Scalar, float> ? "float32" : "float64";
    meta["config"] = io::fields_to_json(model.config());
    if constexpr (checkpoint_detail::has_state<Model>::value) meta["state"] = model.state_to_json();
    if (!data.empty()) meta["data"] = data::metadata_to_json(data);
    io::write_text_atomically(partial / "config.json", meta.dump() + "\n");
  });
}

// Loads a checkpoint written by save_checkpoint as a Model (any stored float width converts to
// its scalar type). A checkpoint of another architecture is refused, naming both.
// The training data's metadata a checkpoint recorded (empty for one saved without it).
inline data::DataMetadata checkpoint_data_metadata(const std::filesystem::path& dir) {
  const std::string source = (dir / "config.json").string();
  const io::Json meta = io::read_json_file(source);
  checkpoint_detail::architecture_of(meta, source);
  const io::Json* data = meta.find("data");
  return data ? data::metadata_from_json(*data, source) : data::DataMetadata{};
}

template <class Model>
Model load_model(const std::filesystem::path& dir) {
  using Scalar = typename Model::scalar_type;
  const auto reading = io::RunDirectory::settle_before_reading(dir);  // never a half-published checkpoint
  const std::string source = (dir / "config.json").string();
  const io::Json meta = io::read_json_file(source);
  const std::string architecture = checkpoint_detail::architecture_of(meta, source);
  if (architecture != Model::architecture)
    throw io_error(source, "holds a '" + architecture + "' SAE, not '" + Model::architecture + "'");
  const io::Json* config_json = meta.find("config");
  if (!config_json || !config_json->is_object()) throw io_error(source, "missing \"config\" object");
  const auto config = io::config_from_json<typename Model::Config>(*config_json, source);

  typename Model::Parameters p;
  Model::for_each_slot(p, config, [&](const char* name, auto& param, index_t rows, index_t cols) {
    const std::filesystem::path f = dir / (std::string(name) + ".npy");
    using Param = std::decay_t<decltype(param)>;
    if constexpr (Param::ColsAtCompileTime == 1) {
      param = io::load_npy_vector<Scalar>(f);
      if (param.size() != rows)
        throw io_error(f.string(), "length " + std::to_string(param.size()) + " does not match the config's " +
                                       std::to_string(rows));
    } else {
      param = io::load_npy_matrix<Scalar>(f);
      if (param.rows() != rows || param.cols() != cols)
        throw io_error(f.string(), "shape (" + std::to_string(param.rows()) + ", " + std::to_string(param.cols()) +
                                       ") does not match the config's (" + std::to_string(rows) + ", " +
                                       std::to_string(cols) + ")");
    }
  });
  Model model(config, std::move(p));
  if constexpr (checkpoint_detail::has_state<Model>::value) {
    const io::Json* state = meta.find("state");
    if (!state || !state->is_object()) throw io_error(source, std::string("missing \"state\" object of a ") + architecture + " SAE");
    try {
      model.state_from_json(*state);
    } catch (const error& e) {
      throw io_error(source, std::string("bad \"state\": ") + e.what());
    }
  }
  return model;
}

// A TopK checkpoint (the common case): load_checkpoint<float>("ckpt").
template <class Scalar, class Backend = cpu>
TopKAutoencoder<Scalar, Backend> load_checkpoint(const std::filesystem::path& dir) {
  return load_model<TopKAutoencoder<Scalar, Backend>>(dir);
}

}  // namespace sae
