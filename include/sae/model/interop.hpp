// SAEs in the folders the Python tools read and write, so a model trained here loads in SAELens
// (and through it SAEBench and feature dashboards) or sparsify, and theirs load here.
//
// SAELens v6: cfg.json + sae_weights.safetensors with W_enc [d_in, d_sae], b_enc [d_sae],
//   W_dec [d_sae, d_in], b_dec [d_in] (nothing else: SAELens loads strictly), and optionally
//   sparsity.safetensors (`sparsity`: log10 of each latent's activation frequency + 1e-10, as
//   SAELens's trainer writes it). A TopK model is architecture "topk" (top-k of the
//   pre-activations, then ReLU: our value selection); a Matryoshka model is saved as SAELens saves
//   its BatchTopK family for inference, a "jumprelu" folder whose per-latent `threshold` is our
//   scalar inference threshold (relu(pre) * (pre > threshold) fires exactly the latents our
//   threshold selection keeps).
// sparsify: cfg.json (d_in, num_latents, k, activation "topk", ...) + sae.safetensors with
//   encoder.weight [F, d], encoder.bias [F], W_dec [F, d], b_dec [d]. sparsify always encodes
//   x - b_dec, as our decoder-bias model does.
// Our models without a decoder bias export a zero b_dec (encoding is then identical). Imports map
// back onto TopKAutoencoder (SAELens "topk", sparsify) or JumpReluAutoencoder (SAELens "jumprelu";
// import_any picks): a nonzero b_dec becomes the decoder bias; SAELens's
// apply_b_dec_to_input = false with a nonzero b_dec is folded into b_enc (b_enc + W_enc b_dec), so
// the encoder computes the same pre-activations. Every imported tensor is checked against the shape
// the config gives and for NaN/Inf (the error names the file, the tensor and the first bad index),
// and a config with a key given twice is refused (io/json.hpp), where SAELens would take the last.
#pragma once

#include <sae/core/error.hpp>
#include <sae/io/atomic_file.hpp>
#include <sae/io/json.hpp>
#include <sae/io/run_directory.hpp>
#include <sae/io/safetensors.hpp>
#include <sae/model/batch_topk_autoencoder.hpp>
#include <sae/model/jumprelu_autoencoder.hpp>
#include <sae/model/matryoshka_autoencoder.hpp>
#include <sae/model/registry.hpp>
#include <sae/model/topk_autoencoder.hpp>

#include <cmath>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sae {

enum class ExternalFormat { saelens, sparsify };

inline const char* name(ExternalFormat f) { return f == ExternalFormat::saelens ? "saelens" : "sparsify"; }

inline ExternalFormat parse_external_format(const std::string& text) {
  if (text == "saelens") return ExternalFormat::saelens;
  if (text == "sparsify") return ExternalFormat::sparsify;
  throw invalid_argument("unknown SAE format '" + text + "': expected 'saelens' or 'sparsify'");
}

// The format of a folder by the weights file it holds; an error naming the folder otherwise.
inline ExternalFormat detect_external_format(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / "sae_weights.safetensors")) return ExternalFormat::saelens;
  if (std::filesystem::exists(dir / "sae.safetensors")) return ExternalFormat::sparsify;
  throw io_error(dir.string(), "neither a SAELens folder (sae_weights.safetensors) nor a sparsify folder (sae.safetensors)");
}

struct ExportOptions {
  io::FloatDType dtype = io::FloatDType::f32;
  const std::vector<double>* activation_frequency = nullptr;  // SAELens: also write sparsity.safetensors
  std::string hook_name;                                      // SAELens metadata, when known
};

