// Flags and metrics that mean nothing, as a user meets them: a flag that would do nothing in the
// combination given is refused in one line naming it (defaults, and defaults restated in a config
// file, never are); an empty path is refused naming its flag; a user's --data never pairs with the
// bundled early layer; an undefined EV (one validation row) is reported as undefined, not compared.
#define BOOST_TEST_MODULE cli_flags
#include "cli_process.hpp"
#include "test_helpers.hpp"

#include <sae/sae.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using sae::index_t;

namespace {

using namespace sae::test::cli;

const std::string kLate = std::string(SAE_SOURCE_DIR) + "/examples/data/activations_layer4_pos3.npy";
const std::string kEarly = std::string(SAE_SOURCE_DIR) + "/examples/data/activations_layer1_pos3.npy";
const std::string kSweep = std::string(SAE_SOURCE_DIR) + "/tests/data/sweep_4d.npy";
// A tiny planted sae-train run.
const std::vector<std::string> kTiny = {"--planted-samples", "200", "--planted-dim", "8", "--planted-features", "12",
                                        "--planted-k", "2", "--latents", "16", "-k", "2", "--batch-size", "64", "--quiet"};

struct Case {
  std::string program;
  std::vector<std::string> args;
  std::vector<std::string> says;  // the one line names these
};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// Each case is refused as a usage error (exit 2) in one line "program: --flag: ...", and trains nothing.
void check_refused(const std::vector<Case>& cases, const fs::path& dir) {
  for (const auto& c : cases) {
    std::string line = c.program;
    for (const auto& a : c.args) line += " '" + a + "'";
    BOOST_TEST_CONTEXT(line) {
      const fs::path out = dir / "out";
      fs::remove_all(out);
      const Exit e = run(c.program, with(c.args, {"--no-plots", "--out", out.string()}), dir / "log");
      BOOST_TEST(e.code == 2, "exit " << e.code << "; stderr: " << e.err);
      BOOST_TEST(e.err.find(c.program + ": ") == 0u, "stderr: " << e.err);
      BOOST_TEST(std::count(e.err.begin(), e.err.end(), '\n') == 1, "stderr: " << e.err);
      for (const auto& s : c.says) BOOST_TEST(e.err.find(s) != std::string::npos, "'" << s << "' missing from: " << e.err);
      BOOST_TEST(e.out.find("epoch ") == std::string::npos, "it trained: " << e.out);
    }
  }
}

}  // namespace

