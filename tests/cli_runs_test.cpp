// The example programs as a user runs them: every flag error names its flag; a rerun never
// reuses results made with other settings; a run that fails or is killed leaves the previous
// outputs byte-identical; two runs into one folder cannot mix.
#define BOOST_TEST_MODULE cli_runs
#include "cli_process.hpp"
#include "test_helpers.hpp"

#include <sae/sae.hpp>

#include <functional>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using sae::index_t;

namespace {

using namespace sae::test::cli;

// Every published file of an output folder and its bytes (the lock and staging folders aside).
std::map<std::string, std::string> snapshot(const fs::path& out) {
  std::map<std::string, std::string> files;
  for (auto it = fs::recursive_directory_iterator(out); it != fs::recursive_directory_iterator(); ++it) {
    const std::string rel = fs::relative(it->path(), out).generic_string();
    if (rel.rfind(".staging-", 0) == 0) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && rel != ".lock") files[rel] = sae::test::read_file(it->path());
  }
  return files;
}

bool has_staging(const fs::path& out) {
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().rfind(".staging-", 0) == 0) return true;
  return false;
}

const std::string kData = std::string(SAE_SOURCE_DIR) + "/examples/data/activations_layer1_pos3.npy";

std::vector<std::string> grid_args(const fs::path& out, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"--data", kData, "--ks", "2,4", "--latents", "16", "--epochs", "1",
                                "--no-plots", "--out", out.string()};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_flag_error_names_its_flag_value_and_expectation) {
  sae::test::ScratchDir dir("cli-flags");
  const std::string out = (dir / "out").string();
  fs::create_directories(dir / "a_directory");
  std::ofstream(dir / "a_file") << "x";
  struct Case {
    std::string program;
    std::vector<std::string> args;
    std::vector<std::string> says;
  };
  const std::vector<Case> cases = {
      {"sae-train", {"--epochs", "abc"}, {"--epochs", "'abc'", "expected an integer"}},
      {"sae-train", {"--epochs=0"}, {"--epochs", "got 0", "integer in [1, "}},
      {"sae-train", {"--batch-size", "2.5"}, {"--batch-size", "'2.5'", "integer"}},
      {"sae-train", {"--lr", "nan"}, {"--lr", "'nan'", "expected a number"}},
      {"sae-train", {"--lr", "1e-3x"}, {"--lr", "'1e-3x'", "expected a number"}},
      {"sae-train", {"--lr", "-0.1"}, {"--lr", "got -0.1", "(0, "}},
      {"sae-train", {"--lr", "1e999"}, {"--lr", "'1e999'"}},
      {"sae-train", {"--seed", "-1"}, {"--seed", "'-1'", "non-negative integer"}},
      {"sae-train", {"--epochs", "123456789012345678901234"}, {"--epochs", "out of range"}},
      {"sae-train", {"-k", "x"}, {"-k", "'x'", "integer"}},
      {"sae-train", {"-k", "600"}, {"--topk", "--latents", "600"}},
      {"sae-train", {"--threads", "-2"}, {"--threads", "got -2"}},
      {"sae-train", {"--val-fraction", "1.5"}, {"--val-fraction", "1.5", "(0, 1)"}},
      {"sae-train", {"--selection", "abs"}, {"--selection", "'abs'", "'value' or 'magnitude'"}},
      {"sae-train", {"--data", (dir / "a_directory").string(), "--out", out}, {"a_directory", "is a directory"}},
      {"sae-train", {"--data", (dir / "missing.npy").string(), "--out", out}, {"missing.npy", "no such .npy file"}},
      {"sae-train", {"--planted-samples", "100", "--out", (dir / "a_file").string()}, {"a_file", "not a directory"}},
      {"sae-train", {"--latents", "2000000000", "--planted-samples", "100", "--out", out}, {"needs", "of memory", "available"}},
      {"sae-train", {"--layer", "-1", "--data", kData, "--out", out}, {"--layer", "got -1"}},
      {"sae-train", {"--position", "3", "--out", out}, {"--position", "without --data", "planted"}},
      {"sae-train", {"--planted-k", "3", "--data", kData, "--out", out}, {"--planted-k", "does nothing with --data"}},
      {"sae-grid", {"--ks", "0,5"}, {"--ks", "got 0"}},
      {"sae-grid", {"--ks", "5,x"}, {"--ks", "'5,x'", "list of integers"}},
      {"sae-grid", {"--data", "", "--out", out}, {"--data: empty path"}},
      {"sae-grid", {"--layer", "2", "--data", kData, "--out", out}, {"a (layer, position) was given", "2-D"}},
      {"sae-sweep", {"--data", kData, "--max-groups", "-1"}, {"--max-groups", "got -1"}},
      {"sae-sweep", {"--data", kData, "--layers", "a"}, {"--layers", "'a'"}},
      {"sae-sweep", {"--data", kData, "--shard", "2/2"}, {"--shard", "0 <= i < n", "got '2/2'"}},
      {"sae-sweep", {"--data", kData, "--shard", "1/"}, {"--shard", "got '1/'"}},
      {"sae-sweep", {"--data", kData, "--shard", "-1/4"}, {"--shard", "got '-1/4'"}},
      {"sae-sweep", {"--data", kData, "--shard", "0/99999999999999999"}, {"--shard", "got '0/99999999999999999'"}},
      {"sae-sweep", {"--data", kData, "--shard", "0/2", "--mpi"}, {"--shard and --mpi: choose one"}},
      {"sae-sweep", {"--data", kData, "--shard", "0/2", "--max-groups", "1"}, {"--max-groups works in a single-process run only"}},
      {"sae-train", {"--mpi", "--aux-k", "4", "--planted-samples", "100", "--out", out}, {"--recipe modern with --mpi"}},
      {"sae-train", {"--lr-decay", "step", "--out", out}, {"--lr-decay", "'step'", "'cosine'"}},
      {"sae-train", {"--optimizer", "rmsprop", "--out", out}, {"--optimizer", "'rmsprop'"}},
      {"sae-train", {"--optimizer", "sgd", "--momentum", "1", "--out", out}, {"--momentum", "[0, 1)"}},
      {"sae-train", {"--median-decoder-bias", "--out", out}, {"--median-decoder-bias", "needs --decoder-bias"}},
      {"sae-train", {"--weight-decay", "-1", "--out", out}, {"--weight-decay", "got -1"}},
      {"sae-grid", {"--warmup-steps", "-3"}, {"--warmup-steps", "got -3"}},
      {"sae-grid", {"--final-lr-fraction", "2"}, {"--final-lr-fraction", "got 2"}},
      {"sae-train", {"--resample-every", "-5", "--out", out}, {"--resample-every", "got -5"}},
      {"sae-grid", {"--recipe", "fancy"}, {"--recipe", "'fancy'", "'modern'"}},
      {"sae-train", {"--recipe", "modern", "--aux-k", "8", "--out", out}, {"--recipe modern sets", "drop --aux-k"}},
      {"sae-large-k", {"--op-dominant", "1.5"}, {"--op-dominant", "1.5", "[0, 1]"}},
      {"sae-large-k", {"--ranks", "400-600"}, {"--ranks", "400-600", "outside", "512 latents"}},
      {"sae-large-k", {"--top-samples", "0"}, {"--top-samples", "got 0"}},
      {"sae-matryoshka", {"--mat-groups", "8,x"}, {"--mat-groups", "'8,x'"}},
      {"sae-matryoshka", {"--ranks", "9-3"}, {"--ranks", "'9-3'"}},
      {"sae-matryoshka", {"--min-samples", "50"}, {"--min-samples", "got 50"}},
      {"sae-hierarchy", {"--late-ranges", "1-20,0-3"}, {"--late-ranges", "'0-3'"}},
      {"sae-hierarchy", {"--early-ranges", "20-900"}, {"--early-ranges", "20-900", "outside"}},
      {"sae-hierarchy", {"--high", "inf"}, {"--high", "'inf'"}},
      {"sae-hierarchy", {"--medium", "0.5", "--high", "0.1"}, {"--medium", "--high"}},
      {"sae-train", {"--aux-k", "-1", "--planted-samples", "100", "--out", out}, {"--aux-k", "got -1"}},
      {"sae-train", {"--aux-k", "4", "--aux-alpha", "0", "--planted-samples", "100", "--out", out}, {"--aux-alpha", "got 0"}},
      {"sae-grid", {"--aux-k", "600", "--latents", "512"}, {"--aux-k", "smallest --latents (512)", "got 600"}},
      {"sae-grid", {"--dead-window", "-5"}, {"--dead-window", "got -5"}},
      {"sae-convert", {"--from", out, "--encode", "rows.npy"}, {"--encode and --codes go together"}},
      {"sae-convert", {"--from", out, "--to", out, "--layer", "1"}, {"--layer, --position and --force-mismatch go with --encode"}},
      {"sae-train", {"--shuffle-block", "-1", "--out", out}, {"--shuffle-block", "got -1"}},
      {"sae-train", {"--shuffle-window", "0", "--out", out}, {"--shuffle-window", "got 0"}},
      {"sae-train", {"--export", "onnx", "--out", out}, {"--export", "unknown SAE format 'onnx'", "'saelens' or 'sparsify'"}},
      {"sae-train", {"--export", "saelens", "--selection", "magnitude", "--out", out}, {"--export", "magnitude selection"}},
      {"sae-train", {"--arch", "gated", "--out", out}, {"--arch", "'gated'", "'jumprelu'"}},
      {"sae-train", {"--arch", "batchtopk", "--aux-k", "4", "--out", out}, {"--aux-k is for --arch topk only"}},
      {"sae-train", {"--arch", "jumprelu", "--recipe", "modern", "--out", out}, {"--recipe modern is for --arch topk only"}},
      {"sae-train", {"--l0-coefficient", "2", "--out", out}, {"--l0-coefficient", "--arch jumprelu only"}},
      // A flag for a field the chosen model lacks would change nothing: refused, naming who has it.
      {"sae-train", {"--arch", "matryoshka", "--tied-init", "--out", out}, {"--tied-init is for --arch topk, batchtopk or jumprelu only"}},
      {"sae-train", {"--arch", "jumprelu", "--selection", "magnitude", "--out", out}, {"--selection is for --arch topk only"}},
      {"sae-train", {"--arch", "jumprelu", "--l0-coefficient", "-1", "--out", out}, {"--l0-coefficient", "got -1"}},
      {"sae-train", {"--arch", "jumprelu", "--export", "sparsify", "--out", out}, {"--export sparsify", "no threshold SAE"}},
      {"sae-train", {"--arch", "batchtopk", "--mpi", "--out", out}, {"--mpi with --arch batchtopk"}},
      {"sae-compare", {"--variants", "topk,gated"}, {"--variants", "'gated'", "jumprelu"}},
      {"sae-compare", {"--jumprelu-bandwidth", "0"}, {"--jumprelu-bandwidth", "got 0"}},
      {"sae-compare", {"--ks", "20", "--latents", "16"}, {"K=20", "latent_dim=16"}},
      {"sae-compare", {"--aux-k", "600", "--latents", "512"}, {"--aux-k", "got 600"}},
      {"sae-convert", {"--to", out}, {"--from is required"}},
      {"sae-convert", {"--from", (dir / "a_directory").string(), "--to", out}, {"a_directory", "neither a SAELens folder"}},
      {"sae-convert", {"--from", (dir / "missing").string(), "--to", out}, {"missing", "no such folder"}},
      {"sae-convert", {"--from", (dir / "a_directory").string(), "--dtype", "f8", "--to", out}, {"--dtype", "'f8'"}},
  };
  for (const auto& c : cases) {
    std::string line = c.program;
    for (const auto& a : c.args) line += " " + a;
    BOOST_TEST_CONTEXT(line) {
      const Exit e = run(c.program, c.args, dir / "log");
      BOOST_TEST((e.code == 1 || e.code == 2));
      BOOST_TEST(e.err.find(c.program + ": ") == 0u, "stderr: " << e.err);
      BOOST_TEST(std::count(e.err.begin(), e.err.end(), '\n') <= 2);  // the error, perhaps a note
      for (const auto& s : c.says) BOOST_TEST(e.err.find(s) != std::string::npos, "'" << s << "' missing from: " << e.err);
    }
  }
}