namespace interop_detail {
inline const char* torch_dtype(io::FloatDType t) {
  switch (t) {
    case io::FloatDType::f16: return "float16";
    case io::FloatDType::bf16: return "bfloat16";
    case io::FloatDType::f32: return "float32";
  }
  return "float32";
}

// The tensors every format stores, from our host parameters (b_dec zero without a decoder bias).
template <class Scalar>
Vector<Scalar> decoder_bias_or_zero(const AutoencoderParameters<Scalar>& p, index_t d) {
  return p.b_dec.size() ? p.b_dec : Vector<Scalar>::Zero(d);
}

template <class Scalar>
void write_saelens(const std::filesystem::path& dir, const AutoencoderParameters<Scalar>& p, io::Json cfg,
                   const std::vector<io::TensorToWrite>& extra, const ExportOptions& opt) {
  const index_t f = p.w_enc.rows(), d = p.w_enc.cols();
  cfg["d_in"] = d;
  cfg["d_sae"] = f;
  cfg["dtype"] = torch_dtype(opt.dtype);
  cfg["device"] = "cpu";
  cfg["normalize_activations"] = "none";
  cfg["reshape_activations"] = "none";
  io::Json meta = io::Json::object();
  meta["sae_lens_version"] = "6.0.0";  // the format version these folders follow
  meta["sae_lens_training_version"] = "6.0.0";
  meta["trained_with"] = std::string("sae ") + SAE_VERSION_STRING + " (C++)";
  if (!opt.hook_name.empty()) meta["hook_name"] = opt.hook_name;
  cfg["metadata"] = meta;
  std::vector<io::TensorToWrite> tensors{io::tensor_to_write("W_dec", p.w_dec, opt.dtype),
                                         io::tensor_to_write("W_enc", p.w_enc.transpose(), opt.dtype),
                                         io::tensor_to_write("b_dec", decoder_bias_or_zero(p, d), opt.dtype, true),
                                         io::tensor_to_write("b_enc", p.b_enc, opt.dtype, true)};
  tensors.insert(tensors.end(), extra.begin(), extra.end());
  io::write_directory_atomically(dir, [&](const std::filesystem::path& out) {
    io::save_safetensors(out / "sae_weights.safetensors", tensors, {{"format", "pt"}});
    if (opt.activation_frequency) {
      sae::detail::require(static_cast<index_t>(opt.activation_frequency->size()) == f, "export_saelens()",
                           "activation_frequency has " + std::to_string(opt.activation_frequency->size()) +
                               " entries for " + std::to_string(f) + " latents");
      Vector<double> sparsity(f);
      for (index_t j = 0; j < f; ++j) sparsity[j] = std::log10((*opt.activation_frequency)[static_cast<std::size_t>(j)] + 1e-10);
      io::save_safetensors(out / "sparsity.safetensors", {io::tensor_to_write("sparsity", sparsity, io::FloatDType::f32, true)},
                           {{"format", "pt"}});
    }
    io::write_text_atomically(out / "cfg.json", cfg.dump() + "\n");
  });
}

inline const io::Json& required(const io::Json& cfg, const std::string& key, const std::string& source) {
  const io::Json* v = cfg.is_object() ? cfg.find(key) : nullptr;
  if (!v) throw io_error(source, "missing \"" + key + "\"");
  return *v;
}

// A JSON number that converts to index_t exactly (up to 2^53).
inline bool whole_number(const io::Json& v) {
  return v.is_number() && v.as_number() == std::floor(v.as_number()) && std::abs(v.as_number()) <= 9007199254740992.0;
}

inline index_t positive_int(const io::Json& cfg, const std::string& key, const std::string& source) {
  const io::Json& v = required(cfg, key, source);
  if (!whole_number(v) || v.as_number() < 1) throw io_error(source, "\"" + key + "\" must be a positive integer");
  return static_cast<index_t>(v.as_number());
}

// Tensor `name` of exactly [rows, cols] (or [rows] when cols == 1), every element finite: NaN or
// Inf in imported weights would only surface as NaN codes later, so the error names the file, the
// tensor and the first bad index in the file's layout.
template <class Scalar>
Matrix<Scalar> finite_tensor(const io::SafetensorsFile& w, const std::string& name, index_t rows, index_t cols) {
  Matrix<Scalar> m = w.template matrix<Scalar>(name, rows, cols);  // row-major, as the file
  for (index_t i = 0; i < m.size(); ++i) {
    const double v = static_cast<double>(m.data()[i]);
    if (std::isfinite(v)) continue;
    const io::TensorInfo& t = w.tensor(name);
    std::string at = t.shape.size() == 2 ? std::to_string(i / cols) + ", " + std::to_string(i % cols) : std::to_string(i);
    std::string what = std::isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
    double stored = v;
    if (t.dtype == "F64") w.read(t, i, 1, 1, &stored);
    if (std::isfinite(stored)) what = std::to_string(stored) + " (beyond the range of the type it is read as)";
    throw io_error(w.path(), "tensor '" + name + "' holds " + what + " at [" + at + "]; imported weights must be finite");
  }
  return m;
}
template <class Scalar>
Vector<Scalar> finite_vector(const io::SafetensorsFile& w, const std::string& name, index_t size) {
  return finite_tensor<Scalar>(w, name, size, 1).col(0);
}

// The shared parameters of an imported model: a nonzero b_dec becomes the decoder bias; without
// `bias_on_input` it is also folded into b_enc (W_enc (x - b_dec) + b_enc' = W_enc x + b_enc).
template <class Scalar, class Params>
bool move_shared(Params& p, Matrix<Scalar> w_enc, Vector<Scalar> b_enc, Matrix<Scalar> w_dec, Vector<Scalar> b_dec,
                 bool bias_on_input) {
  const bool decoder_bias = !b_dec.isZero(0);
  if (decoder_bias && !bias_on_input) b_enc += w_enc * b_dec;
  if (!b_enc.allFinite())  // finite tensors whose fold overflows (found by interop_fuzz)
    throw io_error("the imported SAE", "b_enc + W_enc b_dec (apply_b_dec_to_input = false) overflows the float range; "
                                       "its weights cannot be used as they are");
  p.w_enc = std::move(w_enc);
  p.b_enc = std::move(b_enc);
  p.w_dec = std::move(w_dec);
  if (decoder_bias) p.b_dec = std::move(b_dec);
  return decoder_bias;
}
// A TopK model from external tensors (move_shared).
template <class Scalar>
TopKAutoencoder<Scalar> topk_from(index_t d, index_t f, index_t k, Matrix<Scalar> w_enc, Vector<Scalar> b_enc,
                                  Matrix<Scalar> w_dec, Vector<Scalar> b_dec, bool bias_on_input, const std::string& source) {
  if (k > f) throw io_error(source, "k = " + std::to_string(k) + " exceeds the " + std::to_string(f) + " latents");
  AutoencoderParameters<Scalar> p;
  TopKConfig c{d, f, k};
  c.decoder_bias = move_shared<Scalar>(p, std::move(w_enc), std::move(b_enc), std::move(w_dec), std::move(b_dec), bias_on_input);
  return TopKAutoencoder<Scalar>(c, std::move(p));
}
}  // namespace interop_detail

