// sae-convert: an SAE between our checkpoint format and the SAELens and sparsify folders, and its
// codes of a file or shard set of rows (to compare encoders across tools). Rows whose metadata
// contradicts the checkpoint's training data (another layer, model or width) are refused.
#include "common.hpp"
#include "output_paths.hpp"

#include <sae/data/open_rows.hpp>
#include <sae/model/interop.hpp>
#include <sae/model/load_any.hpp>
#include <sae/model/registry.hpp>

#include <filesystem>
#include <optional>
#include <variant>

namespace {

namespace fs = std::filesystem;
using Model = sae::AnyModel<float>;  // every registered architecture

// Whether sparsify has a class for M (it has TopK only).
template <class M, class = void>
struct sparsify_exports : std::false_type {};
template <class M>
struct sparsify_exports<M, std::void_t<decltype(sae::export_sparsify(std::declval<const fs::path&>(), std::declval<const M&>(),
                                                                     std::declval<const sae::ExportOptions&>()))>>
    : std::true_type {};

sae::io::FloatDType dtype_flag(const std::string& text) {
  if (text == "f32") return sae::io::FloatDType::f32;
  if (text == "f16") return sae::io::FloatDType::f16;
  if (text == "bf16") return sae::io::FloatDType::bf16;
  throw sae::invalid_argument("--dtype: expected 'f32', 'f16' or 'bf16', got '" + text + "'");
}

}  // namespace

int main(int argc, char** argv) {
  return sae::examples::run_main("sae-convert", [&] {
    cxxopts::Options options("sae-convert", "Convert an SAE between our checkpoints and SAELens / sparsify folders.");
    // clang-format off
    options.add_options()
      ("from", "our checkpoint folder, or a SAELens or sparsify folder (detected)", cxxopts::value<std::string>())
      ("to", "folder to write: new, empty, or one sae-convert wrote before (replaced atomically)",
       cxxopts::value<std::string>())
      ("format", "what to write: 'checkpoint', 'saelens' or 'sparsify' (default: checkpoint from a foreign folder, "
                 "else saelens)", cxxopts::value<std::string>())
      ("dtype", "tensor dtype of a SAELens / sparsify export: f32, f16 or bf16", cxxopts::value<std::string>()->default_value("f32"))
      ("encode", "also encode these rows: a .npy/.safetensors file ([N, D], or one (layer, position) of "
                 "[N, layers, positions, D]) or a shard set", cxxopts::value<std::string>())
      ("layer", "layer of a 4-D --encode array (default 0)", cxxopts::value<long>())
      ("position", "position of a 4-D --encode array (default 0)", cxxopts::value<long>())
      ("force-mismatch", "encode even when the rows' metadata contradicts the checkpoint's training data")
      ("codes", "folder for the codes of --encode: indices.npy (float64) and values.npy, [N, k] each",
       cxxopts::value<std::string>());
    // clang-format on
    const auto parsed = sae::examples::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    sae::examples::check_flag(args.count("from") > 0, "--from is required");
    sae::examples::check_flag(args.count("to") || args.count("encode"), "nothing to do: give --to, --encode, or both");
    sae::examples::check_flag(args.count("encode") == args.count("codes"), "--encode and --codes go together");
    sae::examples::check_flag(args.count("encode") || !(args.count("layer") || args.count("position") || args.count("force-mismatch")),
                              "--layer, --position and --force-mismatch go with --encode");
    const auto dtype = dtype_flag(args["dtype"].as<std::string>());
    sae::examples::require_outputs_apart(args, {"to", "codes"});
    const fs::path from = args["from"].as<std::string>();
    const auto loaded = sae::load_any_sae<float>(from);  // our checkpoint, or a SAELens / sparsify folder
    const Model& model = loaded.model;
    const std::string& kind = loaded.kind;
    const bool ours = loaded.ours;
    const auto& config_of = [&](const auto& m) { return std::make_pair(m.input_dim(), m.num_latents()); };
    const auto [d, f] = std::visit(config_of, model);
    std::cout << "read " << from.string() << ": " << kind << ", d_in " << d << ", " << f << " latents\n";

    if (args.count("to")) {
      const std::string format = args.count("format") ? args["format"].as<std::string>() : ours ? "saelens" : "checkpoint";
      const fs::path to = args["to"].as<std::string>();
      // A run folder of its own: locked while written, published file by file with roll-forward, and
      // never another program's folder or files a user keeps there.
      sae::io::RunDirectory run(to, "sae-convert");
      const fs::path staged = run.staging();
      sae::ExportOptions opt;
      opt.dtype = dtype;
      std::visit(
          [&](const auto& m) {
            using M = std::decay_t<decltype(m)>;
            if (format == "checkpoint") {
              sae::save_checkpoint(staged, m);
            } else if (format == "saelens") {
              sae::export_saelens(staged, m, opt);
            } else if (format == "sparsify") {
              if constexpr (sparsify_exports<M>::value) sae::export_sparsify(staged, m, opt);
              else throw sae::invalid_argument(std::string("--format sparsify: sparsify has no ") + M::architecture +
                                               " SAE; use saelens");
            } else {
              throw sae::invalid_argument("--format: expected 'checkpoint', 'saelens' or 'sparsify', got '" + format + "'");
            }
          },
          model);
      run.commit();
      std::cout << "wrote " << to.string() << " (" << format << ")\n";
    }
    if (args.count("encode")) {
      std::optional<sae::data::LayerPosition> where;
      if (args.count("layer") || args.count("position"))
        where = sae::data::LayerPosition{args.count("layer") ? sae::examples::int_flag(args, "layer", 0) : 0,
                                         args.count("position") ? sae::examples::int_flag(args, "position", 0) : 0};
      const std::string spec = args["encode"].as<std::string>();
      const auto rows = sae::data::open_rows<float>(spec, where);
      sae::examples::check_flag(rows->input_dim() == d, "--encode: " + rows->describe() + " has rows of " +
                                                            std::to_string(rows->input_dim()) + " values, the SAE takes " +
                                                            std::to_string(d));
      const auto& trained = loaded.trained_on;
      sae::data::require_same_data(trained, from.string(), rows->metadata(), "--encode " + rows->describe(),
                                   args.count("force-mismatch") > 0, "--force-mismatch");
      if (!sae::data::metadata_conflicts(trained, rows->metadata()).empty())
        std::cerr << "warning: --force-mismatch: encoding " << rows->describe() << " although its metadata contradicts "
                  << from.string() << "'s training data\n";
      const auto x = sae::data::read_all_inputs(*rows);
      const auto codes = std::visit([&](const auto& m) { return m.encode(x); }, model);
      const fs::path out = args["codes"].as<std::string>();
      sae::io::RunDirectory codes_run(out, "sae-convert");
      sae::Matrix<double> indices(codes.rows, codes.k);
      sae::Matrix<float> values(codes.rows, codes.k);
      for (sae::index_t i = 0; i < codes.rows; ++i)
        for (sae::index_t s = 0; s < codes.k; ++s) {
          indices(i, s) = codes.row_indices(i)[s];
          values(i, s) = codes.row_values(i)[s];
        }
      sae::io::save_npy(codes_run.stage("indices.npy"), indices);
      sae::io::save_npy(codes_run.stage("values.npy"), values);
      codes_run.commit();
      std::cout << "encoded " << codes.rows << " rows into " << out.string() << " (indices.npy, values.npy)\n";
    }
    return 0;
  });
}