BOOST_AUTO_TEST_CASE(exports_and_conversions_encode_as_the_trained_model) {
  // sae-train --export writes both formats beside the checkpoint; sae-convert reads each back and
  // encodes rows as the checkpoint's own model does.
  sae::test::ScratchDir dir("cli-export");
  const fs::path out = dir / "run";
  const Exit trained = run("sae-train", {"--data", kData, "-k", "4", "--latents", "32", "--epochs", "2", "--quiet",
                                         "--export", "saelens,sparsify", "--out", out.string()},
                           dir / "train");
  BOOST_REQUIRE_MESSAGE(trained.code == 0, trained.err);
  BOOST_TEST(trained.out.find("checkpoint/, saelens/, sparsify/") != std::string::npos, trained.out);
  const auto model = sae::load_checkpoint<float>(out / "checkpoint");
  const sae::Matrix<float> rows = sae::data::load_activations<float>(kData).topRows(40);
  sae::io::save_npy(dir / "rows.npy", rows);
  const auto expected = model.encode(rows);
  for (const char* from : {"checkpoint", "saelens", "sparsify"}) {
    BOOST_TEST_CONTEXT(from) {
      const fs::path ckpt = dir / (std::string("ckpt_from_") + from);
      const Exit e = run("sae-convert", {"--from", (out / from).string(), "--to", ckpt.string(), "--format", "checkpoint",
                                         "--encode", (dir / "rows.npy").string(), "--codes", (dir / from).string()},
                         dir / "convert");
      BOOST_REQUIRE_MESSAGE(e.code == 0, e.err);
      const auto indices = sae::io::load_npy_matrix<double>(dir / from / "indices.npy");
      const auto values = sae::io::load_npy_matrix<float>(dir / from / "values.npy");
      BOOST_REQUIRE(indices.rows() == 40 && indices.cols() == 4);
      for (index_t i = 0; i < 40; ++i)
        for (index_t s = 0; s < 4; ++s) {
          BOOST_TEST(indices(i, s) == expected.row_indices(i)[s]);
          BOOST_TEST(values(i, s) == expected.row_values(i)[s]);
        }
      BOOST_TEST(sae::test::same(sae::load_checkpoint<float>(ckpt).parameters().w_dec, model.parameters().w_dec));
    }
  }
}