// A TopK model as a SAELens "topk" folder. Magnitude selection has no SAELens counterpart.
template <class Scalar>
void export_saelens(const std::filesystem::path& dir, const TopKAutoencoder<Scalar>& model, const ExportOptions& opt = {}) {
  detail::require(model.config().selection == Selection::value, "export_saelens()",
                  "magnitude selection (top-k by |pre-activation|) has no SAELens architecture; only value selection exports");
  io::Json cfg = io::Json::object();
  cfg["apply_b_dec_to_input"] = model.config().decoder_bias;
  cfg["k"] = model.k();
  cfg["rescale_acts_by_decoder_norm"] = false;
  cfg["architecture"] = "topk";
  interop_detail::write_saelens(dir, model.parameters(), cfg, {}, opt);
}

namespace interop_detail {
// A SAELens "jumprelu" folder: a latent fires when its pre-activation exceeds its threshold.
template <class Scalar>
void write_saelens_jumprelu(const std::filesystem::path& dir, const AutoencoderParameters<Scalar>& p, bool decoder_bias,
                            const Vector<Scalar>& threshold, const ExportOptions& opt) {
  io::Json cfg = io::Json::object();
  cfg["apply_b_dec_to_input"] = decoder_bias;
  cfg["architecture"] = "jumprelu";
  write_saelens(dir, p, cfg, {io::tensor_to_write("threshold", threshold, opt.dtype, true)}, opt);
}
// A model with one inference threshold (BatchTopK, Matryoshka): every latent gets it.
template <class Model>
void write_saelens_batch_threshold(const std::filesystem::path& dir, const Model& model, const ExportOptions& opt) {
  using Scalar = typename Model::scalar_type;
  const Vector<Scalar> threshold = Vector<Scalar>::Constant(model.num_latents(), std::max(model.threshold(), Scalar(0)));
  write_saelens_jumprelu(dir, model.parameters(), model.config().decoder_bias, threshold, opt);
}
}  // namespace interop_detail

