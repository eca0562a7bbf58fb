// SAELens and sparsify folders: the ones the real libraries saved (tools/interop_check.py
// fixtures) load here and encode as the libraries did; ours round-trip; what cannot be expressed is
// refused by name.
#define BOOST_TEST_MODULE interop
#include "test_helpers.hpp"

#include <sae/io/npy.hpp>
#include <sae/io/safetensors.hpp>
#include <sae/model/interop.hpp>

#include <limits>
#include <variant>

using sae::index_t;
using sae::test::require_throws_with;

namespace {
std::filesystem::path fixture(const std::string& name) { return sae::test::fixture("interop/" + name); }

// Our codes of the fixture inputs against the library's (value-descending, as ours are).
void expect_library_codes(const sae::TopKAutoencoder<float>& model, const std::string& name) {
  const auto x = sae::io::load_npy_matrix<float>(fixture("inputs.npy"));
  const auto expected = sae::io::read_json_file(fixture("expected.json").string()).at(name);
  const auto codes = model.encode(x);
  const auto x_hat = model.forward(x);
  for (index_t i = 0; i < x.rows(); ++i) {
    const auto& idx = expected.at("indices").as_array()[static_cast<std::size_t>(i)].as_array();
    const auto& val = expected.at("values").as_array()[static_cast<std::size_t>(i)].as_array();
    const auto& rec = expected.at("reconstruction").as_array()[static_cast<std::size_t>(i)].as_array();
    for (index_t s = 0; s < codes.k; ++s) {
      BOOST_TEST(codes.row_indices(i)[s] == idx[static_cast<std::size_t>(s)].as_int());
      BOOST_TEST(codes.row_values(i)[s] == val[static_cast<std::size_t>(s)].as_number(), boost::test_tools::tolerance(1e-5));
    }
    for (index_t c = 0; c < x.cols(); ++c)
      BOOST_TEST(x_hat(i, c) == rec[static_cast<std::size_t>(c)].as_number(), boost::test_tools::tolerance(1e-4));
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(folders_the_libraries_saved_encode_as_the_libraries_did) {
  for (const char* name : {"saelens_topk_bias_on_input", "saelens_topk_bias_off_input", "sparsify_topk"}) {
    BOOST_TEST_CONTEXT(name) {
      const auto model = sae::import_model<float>(fixture(name));
      BOOST_TEST(model.config().decoder_bias);  // every fixture has a nonzero b_dec
      BOOST_TEST(model.k() == 3);
      expect_library_codes(model, name);
    }
  }
  BOOST_TEST((sae::detect_external_format(fixture("sparsify_topk")) == sae::ExternalFormat::sparsify));
  require_throws_with<sae::io_error>([] { sae::detect_external_format(fixture(".")); }, {"neither a SAELens folder"});
}

BOOST_AUTO_TEST_CASE(our_models_round_trip_through_both_formats) {
  sae::test::ScratchDir dir("interop");
  const auto x = sae::test::random_matrix<float>(9, 6, 4);
  for (bool bias : {false, true}) {
    sae::TopKAutoencoder<float> model(sae::TopKConfig{6, 20, 4, sae::Selection::value, bias, 5});
    if (bias) model.parameters().b_dec = sae::test::random_matrix<float>(6, 1, 6).col(0) * 0.3f;
    for (auto format : {sae::ExternalFormat::saelens, sae::ExternalFormat::sparsify}) {
      BOOST_TEST_CONTEXT(sae::name(format) << " bias=" << bias) {
        const auto out = dir / (std::string(sae::name(format)) + (bias ? "_bias" : ""));
        sae::export_model(format, out, model);
        const auto back = sae::import_model<float>(out);
        BOOST_TEST(back.config().decoder_bias == bias);  // a zero b_dec is no decoder bias
        BOOST_TEST(sae::test::same(back.parameters().w_enc, model.parameters().w_enc));
        BOOST_TEST(sae::test::same(back.parameters().w_dec, model.parameters().w_dec));
        BOOST_TEST(sae::test::same(back.encode(x).to_dense(), model.encode(x).to_dense()));
        BOOST_TEST(sae::test::same(back.forward(x), model.forward(x)));
      }
    }
  }
  // The SAELens layout: W_enc transposed, a zero b_dec without the bias, the frequencies as log10.
  sae::TopKAutoencoder<float> model(sae::TopKConfig{6, 20, 4});
  std::vector<double> freq(20, 0.25);
  freq[3] = 0;
  sae::ExportOptions opt;
  opt.activation_frequency = &freq;
  opt.hook_name = "blocks.4.hook_resid_post";
  sae::export_saelens(dir / "layout", model, opt);
  const sae::io::SafetensorsFile w(dir / "layout" / "sae_weights.safetensors");
  BOOST_TEST(sae::test::same(w.matrix<float>("W_enc", 6, 20), model.parameters().w_enc.transpose()));
  BOOST_TEST(w.vector<float>("b_dec", 6).isZero(0));
  BOOST_TEST(w.tensors().size() == 4u);  // SAELens loads strictly: nothing else
  const sae::io::SafetensorsFile s(dir / "layout" / "sparsity.safetensors");
  BOOST_TEST(s.vector<double>("sparsity", 20)[0] == std::log10(0.25 + 1e-10), boost::test_tools::tolerance(1e-6));
  BOOST_TEST(s.vector<double>("sparsity", 20)[3] == -10.0, boost::test_tools::tolerance(1e-6));
  const auto cfg = sae::io::read_json_file((dir / "layout" / "cfg.json").string());
  BOOST_TEST(cfg.at("architecture").as_string() == "topk");
  BOOST_TEST(cfg.at("d_sae").as_int() == 20);
  BOOST_TEST(cfg.at("metadata").at("hook_name").as_string() == "blocks.4.hook_resid_post");
  // bf16 export: weights rounded once, the config says so.
  opt = {};
  opt.dtype = sae::io::FloatDType::bf16;
  sae::export_saelens(dir / "bf16", model, opt);
  BOOST_TEST(sae::io::read_json_file((dir / "bf16" / "cfg.json").string()).at("dtype").as_string() == "bfloat16");
  const auto bf = sae::import_saelens<float>(dir / "bf16");
  BOOST_TEST((bf.parameters().w_dec - model.parameters().w_dec).cwiseAbs().maxCoeff() <= 4e-3f);
}

BOOST_AUTO_TEST_CASE(threshold_models_export_as_jumprelu_folders) {
  // JumpReLU, BatchTopK and Matryoshka as SAELens "jumprelu" folders: its rule,
  // relu(pre) * (pre > threshold), fires exactly the latents our encode keeps, with the same values.
  sae::test::ScratchDir dir("interop-jump");
  const auto x = sae::test::random_matrix<float>(7, 6, 3);
  const auto check = [&](const std::string& name, const auto& model, const sae::Vector<float>& expected_threshold) {
    BOOST_TEST_CONTEXT(name) {
      sae::export_saelens(dir / name, model);
      const auto cfg = sae::io::read_json_file((dir / name / "cfg.json").string());
      BOOST_TEST(cfg.at("architecture").as_string() == "jumprelu");
      const sae::io::SafetensorsFile w(dir / name / "sae_weights.safetensors");
      const sae::Vector<float> threshold = w.vector<float>("threshold", 16);
      BOOST_TEST((threshold - expected_threshold).cwiseAbs().maxCoeff() == 0.0f);
      const sae::Matrix<float> pre =
          (x * w.matrix<float>("W_enc", 6, 16)).rowwise() + w.vector<float>("b_enc", 16).transpose();
      const sae::Matrix<float> cut = threshold.transpose().replicate(pre.rows(), 1);
      const sae::Matrix<float> jump = (pre.array() > cut.array()).select(pre, 0.0f);
      const sae::Matrix<float> ours = model.encode(x).to_dense();
      BOOST_TEST(((jump.array() > 0) == (ours.array() > 0)).all());  // the same latents fire
      BOOST_TEST((jump - ours).cwiseAbs().maxCoeff() <= 1e-5f);     // GEMM order aside, the same values
      BOOST_TEST((ours.array() > 0).count() > 0);
      // import_saelens (TopK) refuses it by name; import_any reads it back as a JumpReLU model that
      // fires the same latents with the same values (its thresholds kept as logs).
      require_throws_with<sae::io_error>([&] { sae::import_saelens<float>(dir / name); },
                                         {"cfg.json", "architecture 'jumprelu' cannot be loaded here", "import_any"});
      const auto any = sae::import_any<float>(dir / name);
      BOOST_REQUIRE(std::holds_alternative<sae::JumpReluAutoencoder<float>>(any));
      const auto& back = std::get<sae::JumpReluAutoencoder<float>>(any);
      BOOST_TEST((back.thresholds() - expected_threshold).cwiseAbs().maxCoeff() <= 1e-6f * expected_threshold.maxCoeff());
      const sae::Matrix<float> again = back.encode(x).to_dense();
      BOOST_TEST(((again.array() > 0) == (ours.array() > 0)).all());
      BOOST_TEST((again - ours).cwiseAbs().maxCoeff() == 0.0f);
    }
  };
  sae::MatryoshkaConfig mc;
  mc.input_dim = 6, mc.num_latents = 16, mc.k = 3, mc.seed = 2;
  sae::MatryoshkaAutoencoder<float> mat(mc);
  mat.set_threshold(0.125f);
  check("matryoshka", mat, sae::Vector<float>::Constant(16, 0.125f));
  sae::BatchTopKConfig bc;
  bc.input_dim = 6, bc.num_latents = 16, bc.k = 3, bc.seed = 2;
  sae::BatchTopKAutoencoder<float> batch(bc);
  batch.set_threshold(0.25f);
  check("batchtopk", batch, sae::Vector<float>::Constant(16, 0.25f));
  sae::JumpReluConfig jc;
  jc.input_dim = 6, jc.num_latents = 16, jc.seed = 2;
  sae::JumpReluAutoencoder<float> jump(jc);
  jump.parameters().log_threshold = (sae::test::random_matrix<float>(16, 1, 5).col(0).array() * 0.5f - 1.5f).matrix();
  check("jumprelu", jump, jump.thresholds());
}

BOOST_AUTO_TEST_CASE(what_cannot_be_expressed_is_refused_by_name) {
  sae::test::ScratchDir dir("interop-refuse");
  sae::TopKAutoencoder<float> magnitude(sae::TopKConfig{6, 12, 3, sae::Selection::magnitude});
  require_throws_with<sae::invalid_argument>([&] { sae::export_saelens(dir / "m", magnitude); }, {"magnitude selection"});
  require_throws_with<sae::invalid_argument>([&] { sae::export_sparsify(dir / "m", magnitude); }, {"magnitude selection"});
  BOOST_TEST(!std::filesystem::exists(dir / "m"));
  // A SAELens folder with activation normalisation, and a sparsify one with a skip connection.
  sae::TopKAutoencoder<float> model(sae::TopKConfig{6, 12, 3});
  sae::export_saelens(dir / "norm", model);
  auto cfg = sae::io::read_json_file((dir / "norm" / "cfg.json").string());
  cfg["normalize_activations"] = "expected_average_only_in";
  sae::io::write_text_atomically(dir / "norm" / "cfg.json", cfg.dump());
  require_throws_with<sae::io_error>([&] { sae::import_model<float>(dir / "norm"); }, {"normalize_activations must be \"none\""});
  sae::export_sparsify(dir / "skip", model);
  cfg = sae::io::read_json_file((dir / "skip" / "cfg.json").string());
  cfg["skip_connection"] = true;
  sae::io::write_text_atomically(dir / "skip" / "cfg.json", cfg.dump());
  require_throws_with<sae::io_error>([&] { sae::import_model<float>(dir / "skip"); }, {"skip_connection = true"});
  // Tensors whose shapes disagree with the config name the tensor.
  sae::export_saelens(dir / "shape", model);
  cfg = sae::io::read_json_file((dir / "shape" / "cfg.json").string());
  cfg["d_sae"] = 13;
  sae::io::write_text_atomically(dir / "shape" / "cfg.json", cfg.dump());
  require_throws_with<sae::io_error>([&] { sae::import_model<float>(dir / "shape"); },
                                     {"sae_weights.safetensors", "'W_enc' has shape [6, 12], expected [6, 13]"});
  // A JumpReLU threshold of 0 (a BatchTopK model that saw no batch) has no log: refused by index.
  sae::BatchTopKConfig bc;
  bc.input_dim = 6, bc.num_latents = 12, bc.k = 3;
  sae::BatchTopKAutoencoder<float> untrained(bc);
  sae::export_saelens(dir / "zero", untrained);
  require_throws_with<sae::io_error>([&] { sae::import_any<float>(dir / "zero"); },
                                     {"sae_weights.safetensors", "threshold[0] = 0", "positive"});
}

namespace {
// Rewrites `file` with `tensor`'s element `index` (row-major, as stored) set to `value`, or with
// that tensor's shape replaced by `shape` (its values cut or padded with zeros), keeping the rest.
void rewrite_tensor(const std::filesystem::path& file, const std::string& tensor, std::size_t index, float value,
                    const std::vector<index_t>& shape = {}) {
  std::vector<sae::io::TensorToWrite> tensors;
  {
    const sae::io::SafetensorsFile f(file);
    for (const auto& t : f.tensors()) tensors.push_back({t.name, t.shape, f.values<float>(t), sae::io::FloatDType::f32});
  }
  bool found = false;
  for (auto& t : tensors) {
    if (t.name != tensor) continue;
    found = true;
    if (!shape.empty()) {
      index_t n = 1;
      for (index_t s : shape) n *= s;
      t.shape = shape, t.values.resize(static_cast<std::size_t>(n), 0.0f);
    } else {
      t.values.at(index) = value;
    }
  }
  BOOST_REQUIRE_MESSAGE(found, "no tensor " << tensor << " in " << file);
  sae::io::save_safetensors(file, tensors, {{"format", "pt"}});
}

// `cfg.json` of `dir` with its text edited: `from` replaced (once) by `to`.
void edit_cfg(const std::filesystem::path& dir, const std::string& from, const std::string& to) {
  std::string text = sae::test::read_file(dir / "cfg.json");
  const auto at = text.find(from);
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, "cfg.json lacks " << from);
  sae::io::write_text_atomically(dir / "cfg.json", text.replace(at, from.size(), to));
}

struct ImportCase {
  std::string format;      // "saelens", "jumprelu" or "sparsify"
  std::string weights;     // the weights file
  std::vector<std::pair<std::string, std::vector<index_t>>> tensors;  // name, shape as stored
};

// A folder of `c.format` with d = 5, 12 latents, exported from our models.
void export_case(const ImportCase& c, const std::filesystem::path& out) {
  sae::TopKAutoencoder<float> topk(sae::TopKConfig{5, 12, 3, sae::Selection::value, true, 7});
  topk.parameters().b_dec = sae::Vector<float>::Constant(5, 0.25f);
  if (c.format == "saelens") {
    sae::export_saelens(out, topk);
  } else if (c.format == "sparsify") {
    sae::export_sparsify(out, topk);
  } else {
    sae::JumpReluConfig jc;
    jc.input_dim = 5, jc.num_latents = 12, jc.seed = 7;
    sae::export_saelens(out, sae::JumpReluAutoencoder<float>(jc));
  }
}

const std::vector<ImportCase>& import_cases() {
  static const std::vector<ImportCase> cases = {
      {"saelens", "sae_weights.safetensors", {{"W_enc", {5, 12}}, {"b_enc", {12}}, {"W_dec", {12, 5}}, {"b_dec", {5}}}},
      {"jumprelu",
       "sae_weights.safetensors",
       {{"W_enc", {5, 12}}, {"b_enc", {12}}, {"W_dec", {12, 5}}, {"b_dec", {5}}, {"threshold", {12}}}},
      {"sparsify", "sae.safetensors", {{"encoder.weight", {12, 5}}, {"encoder.bias", {12}}, {"W_dec", {12, 5}}, {"b_dec", {5}}}},
  };
  return cases;
}
}  // namespace

BOOST_AUTO_TEST_CASE(non_finite_imported_tensors_are_refused_naming_file_tensor_and_index) {
  // NaN, +Inf and -Inf in every tensor of every folder kind: one io_error naming the weights file,
  // the tensor and the first bad element's index as stored (W_enc [d_in, d_sae], not ours transposed).
  sae::test::ScratchDir dir("interop-nonfinite");
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (const auto& c : import_cases()) {
    const auto clean = dir / (c.format + "-clean");
    export_case(c, clean);
    BOOST_CHECK_NO_THROW(sae::import_any<float>(clean));
    for (const auto& [tensor, shape] : c.tensors) {
      for (const auto& [value, shown] : std::vector<std::pair<float, std::string>>{{nan, "NaN"}, {inf, "+Inf"}, {-inf, "-Inf"}}) {
        BOOST_TEST_CONTEXT(c.format << " " << tensor << " " << shown) {
          const auto folder = dir / (c.format + "-bad");
          std::filesystem::remove_all(folder);
          std::filesystem::copy(clean, folder);
          // The last element, and one before it: the error names the first.
          const std::size_t n = static_cast<std::size_t>(shape.size() == 2 ? shape[0] * shape[1] : shape[0]);
          rewrite_tensor(folder / c.weights, tensor, n - 1, value);
          rewrite_tensor(folder / c.weights, tensor, n - 2, value);
          const std::size_t first = n - 2;
          const std::string at = shape.size() == 2
                                     ? "[" + std::to_string(first / static_cast<std::size_t>(shape[1])) + ", " +
                                           std::to_string(first % static_cast<std::size_t>(shape[1])) + "]"
                                     : "[" + std::to_string(first) + "]";
          const std::string expected = (folder / c.weights).string() + ": tensor '" + tensor + "' holds " + shown + " at " + at;
          require_throws_with<sae::io_error>([&] { sae::import_any<float>(folder); }, {expected, "must be finite"});
          require_throws_with<sae::io_error>([&] { sae::import_any<double>(folder); }, {expected});
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(imported_tensors_are_shaped_as_the_config_says) {
  // Each tensor one element short, and each with a transposed or extra dimension: refused naming the
  // tensor, its shape and the one the config implies; so is a sparsify latent count that disagrees.
  sae::test::ScratchDir dir("interop-shape");
  for (const auto& c : import_cases()) {
    const auto clean = dir / (c.format + "-clean");
    export_case(c, clean);
    for (const auto& [tensor, shape] : c.tensors) {
      std::vector<std::vector<index_t>> wrong;
      if (shape.size() == 2) wrong = {{shape[1], shape[0]}, {shape[0], shape[1] - 1}, {shape[0] * shape[1]}};
      else wrong = {{shape[0] - 1}, {shape[0], 2}};
      for (const auto& bad : wrong) {
        BOOST_TEST_CONTEXT(c.format << " " << tensor << " as " << sae::io::safetensors_detail::shape_text(bad)) {
          const auto folder = dir / (c.format + "-bad");
          std::filesystem::remove_all(folder);
          std::filesystem::copy(clean, folder);
          rewrite_tensor(folder / c.weights, tensor, 0, 0.0f, bad);
          try {
            sae::import_any<float>(folder);
            BOOST_FAIL("imported a wrong-shaped " << tensor);
          } catch (const sae::io_error& e) {
            const std::string what = e.what();
            if (c.format == "sparsify" && tensor == "encoder.weight") {
              // sparsify's latent count is encoder.weight's rows: a bad one disagrees with the config
              // or with the other tensors, and the error names it or the config's count.
              BOOST_TEST(what.find("encoder.weight") != std::string::npos, what);
            } else {
              BOOST_TEST(what.find(c.weights + ": tensor '" + tensor + "' has shape " +
                                   sae::io::safetensors_detail::shape_text(bad)) != std::string::npos,
                         what);
            }
          }
        }
      }
    }
  }
  // sparsify: num_latents, or d_in * expansion_factor when it is 0, must match encoder.weight's rows.
  const auto sp = dir / "sparsify-clean";
  const auto folder = dir / "sparsify-count";
  std::filesystem::copy(sp, folder);
  edit_cfg(folder, "\"num_latents\": 12", "\"num_latents\": 13");
  require_throws_with<sae::io_error>([&] { sae::import_any<float>(folder); },
                                     {"cfg.json", "num_latents 13 does not match encoder.weight's 12 rows"});
  edit_cfg(folder, "\"num_latents\": 13", "\"num_latents\": 0");
  edit_cfg(folder, "\"expansion_factor\": 0", "\"expansion_factor\": 3");
  require_throws_with<sae::io_error>([&] { sae::import_any<float>(folder); },
                                     {"cfg.json", "d_in 5 * expansion_factor 3 do not match encoder.weight's 12 rows"});
  edit_cfg(folder, "\"num_latents\": 0", "\"num_latents\": -4");
  require_throws_with<sae::io_error>([&] { sae::import_any<float>(folder); }, {"\"num_latents\" must be a non-negative integer"});
  edit_cfg(folder, "\"num_latents\": -4", "\"num_latents\": 0");
  edit_cfg(folder, "\"expansion_factor\": 3", "\"expansion_factor\": 0");
  BOOST_CHECK_NO_THROW(sae::import_any<float>(folder));  // neither gives a count: encoder.weight's
  // A config that is not an object, and sizes past what an index holds exactly.
  sae::io::write_text_atomically(folder / "cfg.json", "[1, 2]");
  require_throws_with<sae::io_error>([&] { sae::import_any<float>(folder); }, {"cfg.json", "must hold a JSON object"});
  const auto sl = dir / "saelens-huge";
  std::filesystem::copy(dir / "saelens-clean", sl);
  edit_cfg(sl, "\"d_in\": 5", "\"d_in\": 1e300");
  require_throws_with<sae::io_error>([&] { sae::import_any<float>(sl); }, {"\"d_in\" must be a positive integer"});
}

BOOST_AUTO_TEST_CASE(duplicate_config_keys_are_refused_by_name) {
  // SAELens (Python's json) takes the last of two equal keys, a first-match lookup the first: the
  // folder is refused instead, naming cfg.json and the key, at the top level and in nested objects.
  sae::test::ScratchDir dir("interop-duplicate");
  const auto check = [&](const std::string& format, const std::string& from, const std::string& to, const std::string& key) {
    BOOST_TEST_CONTEXT(format << " " << to) {
      const auto folder = dir / (format + "-dup");
      std::filesystem::remove_all(folder);
      export_case({format, "", {}}, folder);
      edit_cfg(folder, from, to);
      require_throws_with<sae::io_error>([&] { sae::import_any<float>(folder); },
                                         {(folder / "cfg.json").string() + ": duplicate key '" + key + "' in one object"});
    }
  };
  check("saelens", "\"k\": 3", "\"k\": 3, \"k\": 5", "k");
  check("saelens", "\"d_in\": 5", "\"d_in\": 5, \"d_in\": 6", "d_in");
  check("saelens", "\"sae_lens_version\": ", "\"hook_name\": \"a\", \"hook_name\": \"b\", \"sae_lens_version\": ", "hook_name");
  check("jumprelu", "\"architecture\": \"jumprelu\"", "\"architecture\": \"jumprelu\", \"architecture\": \"topk\"", "architecture");
  check("sparsify", "\"k\": 3", "\"k\": 3, \"k\": 5", "k");
  // The same key written with an escape is the same key.
  check("sparsify", "\"d_in\": 5", "\"d_in\": 5, \"d_\\u0069n\": 5", "d_in");
}