// sae-train has no --no-plots; its cases go through their own loop.
BOOST_AUTO_TEST_CASE(sae_train_refuses_flags_that_do_nothing_in_the_combination_given) {
  sae::test::ScratchDir dir("cli-flags-train");
  const std::vector<Case> cases = {
      // optimizer-specific flags with the other optimizer
      {"sae-train", with(kTiny, {"--momentum", "0.5"}), {"--momentum: does nothing with --optimizer adam"}},
      {"sae-train", with(kTiny, {"--optimizer", "adam", "--momentum", "0.9"}), {"--momentum: does nothing"}},
      // schedule flags without what they modify
      {"sae-train", with(kTiny, {"--final-lr-fraction", "0.1"}), {"--final-lr-fraction: does nothing without --lr-decay"}},
      // AuxK's flags without AuxK
      {"sae-train", with(kTiny, {"--aux-alpha", "0.1"}), {"--aux-alpha: does nothing without --aux-k"}},
      {"sae-train", with(kTiny, {"--dead-window", "100"}), {"--dead-window: does nothing without --aux-k or --resample-every"}},
      // a warmup as long as the run (200 rows: 160 train, 3 batches of 64, 2 epochs = 6 steps)
      {"sae-train", with(kTiny, {"--epochs", "2", "--warmup-steps", "6"}), {"--warmup-steps", "run of 6 steps", "got 6"}},
      {"sae-train", with(kTiny, {"--epochs", "2", "--warmup-steps", "60"}), {"--warmup-steps", "run of 6 steps"}},
      {"sae-train", with(kTiny, {"--epochs", "2", "--warmup-steps", "5", "--lr-decay", "cosine"}),
       {"--lr-decay: does nothing", "no step is left"}},
      // epoch-count flags that cannot act before the last epoch
      {"sae-train", with(kTiny, {"--epochs", "3", "--early-stop", "2"}), {"--early-stop: does nothing with --epochs 3"}},
      {"sae-train", with(kTiny, {"--epochs", "3", "--checkpoint-every", "3"}), {"--checkpoint-every: does nothing with --epochs 3"}},
      // row-order and reading flags without what they modify
      {"sae-train", with(kTiny, {"--shuffle-window", "8"}), {"--shuffle-window: does nothing without --shuffle-block"}},
      {"sae-train", with(kTiny, {"--stream", "--mpi"}), {"--stream: does nothing with --mpi"}},
      // planted-data flags with a file, file flags without one
      {"sae-train", {"--data", kEarly, "--planted-dim", "8", "--quiet"}, {"--planted-dim", "does nothing with --data"}},
      {"sae-train", with(kTiny, {"--layer", "1"}), {"--layer", "without --data"}},
      // architecture-specific flags with another architecture
      {"sae-train", with(kTiny, {"--arch", "batchtopk", "--selection", "magnitude"}), {"--selection is for --arch topk only"}},
      {"sae-train", with(kTiny, {"--arch", "topk", "--l0-coefficient", "0.5"}), {"--l0-coefficient is for --arch jumprelu only"}},
      {"sae-train", with(kTiny, {"--arch", "jumprelu", "--recipe", "modern"}), {"--recipe modern is for --arch topk only"}},
      // empty paths
      {"sae-train", with(kTiny, {"--data", ""}), {"--data: empty path"}},
      {"sae-train", with(kTiny, {"--data="}), {"--data: empty path"}},
      {"sae-train", {"--data", kEarly, "--target-data", ""}, {"--target-data: empty path"}},
      {"sae-train", with(kTiny, {"--config", ""}), {"--config: empty path"}},
      {"sae-train", with(kTiny, {"--tied-init=false"}), {"--tied-init: a switch takes no value", "'--tied-init=false'"}},
  };
  for (const auto& c : cases) {
    std::string line = c.program;
    for (const auto& a : c.args) line += " '" + a + "'";
    BOOST_TEST_CONTEXT(line) {
      const fs::path out = dir / "out";
      const Exit e = run(c.program, with(c.args, {"--out", out.string()}), dir / "log");
      BOOST_TEST(e.code == 2, "exit " << e.code << "; stderr: " << e.err);
      BOOST_TEST(e.err.find("sae-train: ") == 0u, "stderr: " << e.err);
      BOOST_TEST(std::count(e.err.begin(), e.err.end(), '\n') == 1, "stderr: " << e.err);
      for (const auto& s : c.says) BOOST_TEST(e.err.find(s) != std::string::npos, "'" << s << "' missing from: " << e.err);
      BOOST_TEST(!fs::exists(out / "metrics.json"));
    }
  }
  const Exit e = run("sae-train", with(kTiny, {"--out", ""}), dir / "log");
  BOOST_TEST(e.code == 2);
  BOOST_TEST(e.err == "sae-train: --out: empty path\n");
}