// Threshold models as SAELens saves them for inference, "jumprelu" folders: JumpReLU with its
// thresholds; BatchTopK and Matryoshka (SAELens's BatchTopK family) with their inference threshold
// for every latent.
template <class Scalar>
void export_saelens(const std::filesystem::path& dir, const JumpReluAutoencoder<Scalar>& model, const ExportOptions& opt = {}) {
  interop_detail::write_saelens_jumprelu(dir, model.parameters(), model.config().decoder_bias, model.thresholds(), opt);
}
template <class Scalar>
void export_saelens(const std::filesystem::path& dir, const BatchTopKAutoencoder<Scalar>& model, const ExportOptions& opt = {}) {
  interop_detail::write_saelens_batch_threshold(dir, model, opt);
}
template <class Scalar>
void export_saelens(const std::filesystem::path& dir, const MatryoshkaAutoencoder<Scalar>& model, const ExportOptions& opt = {}) {
  interop_detail::write_saelens_batch_threshold(dir, model, opt);
}

// A TopK model as a sparsify folder (one dtype for every tensor, as sparsify loads them).
template <class Scalar>
void export_sparsify(const std::filesystem::path& dir, const TopKAutoencoder<Scalar>& model, const ExportOptions& opt = {}) {
  detail::require(model.config().selection == Selection::value, "export_sparsify()",
                  "magnitude selection (top-k by |pre-activation|) has no sparsify counterpart; only value selection exports");
  const auto& p = model.parameters();
  const index_t f = model.num_latents(), d = model.input_dim();
  io::Json cfg = io::Json::object();
  cfg["activation"] = "topk";
  cfg["expansion_factor"] = f % d == 0 ? f / d : 0;
  cfg["normalize_decoder"] = true;
  cfg["num_latents"] = f;
  cfg["k"] = model.k();
  cfg["multi_topk"] = false;
  cfg["skip_connection"] = false;
  cfg["transcode"] = false;
  cfg["d_in"] = d;
  io::write_directory_atomically(dir, [&](const std::filesystem::path& out) {
    io::save_safetensors(out / "sae.safetensors",
                         {io::tensor_to_write("encoder.weight", p.w_enc, opt.dtype),
                          io::tensor_to_write("encoder.bias", p.b_enc, opt.dtype, true),
                          io::tensor_to_write("W_dec", p.w_dec, opt.dtype),
                          io::tensor_to_write("b_dec", interop_detail::decoder_bias_or_zero(p, d), opt.dtype, true)},
                         {{"format", "pt"}});
    io::write_text_atomically(out / "cfg.json", cfg.dump() + "\n");
  });
}

template <class Scalar>
void export_model(ExternalFormat format, const std::filesystem::path& dir, const TopKAutoencoder<Scalar>& model,
                  const ExportOptions& opt = {}) {
  if (format == ExternalFormat::saelens) export_saelens(dir, model, opt);
  else export_sparsify(dir, model, opt);
}