BOOST_AUTO_TEST_CASE(sae_train_trains_each_architecture_and_its_checkpoint_scores_as_reported) {
  // --arch batchtopk / jumprelu: the checkpoint loads as that model and scores the validation rows
  // (the reports' split of the bundled layer-1 slice) exactly as metrics.json says.
  sae::test::ScratchDir dir("cli-arch");
  const auto all = sae::data::load_activations<float>(kData);
  const auto split = sae::data::split_activations(all, "x", {std::nullopt, 0});
  const auto check = [&](const std::string& arch, auto model_type) {
    BOOST_TEST_CONTEXT(arch) {
      using Model = decltype(model_type);
      const fs::path out = dir / arch;
      const Exit e = run("sae-train", {"--arch", arch, "--data", kData, "-k", "4", "--latents", "32", "--epochs", "3",
                                       "--quiet", "--export", "saelens", "--out", out.string()},
                         dir / "log");
      BOOST_REQUIRE_MESSAGE(e.code == 0, e.err);
      BOOST_TEST(e.out.find("model: " + arch + ", D=") != std::string::npos, e.out);
      const Model model = sae::load_model<Model>(out / "checkpoint");
      const auto metrics = sae::io::read_json_file((out / "metrics.json").string());
      BOOST_TEST(metrics.at("architecture").as_string() == arch);
      const auto val = sae::metrics::evaluate(model, split.validation);
      BOOST_TEST(metrics.at("validation").at("explained_variance").as_number() == val.explained_variance,
                 boost::test_tools::tolerance(1e-12));
      BOOST_TEST(metrics.at("validation").at("l0").as_number() == val.l0, boost::test_tools::tolerance(1e-12));
      BOOST_TEST(sae::io::read_json_file((out / "saelens" / "cfg.json").string()).at("architecture").as_string() == "jumprelu");
      // sae-convert reads every architecture sae-train writes (the registry), back to the same weights
      // (into folders of its own: the run folder is sae-train's).
      const fs::path copy_dir = dir / (arch + "_copy"), from_saelens = dir / (arch + "_from_saelens");
      const Exit c = run("sae-convert", {"--from", (out / "checkpoint").string(), "--to", copy_dir.string(), "--format",
                                         "checkpoint"}, dir / "log");
      BOOST_REQUIRE_MESSAGE(c.code == 0, c.err);
      BOOST_TEST(c.out.find("checkpoint (" + arch + ")") != std::string::npos, c.out);
      const Model copy = sae::load_model<Model>(copy_dir);
      BOOST_TEST(sae::test::same(copy.parameters().w_enc, model.parameters().w_enc));
      BOOST_TEST(sae::test::same(copy.parameters().w_dec, model.parameters().w_dec));
      BOOST_TEST(sae::io::read_json_file((copy_dir / "config.json").string()).at("config").dump() ==
                 sae::io::read_json_file((out / "checkpoint" / "config.json").string()).at("config").dump());
      // Its SAELens folder converts back into a JumpReLU checkpoint that encodes as the model did.
      const Exit back = run("sae-convert", {"--from", (out / "saelens").string(), "--to", from_saelens.string(),
                                            "--format", "checkpoint"}, dir / "log");
      BOOST_REQUIRE_MESSAGE(back.code == 0, back.err);
      const auto imported = sae::load_model<sae::JumpReluAutoencoder<float>>(from_saelens);
      const sae::Matrix<float> ours = model.encode(split.validation).to_dense(), theirs = imported.encode(split.validation).to_dense();
      BOOST_TEST(((ours.array() > 0) == (theirs.array() > 0)).all());
      BOOST_TEST((ours - theirs).cwiseAbs().maxCoeff() <= 1e-6f);
    }
  };
  check("batchtopk", sae::BatchTopKAutoencoder<float>(sae::BatchTopKConfig{16, 8, 2}));
  check("jumprelu", sae::JumpReluAutoencoder<float>([] {
          sae::JumpReluConfig c;
          c.input_dim = 16, c.num_latents = 8;
          return c;
        }()));
  check("matryoshka", sae::MatryoshkaAutoencoder<float>([] {
          sae::MatryoshkaConfig c;
          c.input_dim = 16, c.num_latents = 16, c.k = 2;
          return c;
        }()));
}

// --config FILE: flag values by long name under the command line's; unknown keys and bad values
// refused naming the file or flag; resolved_config.json, fed back, trains the same weights.
BOOST_AUTO_TEST_CASE(config_files_set_flags_and_every_run_records_its_own) {
  sae::test::ScratchDir dir("cli-config");
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const std::string cfg = write("run.json", R"({"planted-samples": 600, "planted-dim": 16, "planted-features": 24,
    "planted-k": 2, "latents": 32, "topk": 3, "epochs": 2, "batch-size": 64, "lr": 0.01, "quiet": true, "seed": 18446744073709551615,
    "lr-decay": "cosine"})");
  const fs::path a = dir / "a", b = dir / "b";
  Exit e = run("sae-train", {"--config", cfg, "-k", "2", "--out", a.string()}, dir / "log");  // -k overrides the file's 3
  BOOST_REQUIRE_MESSAGE(e.code == 0, e.err);
  const auto resolved = sae::io::read_json_file((a / "resolved_config.json").string());
  BOOST_TEST(resolved.at("topk").as_int() == 2);
  BOOST_TEST(resolved.at("latents").as_int() == 32);
  BOOST_TEST(resolved.at("seed").as_uint64() == 18446744073709551615ull);  // exact past 2^53
  BOOST_TEST(resolved.at("lr-decay").as_string() == "cosine");
  BOOST_TEST(resolved.at("batch-size").as_int() == 64);
  BOOST_TEST(resolved.at("arch").as_string() == "topk");  // defaults are recorded too
  const auto metrics = sae::io::read_json_file((a / "metrics.json").string());
  BOOST_TEST(metrics.at("model").at("k").as_int() == 2);
  BOOST_TEST(metrics.at("model").at("seed").as_uint64() == 18446744073709551615ull);
  // The run's own record reproduces it.
  e = run("sae-train", {"--config", (a / "resolved_config.json").string(), "--out", b.string()}, dir / "log");
  BOOST_REQUIRE_MESSAGE(e.code == 0, e.err);
  for (const char* slot : {"w_enc.npy", "w_dec.npy", "b_enc.npy"})
    BOOST_TEST(sae::test::read_file(a / "checkpoint" / slot) == sae::test::read_file(b / "checkpoint" / slot), slot);
  // Refusals, each naming the file or the flag.
  const auto refused = [&](const std::string& text, const std::vector<std::string>& words) {
    const std::string path = write("bad.json", text);
    const Exit r = run("sae-train", {"--config", path, "--out", (dir / "bad").string()}, dir / "log");
    BOOST_TEST(r.code != 0, text);
    for (const auto& w : words) BOOST_TEST(r.err.find(w) != std::string::npos, text << " -> " << r.err);
    BOOST_TEST(!fs::exists(dir / "bad" / "metrics.json"));
  };
  refused(R"({"latent": 32})", {"bad.json", "unknown key 'latent'"});
  refused(R"({"lr": "fast"})", {"--lr", "'fast'"});
  refused(R"({"latents": 0})", {"--latents", "got 0"});
  refused(R"({"quiet": "yes"})", {"bad.json", "'quiet': expected true or false"});
  refused(R"({"latents": [32, 64]})", {"bad.json", "'latents': expected one value"});
  refused(R"([1, 2])", {"bad.json", "JSON object"});
  refused(R"({"latents": )", {"bad.json", "invalid JSON"});
  const Exit missing = run("sae-train", {"--config", (dir / "none.json").string()}, dir / "log");
  BOOST_TEST(missing.code != 0);
  BOOST_TEST(missing.err.find("none.json") != std::string::npos, missing.err);
}