BOOST_AUTO_TEST_CASE(the_same_flags_are_accepted_where_they_act_and_defaults_are_never_refused) {
  sae::test::ScratchDir dir("cli-flags-accepted");
  // Every flag above, in a combination where each acts: trains.
  Exit e = run("sae-train", with(kTiny, {"--epochs", "4", "--optimizer", "sgd", "--momentum", "0.5", "--warmup-steps", "2",
                                         "--lr-decay", "linear", "--final-lr-fraction", "0.1", "--aux-k", "2", "--aux-alpha",
                                         "0.1", "--dead-window", "100", "--shuffle-block", "16", "--shuffle-window", "4",
                                         "--early-stop", "2", "--checkpoint-every", "2", "--out", (dir / "a").string()}),
               dir / "log");
  BOOST_TEST(e.code == 0, e.err);
  // A config file restating defaults (as resolved_config.json does for every flag) gives nothing:
  // the run's own record, fed back, is accepted.
  e = run("sae-train", with(kTiny, {"--epochs", "2", "--out", (dir / "b").string()}), dir / "log");
  BOOST_REQUIRE_MESSAGE(e.code == 0, e.err);
  const std::string resolved = sae::test::read_file(dir / "b" / "resolved_config.json");
  BOOST_TEST(resolved.find("\"momentum\"") != std::string::npos);
  BOOST_TEST(resolved.find("\"aux-alpha\"") != std::string::npos);
  e = run("sae-train", {"--config", (dir / "b" / "resolved_config.json").string(), "--out", (dir / "c").string()}, dir / "log");
  BOOST_TEST(e.code == 0, e.err);
  // A value from a config file that does nothing in the combination (a saved SGD run rerun with
  // --optimizer adam) is not refused but named once, with the file, as ignored; the same value on
  // the command line is refused.
  const std::string sgd_run = (dir / "a" / "resolved_config.json").string();
  e = run("sae-train", {"--config", sgd_run, "--optimizer", "adam", "--out", (dir / "d").string()}, dir / "log");
  BOOST_TEST(e.code == 0, e.err);
  BOOST_TEST(e.err.find("note: --momentum: does nothing with --optimizer adam") != std::string::npos, e.err);
  BOOST_TEST(e.err.find("(the value is from " + sgd_run + "); ignored") != std::string::npos, e.err);
  const auto resolved_d = sae::io::read_json_file((dir / "d" / "resolved_config.json").string());
  BOOST_TEST(resolved_d.find("optimizer")->as_string() == "adam");
  e = run("sae-train", {"--config", sgd_run, "--optimizer", "adam", "--momentum", "0.5", "--out", (dir / "e").string()},
          dir / "log");
  BOOST_TEST(e.code == 2);
  BOOST_TEST(e.err.find("sae-train: --momentum: does nothing with --optimizer adam") == 0u, e.err);
  // A planted run's config rerun on a file: its --planted-* values are noted, not refused.
  std::ofstream(dir / "run.json") << R"({"planted-features": 12, "latents": 16, "topk": 2, "epochs": 1})";
  e = run("sae-train", {"--config", (dir / "run.json").string(), "--data", kLate, "--out", (dir / "f").string(), "--quiet"},
          dir / "log");
  BOOST_TEST(e.code == 0, e.err);
  BOOST_TEST(e.err.find("note: --planted-features shapes planted rows") != std::string::npos, e.err);
}

BOOST_AUTO_TEST_CASE(grid_programs_refuse_flags_that_do_nothing) {
  sae::test::ScratchDir dir("cli-flags-grid");
  // The bundled slice: 5,978 training rows, 24 batches of 256 a epoch.
  const std::vector<std::string> grid = {"--ks", "4", "--latents", "16", "--epochs", "1"};
  std::vector<Case> cases;
  for (const std::string program : {"sae-grid", "sae-sweep", "sae-matryoshka", "sae-hierarchy", "sae-large-k"}) {
    // (sae-hierarchy at its own one-point grid: its default rank ranges need 512 latents)
    const std::vector<std::string> base = program == "sae-sweep"     ? with(grid, {"--data", kSweep})
                                          : program == "sae-large-k" ? with(grid, {"--ranks", "1-8"})
                                          : program == "sae-hierarchy" ? std::vector<std::string>{"--epochs", "1"}
                                                                       : grid;
    cases.push_back({program, with(base, {"--aux-alpha", "0.1"}), {"--aux-alpha: does nothing without --aux-k"}});
    cases.push_back({program, with(base, {"--dead-window", "5"}), {"--dead-window: does nothing without --aux-k"}});
    cases.push_back({program, with(base, {"--final-lr-fraction", "0.5"}), {"--final-lr-fraction: does nothing without --lr-decay"}});
    cases.push_back({program, with(base, {"--warmup-steps", "100000"}), {"--warmup-steps", "expected fewer steps than the run has"}});
    cases.push_back({program, with(base, {"--data", ""}), {"--data: empty path"}});
  }
  cases.push_back({"sae-grid", with(grid, {"--warmup-steps", "24"}), {"--warmup-steps", "run of 24 steps (1 epochs x 24 batches)"}});
  cases.push_back({"sae-grid", with(grid, {"--warmup-steps", "23", "--lr-decay", "linear"}), {"--lr-decay: does nothing"}});
  cases.push_back({"sae-grid", with(grid, {"--samples", ""}), {"--samples: empty path"}});
  cases.push_back({"sae-grid", with(grid, {"--recipe", "modern", "--aux-alpha", "0.1"}), {"drop --aux-alpha"}});
  cases.push_back({"sae-large-k", with(grid, {"--samples", ""}), {"--samples: empty path"}});
  check_refused(cases, dir.path);
}