namespace interop_detail {
// A SAELens folder's tensors and settings, checked: the architecture `cfg.json` names, d_in, d_sae,
// the encoder's bias handling, and the four shared tensors (read in this order, so errors are too).
template <class Scalar>
struct SaelensFolder {
  std::string source, architecture;
  io::Json cfg;
  index_t d = 0, f = 0;
  bool bias_on_input = true;
  Matrix<Scalar> w_enc, w_dec;
  Vector<Scalar> b_enc, b_dec;
  std::optional<io::SafetensorsFile> weights;
};

template <class Scalar>
SaelensFolder<Scalar> read_saelens(const std::filesystem::path& dir) {
  SaelensFolder<Scalar> s;
  s.source = (dir / "cfg.json").string();
  s.cfg = io::read_json_file(s.source);
  if (!s.cfg.is_object()) throw io_error(s.source, "must hold a JSON object");
  const io::Json& arch = required(s.cfg, "architecture", s.source);
  s.architecture = arch.is_string() ? arch.as_string() : "?";
  s.d = positive_int(s.cfg, "d_in", s.source), s.f = positive_int(s.cfg, "d_sae", s.source);
  if (const io::Json* n = s.cfg.find("normalize_activations"); n && !(n->is_string() && n->as_string() == "none"))
    throw io_error(s.source, "normalize_activations must be \"none\" (activation normalisation is not implemented here)");
  if (const io::Json* r = s.cfg.find("rescale_acts_by_decoder_norm"); r && r->is_bool() && r->as_bool())
    throw io_error(s.source, "rescale_acts_by_decoder_norm = true is not implemented here");
  if (const io::Json* r = s.cfg.find("reshape_activations"); r && !(r->is_string() && r->as_string() == "none"))
    throw io_error(s.source, "reshape_activations must be \"none\"");
  const io::Json* on_input = s.cfg.find("apply_b_dec_to_input");
  s.bias_on_input = on_input && on_input->is_bool() ? on_input->as_bool() : true;
  return s;
}

template <class Scalar>
void read_saelens_tensors(const std::filesystem::path& dir, SaelensFolder<Scalar>& s) {
  s.weights.emplace(dir / "sae_weights.safetensors");
  s.w_enc = finite_tensor<Scalar>(*s.weights, "W_enc", s.d, s.f).transpose();
  s.b_enc = finite_vector<Scalar>(*s.weights, "b_enc", s.f);
  s.w_dec = finite_tensor<Scalar>(*s.weights, "W_dec", s.f, s.d);
  s.b_dec = finite_vector<Scalar>(*s.weights, "b_dec", s.d);
}

}  // namespace interop_detail

// A SAELens "topk" folder as a TopK model (other architectures are refused by name).
template <class Scalar = float>
TopKAutoencoder<Scalar> import_saelens(const std::filesystem::path& dir) {
  namespace id = interop_detail;
  auto s = id::read_saelens<Scalar>(dir);
  if (s.architecture != "topk")
    throw io_error(s.source, "architecture '" + s.architecture + "' cannot be loaded here as a TopK model (SAELens 'topk' "
                                                                 "folders can; import_any also reads 'jumprelu' ones)");
  const index_t k = id::positive_int(s.cfg, "k", s.source);
  id::read_saelens_tensors(dir, s);
  return id::topk_from<Scalar>(s.d, s.f, k, std::move(s.w_enc), std::move(s.b_enc), std::move(s.w_dec), std::move(s.b_dec),
                               s.bias_on_input, s.source);
}

// A SAELens "jumprelu" folder as a JumpReLU model: a latent fires when its pre-activation exceeds
// its threshold, as relu(pre) * (pre > threshold) does; each threshold must be positive (we keep
// its log). The data scale is 1 until initialize_from_data measures one (for further training).
template <class Scalar = float>
JumpReluAutoencoder<Scalar> import_saelens_jumprelu(const std::filesystem::path& dir) {
  namespace id = interop_detail;
  auto s = id::read_saelens<Scalar>(dir);
  if (s.architecture != "jumprelu")
    throw io_error(s.source, "architecture '" + s.architecture + "' is not a SAELens 'jumprelu' folder");
  id::read_saelens_tensors(dir, s);
  const Vector<Scalar> threshold = id::finite_vector<Scalar>(*s.weights, "threshold", s.f);
  for (index_t j = 0; j < s.f; ++j)
    if (!(threshold[j] > Scalar(0)))
      throw io_error(s.weights->path(), "threshold[" + std::to_string(j) + "] = " + std::to_string(threshold[j]) +
                                            ": every threshold must be positive and finite (we keep its log)");
  JumpReluParameters<Scalar> p;
  JumpReluConfig c;
  c.input_dim = s.d, c.num_latents = s.f;
  c.decoder_bias = id::move_shared<Scalar>(p, std::move(s.w_enc), std::move(s.b_enc), std::move(s.w_dec), std::move(s.b_dec),
                                           s.bias_on_input);
  p.log_threshold = threshold.array().log();
  return JumpReluAutoencoder<Scalar>(c, std::move(p));
}