BOOST_AUTO_TEST_CASE(programs_read_activations_from_safetensors) {
  sae::test::ScratchDir dir("cli-safetensors");
  const sae::Matrix<float> x = sae::test::random_matrix<float>(300, 8, 11);
  sae::io::save_safetensors(dir / "acts.safetensors", {sae::io::tensor_to_write("resid", x, sae::io::FloatDType::bf16),
                                                       sae::io::tensor_to_write("other", x.topRows(3), sae::io::FloatDType::f32)});
  const std::string spec = (dir / "acts.safetensors").string() + ":resid";
  const Exit train = run("sae-train", {"--data", spec, "-k", "2", "--latents", "16", "--epochs", "1", "--quiet", "--out",
                                       (dir / "train").string()},
                         dir / "train");
  BOOST_TEST(train.code == 0, train.err);
  BOOST_TEST(train.out.find("data: " + spec) != std::string::npos, train.out);
  const Exit grid = run("sae-grid", {"--data", spec, "--ks", "2", "--latents", "16", "--epochs", "1", "--no-plots", "--out",
                                     (dir / "grid").string()},
                        dir / "grid");
  BOOST_TEST(grid.code == 0, grid.err);
  const auto metrics = sae::io::read_json_file((dir / "grid" / "grid_metrics.json").string());
  BOOST_TEST(metrics.at("fingerprint").at("data").at("tensor").as_string() == "resid");
  const Exit unnamed = run("sae-train", {"--data", (dir / "acts.safetensors").string(), "--out", (dir / "u").string()},
                           dir / "unnamed");
  BOOST_TEST(unnamed.code == 1);
  BOOST_TEST(unnamed.err.find("holds 2 tensors (resid, other); name one as") != std::string::npos, unnamed.err);
}

BOOST_AUTO_TEST_CASE(a_rerun_with_any_changed_setting_refuses_or_retrains) {
  sae::test::ScratchDir dir("cli-rerun");
  const fs::path out = dir / "grid";
  BOOST_REQUIRE_EQUAL(run("sae-grid", grid_args(out), dir / "log").code, 0);
  // The same data elsewhere is the same data: reused.
  fs::copy_file(kData, dir / "copy.npy");
  auto args = grid_args(out);
  args[1] = (dir / "copy.npy").string();
  const Exit same = run("sae-grid", args, dir / "log");
  BOOST_TEST(same.code == 0);
  BOOST_TEST(same.out.find("K=2 d=16] reused") != std::string::npos, same.out);
  const auto good = snapshot(out);
  BOOST_REQUIRE(good.count("configs/K2_d16.json") && good.count("report.md"));

  // Other content under the same name is not.
  {
    auto raw = sae::io::load_npy<float>(dir / "copy.npy");
    raw.data[5] += 0.5f;
    sae::io::save_npy(dir / "copy.npy", raw.data.data(), raw.shape);
  }
  struct Change {
    std::vector<std::string> flags;
    std::string field;
  };
  const std::vector<Change> changes = {
      {{"--epochs", "2"}, "training.epochs"},       {{"--batch-size", "128"}, "training.batch_size"},
      {{"--lr", "0.002"}, "training.lr"},           {{"--seed", "1"}, "training.seed"},
      {{"--val-fraction", "0.3"}, "split"},         {{"--data", (dir / "copy.npy").string()}, "data.content_hash"},
  };
  for (const auto& c : changes) {
    BOOST_TEST_CONTEXT(c.field) {
      const Exit e = run("sae-grid", grid_args(out, c.flags), dir / "log");
      BOOST_TEST(e.code != 0);
      BOOST_TEST(e.err.find("K2_d16.json") != std::string::npos, e.err);
      BOOST_TEST(e.err.find("other settings") != std::string::npos, e.err);
      BOOST_TEST(e.err.find(c.field) != std::string::npos, e.err);
      BOOST_TEST((snapshot(out) == good));  // nothing written
    }
  }
  // --force retrains and the report names the new settings over new results.
  const Exit forced = run("sae-grid", grid_args(out, {"--epochs", "2", "--force"}), dir / "log");
  BOOST_TEST(forced.code == 0, forced.err);
  const auto now = snapshot(out);
  BOOST_TEST(now.at("configs/K2_d16.json") != good.at("configs/K2_d16.json"));
  BOOST_TEST(now.at("report.md").find("2 epochs") != std::string::npos);
  BOOST_TEST(sae::io::Json::parse(now.at("configs/K2_d16.json")).at("fingerprint").at("training").at("epochs").as_int() == 2);
  // The summary carries the run's fingerprint: the shared settings, not one config's model.
  const auto summary = sae::io::Json::parse(now.at("grid_metrics.json")).at("fingerprint");
  BOOST_TEST(summary.at("training").at("epochs").as_int() == 2);
  BOOST_TEST(!summary.find("model"));

  // A result whose contents are another config's is refused, naming it.
  std::ofstream(out / "configs" / "K2_d16.json") << now.at("configs/K4_d16.json");
  const Exit swapped = run("sae-grid", grid_args(out, {"--epochs", "2"}), dir / "log");
  BOOST_TEST(swapped.code != 0);
  BOOST_TEST(swapped.err.find("K2_d16.json: its contents do not match its name (it holds K=4, d=16)") != std::string::npos,
             swapped.err);
}

BOOST_AUTO_TEST_CASE(a_run_that_fails_late_leaves_the_previous_outputs_as_they_were) {
  sae::test::ScratchDir dir("cli-fail");
  const std::vector<std::string> train = {"--planted-samples", "300", "--planted-dim", "16", "--latents", "32",
                                          "-k", "4", "--epochs", "3", "--quiet", "--out", (dir / "t").string()};
  BOOST_REQUIRE_EQUAL(run("sae-train", train, dir / "log").code, 0);
  const auto good = snapshot(dir / "t");
  BOOST_REQUIRE(good.count("history.csv") && good.count("checkpoint/w_enc.npy"));
  auto other = train;
  other[9] = "5";  // --epochs 5: every output would change
  const Exit failed = run("sae-train", other, dir / "log", "before-commit");
  BOOST_TEST(failed.code == 1);
  BOOST_TEST(failed.err.find("injected failure") != std::string::npos, failed.err);
  BOOST_TEST(failed.err.find("previous outputs in " + (dir / "t").string() + " are unchanged") != std::string::npos, failed.err);
  BOOST_TEST(failed.err.find(".staging-") != std::string::npos, failed.err);
  BOOST_TEST((snapshot(dir / "t") == good));
  BOOST_TEST(has_staging(dir / "t"));
  // The next success publishes its own outputs and clears the failed run's staging folder.
  BOOST_TEST(run("sae-train", other, dir / "log").code == 0);
  BOOST_TEST(!has_staging(dir / "t"));
  BOOST_TEST(snapshot(dir / "t").at("history.csv") != good.at("history.csv"));

  // The grid: failing after training, or at the last step, publishes nothing either.
  BOOST_REQUIRE_EQUAL(run("sae-grid", grid_args(dir / "g"), dir / "log").code, 0);
  const auto grid = snapshot(dir / "g");
  for (const char* at : {"after-training", "before-commit"}) {
    BOOST_TEST_CONTEXT(at) {
      BOOST_TEST(run("sae-grid", grid_args(dir / "g", {"--force", "--epochs", "2"}), dir / "log", at).code == 1);
      BOOST_TEST((snapshot(dir / "g") == grid));
    }
  }
  BOOST_TEST(has_staging(dir / "g"));
  BOOST_TEST(run("sae-grid", grid_args(dir / "g", {"--epochs", "2", "--force"}), dir / "log").code == 0);
  BOOST_TEST(!has_staging(dir / "g"));
}