BOOST_AUTO_TEST_CASE(sae_compare_refuses_the_flags_of_variants_it_does_not_train) {
  sae::test::ScratchDir dir("cli-flags-compare");
  const std::vector<std::string> grid = {"--ks", "4", "--latents", "16", "--epochs", "1"};
  check_refused({{"sae-compare", with(grid, {"--variants", "topk,batchtopk", "--aux-k", "8"}),
                  {"--aux-k: does nothing without auxk in --variants"}},
                 {"sae-compare", with(grid, {"--variants", "auxk", "--jumprelu-runs", "2"}),
                  {"--jumprelu-runs: does nothing without jumprelu in --variants"}},
                 {"sae-compare", with(grid, {"--variants", "topk", "--jumprelu-bandwidth", "0.5"}), {"--jumprelu-bandwidth: does nothing"}},
                 {"sae-compare", with(grid, {"--variants", "modern", "--l0-tolerance", "0.2"}), {"--l0-tolerance: does nothing"}},
                 {"sae-compare", with(grid, {"--data", ""}), {"--data: empty path"}}},
                dir.path);
}

// The bundled early layer matches only the bundled late one: a user's --data needs their early
// layer (or --early-layer), and the missing flag is named, not samples.jsonl.
BOOST_AUTO_TEST_CASE(bundled_defaults_never_pair_with_the_users_data) {
  sae::test::ScratchDir dir("cli-flags-bundled");
  sae::io::save_npy(dir / "mine.npy", sae::test::random_matrix<float>(50, 8, 3));
  const std::string mine = (dir / "mine.npy").string();
  std::vector<Case> cases;
  for (const std::string program : {"sae-matryoshka", "sae-hierarchy"}) {
    const std::vector<std::string> base = program == "sae-hierarchy" ? std::vector<std::string>{"--epochs", "1"}
                                                                     : std::vector<std::string>{"--ks", "4", "--latents", "16", "--epochs", "1"};
    cases.push_back({program, with(base, {"--data", mine}), {"--early-data: required with --data", "--early-layer"}});
    cases.push_back({program, with(base, {"--data", kLate}), {"--early-data: required with --data"}});
    cases.push_back({program, with(base, {"--early-data", mine}), {"--data: required with --early-data"}});
    cases.push_back({program, with(base, {"--data", mine, "--early-data", mine, "--early-layer", "1"}),
                     {"--early-data: does nothing with --early-layer"}});
    cases.push_back({program, with(base, {"--data", mine, "--early-data", mine}), {"--samples: required", "samples.jsonl"}});
    cases.push_back({program, with(base, {"--early-data", ""}), {"--early-data: empty path"}});
  }
  cases.push_back({"sae-large-k", {"--ks", "4", "--latents", "16", "--ranks", "1-8", "--data", mine}, {"--samples: required"}});
  check_refused(cases, dir.path);
}

// One validation row has no variance: its EV is undefined, reported as such (n/a, null) and never
// counted as "no lower" against TopK.
BOOST_AUTO_TEST_CASE(sae_compare_reports_an_undefined_ev_as_undefined) {
  sae::test::ScratchDir dir("cli-flags-one-row");
  sae::io::save_npy(dir / "rows.npy", sae::test::random_matrix<float>(20, 8, 5));
  const Exit e = run("sae-compare", {"--data", (dir / "rows.npy").string(), "--val-fraction", "0.05", "--ks", "2", "--latents",
                                     "8", "--epochs", "1", "--variants", "topk,batchtopk", "--no-plots", "--out",
                                     (dir / "out").string()},
                     dir / "log");
  BOOST_REQUIRE_MESSAGE(e.code == 0, e.err);
  BOOST_TEST(e.out.find("1 validation") != std::string::npos, e.out);
  const std::string report = sae::test::read_file(dir / "out" / "report.md");
  BOOST_TEST(report.find("n/a /") != std::string::npos, report);
  BOOST_TEST(report.find("EV undefined at every point") != std::string::npos, report);
  BOOST_TEST(report.find("EV no lower") == std::string::npos, report);
  const auto doc = sae::io::read_json_file((dir / "out" / "compare.json").string());
  for (const auto& r : doc.at("results").as_array()) BOOST_TEST(r.at("explained_variance").is_null());
  BOOST_TEST(sae::test::read_file(dir / "out" / "compare.csv").find(",n/a,") != std::string::npos);
  // A rerun reuses the cached results, undefined EVs included.
  const Exit again = run("sae-compare", {"--data", (dir / "rows.npy").string(), "--val-fraction", "0.05", "--ks", "2",
                                         "--latents", "8", "--epochs", "1", "--variants", "topk,batchtopk", "--no-plots",
                                         "--out", (dir / "out").string()},
                         dir / "log");
  BOOST_TEST(again.code == 0, again.err);
  BOOST_TEST(sae::test::read_file(dir / "out" / "report.md") == report);
}