// A sparsify folder (activation "topk", no skip connection, not a transcoder) as a TopK model.
template <class Scalar = float>
TopKAutoencoder<Scalar> import_sparsify(const std::filesystem::path& dir) {
  namespace id = interop_detail;
  const std::string source = (dir / "cfg.json").string();
  const io::Json cfg = io::read_json_file(source);
  if (!cfg.is_object()) throw io_error(source, "must hold a JSON object");
  const io::Json* act = cfg.find("activation");
  if (act && !(act->is_string() && act->as_string() == "topk"))
    throw io_error(source, "activation '" + (act->is_string() ? act->as_string() : std::string("?")) +
                               "' cannot be loaded here; only \"topk\" can");
  for (const char* flag : {"skip_connection", "transcode"})
    if (const io::Json* v = cfg.find(flag); v && v->is_bool() && v->as_bool())
      throw io_error(source, std::string(flag) + " = true is not implemented here");
  const index_t d = id::positive_int(cfg, "d_in", source), k = id::positive_int(cfg, "k", source);
  const io::SafetensorsFile w(dir / "sae.safetensors");
  const auto& enc = w.tensor("encoder.weight");
  if (enc.shape.size() != 2) throw io_error(w.path(), "encoder.weight must be 2-D");
  const index_t f = enc.shape[0];
  // The latent count the config gives, as sparsify reads it: num_latents, or when that is 0,
  // d_in * expansion_factor; the tensors must have it.
  const auto count = [&](const char* key) -> index_t {
    const io::Json* v = cfg.find(key);
    if (!v) return 0;
    if (!id::whole_number(*v) || v->as_number() < 0)
      throw io_error(source, "\"" + std::string(key) + "\" must be a non-negative integer");
    return static_cast<index_t>(v->as_number());
  };
  if (const index_t n = count("num_latents"); n > 0 && n != f)
    throw io_error(source, "num_latents " + std::to_string(n) + " does not match encoder.weight's " + std::to_string(f) + " rows");
  else if (const index_t e = count("expansion_factor"); n == 0 && e > 0 && (f % d != 0 || f / d != e))
    throw io_error(source, "num_latents 0 and d_in " + std::to_string(d) + " * expansion_factor " + std::to_string(e) +
                               " do not match encoder.weight's " + std::to_string(f) + " rows");
  Matrix<Scalar> w_enc = id::finite_tensor<Scalar>(w, "encoder.weight", f, d);
  Vector<Scalar> b_enc = id::finite_vector<Scalar>(w, "encoder.bias", f);
  Matrix<Scalar> w_dec = id::finite_tensor<Scalar>(w, "W_dec", f, d);
  Vector<Scalar> b_dec = id::finite_vector<Scalar>(w, "b_dec", d);
  return id::topk_from<Scalar>(d, f, k, std::move(w_enc), std::move(b_enc), std::move(w_dec), std::move(b_dec), true, source);
}

// A TopK model from either format, detected from the folder's files.
template <class Scalar = float>
TopKAutoencoder<Scalar> import_model(const std::filesystem::path& dir) {
  return detect_external_format(dir) == ExternalFormat::saelens ? import_saelens<Scalar>(dir) : import_sparsify<Scalar>(dir);
}

// Any folder the peer libraries write for an architecture we have: SAELens "topk" and sparsify
// folders as TopK, SAELens "jumprelu" ones as JumpReLU.
template <class Scalar = float>
AnyModel<Scalar> import_any(const std::filesystem::path& dir) {
  const auto reading = io::RunDirectory::settle_before_reading(dir);  // a conversion cut short is finished, never mixed
  if (detect_external_format(dir) == ExternalFormat::saelens &&
      interop_detail::read_saelens<Scalar>(dir).architecture == "jumprelu")
    return import_saelens_jumprelu<Scalar>(dir);
  return import_model<Scalar>(dir);
}

}  // namespace sae