BOOST_AUTO_TEST_CASE(a_killed_run_leaves_the_previous_outputs_byte_identical) {
  sae::test::ScratchDir dir("cli-kill");
  const fs::path out = dir / "g";
  BOOST_REQUIRE_EQUAL(run("sae-grid", grid_args(out), dir / "log").code, 0);
  const auto good = snapshot(out);
  // Killed at spread-out moments of a much longer --force run (seconds): while loading, between
  // and inside configs, mid-write of a result.
  const auto longer = grid_args(out, {"--force", "--epochs", "150", "--latents", "16,32"});
  for (int ms : {2, 20, 60, 150, 300, 500, 800, 1200}) {
    BOOST_TEST_CONTEXT("SIGKILL after " << ms << " ms") {
      const pid_t pid = start("sae-grid", longer, dir / "log");
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      ::kill(pid, SIGKILL);
      const Exit e = finish(pid, dir / "log");
      BOOST_TEST(e.code == 128 + SIGKILL);  // still running when killed, or the test proves nothing
      BOOST_TEST((snapshot(out) == good));
    }
  }
  // And the folder is still usable: a plain rerun reuses the good results.
  const Exit again = run("sae-grid", grid_args(out), dir / "log");
  BOOST_TEST(again.code == 0);
  BOOST_TEST(again.out.find("K=4 d=16] reused") != std::string::npos);
  BOOST_TEST(!has_staging(out));
}

BOOST_AUTO_TEST_CASE(a_second_run_into_a_busy_folder_stops_and_names_the_holder) {
  sae::test::ScratchDir dir("cli-lock");
  const fs::path out = dir / "g";
  const pid_t first = start("sae-grid", grid_args(out, {"--epochs", "200", "--latents", "64"}), dir / "first");
  // Wait until the first run holds the folder (its lock file names it).
  for (int i = 0; i < 2000 && sae::test::read_file(out / ".lock").find("sae-grid") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const Exit second = run("sae-grid", grid_args(out, {"--epochs", "3"}), dir / "second");
  ::kill(first, SIGKILL);
  finish(first, dir / "first");
  BOOST_TEST(second.code == 1);
  BOOST_TEST(second.err.find("another run is writing into this folder (sae-grid, pid ") != std::string::npos, second.err);
  BOOST_TEST(!fs::exists(out / "report.md"));
  // The kernel released the killed run's lock: the folder is free again.
  BOOST_TEST(run("sae-grid", grid_args(out), dir / "log").code == 0);
}

BOOST_AUTO_TEST_CASE(every_program_runs_on_a_small_data_set_of_its_own) {
  // A user's own activations: 1,319 rows (GSM8K test's size), too few for the reports' split.
  sae::test::ScratchDir dir("cli-small");
  const std::string src = std::string(SAE_SOURCE_DIR) + "/examples/data/";
  const index_t rows = 1319;
  for (const char* layer : {"activations_layer4_pos3", "activations_layer1_pos3"}) {
    const auto a = sae::io::load_npy<float>(src + layer + ".npy");
    sae::io::save_npy(dir / (std::string(layer) + ".npy"), a.data.data(), {rows, a.shape[1]});
  }
  {
    std::ifstream in(src + "samples.jsonl");
    std::ofstream out(dir / "samples.jsonl");
    std::string line;
    for (index_t i = 0; i < rows && std::getline(in, line); ++i) out << line << '\n';
  }
  const std::string late = (dir / "activations_layer4_pos3.npy").string(), early = (dir / "activations_layer1_pos3.npy").string();
  struct Case {
    std::string program;
    std::vector<std::string> args;
    std::string report;
  };
  const std::vector<Case> cases = {
      {"sae-grid", {"--data", late, "--ks", "4", "--latents", "16", "--epochs", "1"}, "report.md"},
      {"sae-compare", {"--data", late, "--ks", "4", "--latents", "16", "--epochs", "1", "--jumprelu-runs", "2"}, "compare.csv"},
      {"sae-large-k", {"--data", late, "--ks", "4,8", "--latents", "32", "--epochs", "1", "--ranks", "20-32",
                       "--top-samples", "5"}, "large_k.json"},
      {"sae-hierarchy", {"--data", late, "--early-data", early, "--ks", "4", "--latents", "32", "--epochs", "1",
                         "--late-ranges", "1-5,20-32", "--early-ranges", "5-10", "--top-ablate", "3", "--top-samples", "5"},
       "hierarchy.json"},
      {"sae-matryoshka", {"--data", late, "--early-data", early, "--ks", "2,4", "--latents", "16", "--epochs", "1",
                          "--mat-latents", "32", "--mat-k", "4", "--sem-k", "4", "--sem-latents", "16", "--top-latents", "3",
                          "--ranks", "10-12", "--top-samples", "5"},
       "semantics.json"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.program) {
      auto args = c.args;
      const fs::path out = dir / c.program;
      args.insert(args.end(), {"--no-plots", "--out", out.string()});
      const Exit e = run(c.program, args, dir / "log");
      BOOST_TEST(e.code == 0, e.err);
      BOOST_TEST(sae::test::read_file(out / c.report).size() > 0u);
      if (c.program != "sae-grid")  // the feature reports say how rows were split
        BOOST_TEST(sae::test::read_file(out / "report.md").find("seeded random split, 20% held out") != std::string::npos);
    }
  }
  // Samples are paired with validation rows by row index: every "sample" listed is a held-out row
  // whose CoT is the one printed beside it.
  const auto semantics = sae::io::read_json_file((dir / "sae-matryoshka" / "semantics.json").string());
  const auto samples = sae::data::load_samples((dir / "samples.jsonl").string());
  const auto split = sae::data::choose_split(rows, sae::data::SplitPolicy{std::nullopt, 0});
  std::size_t checked = 0;
  std::function<void(const sae::io::Json&)> visit = [&](const sae::io::Json& j) {
    if (j.is_object()) {
      const auto* sample = j.find("sample");
      const auto* row = j.find("validation_row");
      if (sample && row) {
        BOOST_TEST(split.validation.at(static_cast<std::size_t>(row->as_int())) == sample->as_int());
        std::string cot;
        for (const auto& step : samples.at(static_cast<std::size_t>(sample->as_int())).cot_steps)
          cot += (cot.empty() ? "" : " | ") + step.text();
        BOOST_TEST(j.at("cot").as_string() == (cot.empty() ? "(no annotated steps)" : cot));
        ++checked;
      }
      for (const auto& [k, v] : j.as_object()) visit(v);
    } else if (j.is_array()) {
      for (const auto& v : j.as_array()) visit(v);
    }
  };
  visit(semantics);
  BOOST_TEST(checked > 0u);
}

BOOST_AUTO_TEST_CASE(sae_compare_trains_every_variant_on_the_grid_runs_data) {
  // Its TopK column is the reports' TopK: the same numbers sae-grid gets on the same flags (another
  // code path: the sweep with its result cache). Every variant scores every grid point.
  sae::test::ScratchDir dir("cli-compare");
  const std::vector<std::string> grid = {"--data", kData, "--ks", "2,4", "--latents", "16,32", "--epochs", "2", "--no-plots"};
  auto g = grid, c = grid;
  g.insert(g.end(), {"--out", (dir / "grid").string()});
  c.insert(c.end(), {"--jumprelu-runs", "3", "--variants", "topk,auxk,modern,batchtopk,jumprelu,matryoshka", "--out",
                     (dir / "compare").string()});
  BOOST_REQUIRE_EQUAL(run("sae-grid", g, dir / "log").code, 0);
  const Exit e = run("sae-compare", c, dir / "log");
  BOOST_REQUIRE_MESSAGE(e.code == 0, e.err);
  const auto lines = [](const std::string& text) {
    std::vector<std::vector<std::string>> rows;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      rows.emplace_back();
      std::istringstream cells(line);
      for (std::string cell; std::getline(cells, cell, ',');) rows.back().push_back(cell);
    }
    return rows;
  };
  const auto grid_rows = lines(sae::test::read_file(dir / "grid" / "grid_metrics.csv"));
  const auto rows = lines(sae::test::read_file(dir / "compare" / "compare.csv"));
  BOOST_REQUIRE_EQUAL(rows.size(), 1u + 6 * 4);
  std::map<std::string, int> per_variant;
  for (std::size_t r = 1; r < rows.size(); ++r) {
    ++per_variant[rows[r][0]];
    const double ev = std::stod(rows[r][3]), dead = std::stod(rows[r][4]);
    BOOST_TEST((std::isfinite(ev) && ev < 1 && dead >= 0 && dead <= 1));
    if (rows[r][0] != "topk") continue;
    for (std::size_t q = 1; q < grid_rows.size(); ++q)
      if (grid_rows[q][0] == rows[r][1] && grid_rows[q][1] == rows[r][2]) {
        BOOST_TEST(grid_rows[q][2] == rows[r][3], "EV of K=" << rows[r][1] << " d=" << rows[r][2]);
        BOOST_TEST(grid_rows[q][4] == rows[r][4], "dead fraction of K=" << rows[r][1] << " d=" << rows[r][2]);
      }
  }
  for (const char* v : {"topk", "auxk", "modern", "batchtopk", "jumprelu", "matryoshka"}) BOOST_TEST(per_variant[v] == 4, v);
  const std::string report = sae::test::read_file(dir / "compare" / "report.md");
  BOOST_TEST(report.find("| K | latent_dim | TopK (reports) | TopK + AuxK | TopK, recipe modern | BatchTopK | JumpReLU |") !=
             std::string::npos);
  BOOST_TEST(sae::test::read_file(dir / "compare" / "figures" / "ev_vs_dead.dat").size() > 0u);
}

// sae-train on a shard set, streamed from the map, and against targets equal to its inputs trains
// the weights of the plain in-memory run; a transcoder between layers runs and is scored against
// its targets; bad shards and mismatched targets are refused by name.
BOOST_AUTO_TEST_CASE(sae_train_reads_shard_sets_streams_and_trains_against_targets) {
  sae::test::ScratchDir dir("cli-rows");
  const sae::Matrix<float> x = sae::test::random_matrix<float>(400, 8, 21);
  sae::io::save_npy(dir / "all.npy", x);
  fs::create_directories(dir / "set");
  sae::io::save_npy(dir / "set" / "part-0.npy", sae::Matrix<float>(x.topRows(150)));
  sae::io::save_npy(dir / "set" / "part-1.npy", sae::Matrix<float>(x.bottomRows(250)));
  const std::vector<std::string> common = {"-k", "2", "--latents", "16", "--epochs", "2", "--batch-size", "64", "--quiet"};
  const auto train = [&](const std::string& name, std::vector<std::string> args) {
    args.insert(args.end(), common.begin(), common.end());
    args.insert(args.end(), {"--out", (dir / name).string()});
    const Exit e = run("sae-train", args, dir / name);
    BOOST_TEST(e.code == 0, name << ": " << e.err);
    return e;
  };
  const auto weights = [&](const std::string& name) {
    return sae::test::read_file(dir / name / "checkpoint" / "w_enc.npy") + sae::test::read_file(dir / name / "checkpoint" / "w_dec.npy");
  };
  train("run-file", {"--data", (dir / "all.npy").string()});
  BOOST_REQUIRE(!weights("run-file").empty());
  train("run-set", {"--data", (dir / "set").string()});
  train("run-glob", {"--data", (dir / "set" / "part-*.npy").string(), "--stream"});
  const Exit paired = train("run-paired", {"--data", (dir / "all.npy").string(), "--target-data", (dir / "all.npy").string()});
  for (const char* name : {"run-set", "run-glob", "run-paired"}) BOOST_TEST(weights(name) == weights("run-file"), name);
  BOOST_TEST(paired.out.find(" -> ") != std::string::npos, paired.out);
  const auto set_metrics = sae::io::read_json_file((dir / "run-set" / "metrics.json").string());
  BOOST_TEST(set_metrics.at("fingerprint").at("data").at("shards").as_array().size() == 2u);
  BOOST_TEST(set_metrics.at("validation").dump() ==
             sae::io::read_json_file((dir / "run-file" / "metrics.json").string()).at("validation").dump());

  // Layer 0 in, layer 1 out of a 4-D array: the metrics are against layer 1.
  const sae::Matrix<float> four = sae::test::random_matrix<float>(300, 2 * 1 * 8, 22);
  sae::io::save_npy(dir / "acts4d.npy", four.data(), {300, 2, 1, 8});
  train("transcoder", {"--data", (dir / "acts4d.npy").string(), "--target-layer", "1"});
  const auto t = sae::io::read_json_file((dir / "transcoder" / "metrics.json").string());
  BOOST_TEST(t.at("data").as_string().find("layer 0, position 0) -> ") != std::string::npos, t.at("data").as_string());
  BOOST_TEST(t.at("fingerprint").at("data").at("targets").at("layer").as_int() == 1);

  const auto refused = [&](std::vector<std::string> args, const std::vector<std::string>& fragments) {
    args.insert(args.end(), {"--out", (dir / "refused").string()});
    const Exit e = run("sae-train", args, dir / "refused");
    BOOST_TEST(e.code != 0);
    for (const auto& f : fragments) BOOST_TEST(e.err.find(f) != std::string::npos, "'" << e.err << "' lacks '" << f << "'");
  };
  sae::io::save_npy(dir / "short.npy", sae::Matrix<float>(x.topRows(399)));
  refused({"--data", (dir / "all.npy").string(), "--target-data", (dir / "short.npy").string()},
          {"all.npy", "400 rows", "short.npy", "399 rows"});
  refused({"--data", (dir / "acts4d.npy").string(), "--target-layer", "2"}, {"acts4d.npy", "layer 2", "[0, 2)"});
  refused({"--data", (dir / "all.npy").string(), "--target-layer", "1"}, {"all.npy", "2-D"});
  refused({"--data", (dir / "all.npy").string(), "--target-data", (dir / "all.npy").string(), "--resample-every", "100"},
          {"--resample-every", "--target-*"});
  sae::io::save_npy(dir / "set" / "part-2.npy", sae::Matrix<float>(sae::test::random_matrix<float>(10, 9, 23)));
  refused({"--data", (dir / "set").string()}, {"part-2.npy", "9 wide", "same width"});
  refused({"--target-layer", "1"}, {"--target-layer", "without --data"});
}

// The training data's metadata reaches the checkpoint; sae-convert refuses to encode rows whose
// metadata contradicts it (another layer of the same 4-D array, another model's shard set) unless
// --force-mismatch, and encodes matching rows as the model does.
BOOST_AUTO_TEST_CASE(checkpoints_record_their_data_and_refuse_other_activations) {
  sae::test::ScratchDir dir("cli-metadata");
  const sae::Matrix<float> four = sae::test::random_matrix<float>(300, 2 * 1 * 8, 31);
  sae::io::save_npy(dir / "acts4d.npy", four.data(), {300, 2, 1, 8});
  const Exit trained = run("sae-train", {"--data", (dir / "acts4d.npy").string(), "--layer", "1", "-k", "2", "--latents", "16",
                                         "--epochs", "1", "--batch-size", "64", "--quiet", "--out", (dir / "run").string()},
                           dir / "run");
  BOOST_REQUIRE_MESSAGE(trained.code == 0, trained.err);
  const fs::path ckpt = dir / "run" / "checkpoint";
  const auto recorded = sae::io::read_json_file((ckpt / "config.json").string()).at("data");
  BOOST_TEST(recorded.at("layer").as_string() == "1");
  BOOST_TEST(recorded.at("position").as_string() == "0");
  BOOST_TEST(recorded.at("d_in").as_string() == "8");
  BOOST_TEST(recorded.at("rows").as_string() == "300");

  const auto encode = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"--from", ckpt.string(), "--codes", (dir / "codes").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run("sae-convert", args, dir / "convert");
  };
  const Exit other = encode({"--encode", (dir / "acts4d.npy").string(), "--layer", "0"});
  BOOST_TEST(other.code == 2);
  for (const char* f : {"acts4d.npy", "layer '1' vs '0'", "--force-mismatch"})
    BOOST_TEST(other.err.find(f) != std::string::npos, "'" << other.err << "' lacks '" << f << "'");
  BOOST_TEST(!fs::exists(dir / "codes"));
  const Exit forced = encode({"--encode", (dir / "acts4d.npy").string(), "--layer", "0", "--force-mismatch"});
  BOOST_TEST(forced.code == 0, forced.err);
  BOOST_TEST(forced.err.find("warning: --force-mismatch") != std::string::npos, forced.err);
  const Exit same = encode({"--encode", (dir / "acts4d.npy").string(), "--layer", "1"});
  BOOST_REQUIRE_MESSAGE(same.code == 0, same.err);
  const auto model = sae::load_checkpoint<float>(ckpt);
  const sae::Matrix<float> slice = sae::data::load_activations<float>(dir / "acts4d.npy", sae::data::LayerPosition{1, 0});
  const auto codes = model.encode(slice);
  const auto values = sae::io::load_npy_matrix<float>(dir / "codes" / "values.npy");
  BOOST_REQUIRE_EQUAL(values.rows(), 300);
  for (sae::index_t i = 0; i < 300; ++i)
    for (sae::index_t s = 0; s < codes.k; ++s) BOOST_TEST(values(i, s) == codes.row_values(i)[s]);

  // A shard set of safetensors with metadata: the model name is recorded and checked.
  const sae::Matrix<float> x = sae::test::random_matrix<float>(200, 8, 32);
  const auto save_set = [&](const std::string& name, const std::string& model_name) {
    fs::create_directories(dir / name);
    for (int s = 0; s < 2; ++s)
      sae::io::save_safetensors(dir / name / ("part-" + std::to_string(s) + ".safetensors"),
                                {sae::io::tensor_to_write("acts", sae::Matrix<float>(x.middleRows(100 * s, 100)), sae::io::FloatDType::f16)},
                                {{"model", model_name}, {"hook", "blocks.3.hook_resid_post"}});
    return (dir / name).string();
  };
  const Exit on_set = run("sae-train", {"--data", save_set("gpt2", "gpt2"), "-k", "2", "--latents", "16", "--epochs", "1",
                                        "--batch-size", "64", "--quiet", "--out", (dir / "run-set").string()},
                          dir / "run-set");
  BOOST_REQUIRE_MESSAGE(on_set.code == 0, on_set.err);
  const auto set_meta = sae::io::read_json_file((dir / "run-set" / "checkpoint" / "config.json").string()).at("data");
  BOOST_TEST(set_meta.at("model").as_string() == "gpt2");
  BOOST_TEST(set_meta.at("dtype").as_string() == "f16");
  const Exit pythia = run("sae-convert", {"--from", (dir / "run-set" / "checkpoint").string(), "--encode", save_set("pythia", "pythia-70m"),
                                          "--codes", (dir / "codes-set").string()},
                          dir / "convert");
  BOOST_TEST(pythia.code == 2);
  BOOST_TEST(pythia.err.find("model 'gpt2' vs 'pythia-70m'") != std::string::npos, pythia.err);
}

// sae-grid, sae-sweep and sae-compare take a shard set (here a 4-D array cut into two .npy shards)
// and train bitwise what they train on the one file: every result's metrics and (sae-sweep
// --keep-weights) every weight file the same.
BOOST_AUTO_TEST_CASE(sweeps_take_shard_sets_and_train_what_the_file_trains) {
  sae::test::ScratchDir dir("cli-sweep-sets");
  const index_t rows = 300, width = 2 * 2 * 8;
  const sae::Matrix<float> four = sae::test::random_matrix<float>(rows, width, 51);
  sae::io::save_npy(dir / "acts.npy", four.data(), {rows, 2, 2, 8});
  fs::create_directories(dir / "set");
  sae::io::save_npy(dir / "set" / "part-0.npy", four.data(), {120, 2, 2, 8});
  sae::io::save_npy(dir / "set" / "part-1.npy", four.data() + 120 * width, {rows - 120, 2, 2, 8});
  // A result's metrics without what may differ between the two runs (its time; the data's files).
  const auto metrics_of = [](const fs::path& file) {
    const sae::io::Json result = sae::io::read_json_file(file.string());
    sae::io::Json kept = sae::io::Json::object();
    for (const auto& [key, value] : result.as_object())
      if (key != "fingerprint" && key != "seconds") kept[key] = value;
    return kept.dump();
  };
  struct Case {
    std::string program;
    std::vector<std::string> args;
  };
  for (const Case& c : {Case{"sae-grid", {"--layer", "1", "--position", "1", "--ks", "2,3"}},
                        Case{"sae-sweep", {"--ks", "2", "--keep-weights"}},
                        Case{"sae-compare", {"--position", "1", "--ks", "2", "--jumprelu-runs", "2"}}}) {
    BOOST_TEST_CONTEXT(c.program) {
      std::map<std::string, std::string> seen[2];
      for (int on_set = 0; on_set < 2; ++on_set) {
        std::vector<std::string> args = {"--data", (dir / (on_set ? "set" : "acts.npy")).string(), "--latents", "16",
                                         "--epochs", "1", "--no-plots"};
        args.insert(args.end(), c.args.begin(), c.args.end());
        const fs::path out = dir / (c.program + (on_set ? "-set" : "-file"));
        args.insert(args.end(), {"--out", out.string()});
        const Exit e = run(c.program, args, dir / "log");
        BOOST_REQUIRE_MESSAGE(e.code == 0, e.err);
        for (const auto& entry : fs::recursive_directory_iterator(out / "configs"))
          if (entry.path().extension() == ".json") seen[on_set][fs::relative(entry.path(), out).string()] = metrics_of(entry.path());
        if (fs::exists(out / "weights"))
          for (const auto& entry : fs::recursive_directory_iterator(out / "weights"))
            if (entry.path().extension() == ".npy") seen[on_set][fs::relative(entry.path(), out).string()] = sae::test::read_file(entry.path());
      }
      BOOST_TEST(seen[0].size() >= 2u);
      BOOST_TEST((seen[0] == seen[1]));
    }
  }
}

BOOST_AUTO_TEST_CASE(outputs_go_only_where_nothing_can_be_lost) {
  // A program writes only into a new or empty folder or one of its own runs, never over or into
  // what it reads; every refusal leaves the folder as it was.
  sae::test::ScratchDir dir("cli-own");
  const fs::path l4 = dir / "l4";
  const Exit trained = run("sae-train", {"--data", kData, "-k", "4", "--latents", "32", "--epochs", "1", "--quiet",
                                         "--out", l4.string()}, dir / "train");
  BOOST_REQUIRE_MESSAGE(trained.code == 0, trained.err);
  const auto before = snapshot(l4);
  const std::string ckpt = (l4 / "checkpoint").string();
  fs::create_directories(dir / "foreign");
  std::ofstream(dir / "foreign" / "notes.txt") << "mine";
  std::ofstream(dir / "plain_file") << "x";
  fs::create_directories(dir / "mine");
  fs::copy_file(kData, dir / "mine" / "acts.npy");
  const auto refused = [&](const std::string& program, const std::vector<std::string>& args,
                           const std::vector<std::string>& fragments) {
    std::string line = program;
    for (const auto& a : args) line += " " + a;
    BOOST_TEST_CONTEXT(line) {
      const Exit e = run(program, args, dir / "refused");
      BOOST_TEST(e.code != 0);
      BOOST_TEST(e.code < 128, "crashed: " << e.err);
      for (const auto& f : fragments) BOOST_TEST(e.err.find(f) != std::string::npos, "'" << f << "' not in: " << e.err);
      BOOST_TEST(std::count(e.err.begin(), e.err.end(), '\n') == 1, e.err);  // one line
    }
  };
  refused("sae-convert", {"--from", ckpt, "--to", l4.string()}, {"--to", "holds the input --from"});
  refused("sae-convert", {"--from", ckpt, "--to", ckpt}, {"--to", "is the input --from"});
  refused("sae-convert", {"--from", ckpt, "--to", (dir / "foreign").string()}, {"foreign", "no sae run wrote", "'notes.txt'"});
  refused("sae-convert", {"--from", ckpt, "--to", (dir / "plain_file").string()}, {"plain_file", "not a directory"});
  refused("sae-convert", {"--from", ckpt, "--to", (dir / "x").string(), "--encode", kData, "--codes", (dir / "x").string()},
          {"--codes", "is the output --to"});
  refused("sae-convert", {"--from", ckpt, "--encode", kData, "--codes", (dir / "foreign").string()}, {"foreign", "no sae run wrote"});
  refused("sae-train", {"--data", (dir / "mine" / "acts.npy").string(), "--out", (dir / "mine").string()},
          {"--out", "holds the input --data"});
  BOOST_TEST(snapshot(l4) == before);
  BOOST_TEST(sae::test::read_file(dir / "foreign" / "notes.txt") == "mine");
  // Its own folder is sae-convert's to replace (a format change leaves no stale file); another
  // program may not take it.
  const fs::path exported = dir / "exported";
  for (const char* format : {"checkpoint", "saelens"}) {
    const Exit e = run("sae-convert", {"--from", ckpt, "--to", exported.string(), "--format", format}, dir / "convert");
    BOOST_REQUIRE_MESSAGE(e.code == 0, e.err);
  }
  BOOST_TEST(!fs::exists(exported / "config.json"));
  BOOST_TEST(fs::exists(exported / "cfg.json"));
  refused("sae-train", {"--data", kData, "--out", exported.string()}, {"exported", "holds a sae-convert run"});
  refused("sae-convert", {"--from", exported.string(), "--to", ckpt}, {"is among the outputs of", "a sae-train run folder"});
  BOOST_TEST(snapshot(l4) == before);
}

BOOST_AUTO_TEST_CASE(a_conversion_killed_at_any_rename_is_finished_or_undone_by_the_next_program) {
  sae::test::ScratchDir dir("cli-convert-kill");
  const Exit trained = run("sae-train", {"--data", kData, "-k", "4", "--latents", "32", "--epochs", "1", "--quiet",
                                         "--out", (dir / "run").string()}, dir / "train");
  BOOST_REQUIRE_MESSAGE(trained.code == 0, trained.err);
  const std::string ckpt = (dir / "run" / "checkpoint").string();
  const fs::path to = dir / "to";
  for (const std::string at : {"replace-filled", "replace-exchanged", "commit-marked", "commit-rename:1", "commit-rename:3"}) {
    BOOST_TEST_CONTEXT(at) {
      fs::remove_all(to);
      BOOST_REQUIRE(run("sae-convert", {"--from", ckpt, "--to", to.string(), "--format", "checkpoint"}, dir / "first").code == 0);
      ::setenv("SAE_TEST_KILL_AT", at.c_str(), 1);
      const Exit killed = run("sae-convert", {"--from", ckpt, "--to", to.string(), "--format", "saelens"}, dir / "killed");
      ::unsetenv("SAE_TEST_KILL_AT");
      BOOST_TEST(killed.code == 128 + SIGKILL);
      // The next program to read the folder sees one whole SAE: the new one, or the old one when
      // the kill came before anything was published.
      const Exit read = run("sae-convert", {"--from", to.string(), "--encode", kData, "--codes", (dir / ("codes-" + at)).string()},
                            dir / "read");
      BOOST_TEST(read.code == 0, read.err);
      const bool published = at.rfind("commit", 0) == 0;
      BOOST_TEST(fs::exists(to / "cfg.json") == published);
      BOOST_TEST(fs::exists(to / "config.json") == !published);
      BOOST_TEST(read.out.find(published ? "saelens folder" : "checkpoint (topk)") != std::string::npos, read.out);
    }
  }
}
