// Output folders (lock, staging, commit, roll-forward, manifest), fingerprints, and JSON that
// stays valid whatever text goes in.
#define BOOST_TEST_MODULE run_directory
#include "test_helpers.hpp"

#include <sae/data/activations.hpp>
#include <sae/io/fingerprint.hpp>
#include <sae/io/json.hpp>
#include <sae/io/npy.hpp>
#include <sae/io/run_directory.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>
#include <fstream>
#include <functional>
#include <sstream>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using sae::io::RunDirectory;

namespace {
void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}
std::vector<fs::path> stagings(const fs::path& out) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().rfind(RunDirectory::kStagingPrefix, 0) == 0) v.push_back(e.path());
  return v;
}
}  // namespace

BOOST_AUTO_TEST_CASE(commit_publishes_and_an_unfinished_run_publishes_nothing) {
  sae::test::ScratchDir dir("rundir");
  const fs::path out = dir / "out";
  {
    RunDirectory run(out, "test");
    write(run.stage("report.md"), "one");
    write(run.stage("configs/a.json"), "A1");
    write(run.stage("figures/f.png"), "png");
    BOOST_TEST(!fs::exists(out / "report.md"));  // nothing visible before commit
    run.commit({"configs"});
  }
  BOOST_TEST(sae::test::read_file(out / "report.md") == "one");
  BOOST_TEST(sae::test::read_file(out / "configs/a.json") == "A1");
  BOOST_TEST(stagings(out).empty());
  write(out / "user_notes.txt", "mine");
  {  // fails: everything stays, its files wait in its staging folder
    RunDirectory run(out, "test");
    run.set_quiet(true);
    write(run.stage("report.md"), "two");
  }
  BOOST_TEST(sae::test::read_file(out / "report.md") == "one");
  BOOST_REQUIRE_EQUAL(stagings(out).size(), 1u);
  BOOST_TEST(sae::test::read_file(stagings(out).front() / "report.md") == "two");
  {  // succeeds without regenerating the figure: the stale figure goes, cached results and the
     // user's file stay, and the failed run's staging folder is cleaned
    RunDirectory run(out, "test");
    write(run.stage("report.md"), "three");
    write(run.stage("configs/b.json"), "B");
    run.commit({"configs"});
  }
  BOOST_TEST(sae::test::read_file(out / "report.md") == "three");
  BOOST_TEST(!fs::exists(out / "figures/f.png"));
  BOOST_TEST(sae::test::read_file(out / "configs/a.json") == "A1");
  BOOST_TEST(sae::test::read_file(out / "configs/b.json") == "B");
  BOOST_TEST(sae::test::read_file(out / "user_notes.txt") == "mine");
  BOOST_TEST(stagings(out).empty());
}

BOOST_AUTO_TEST_CASE(previous_copies_come_from_out_then_unfinished_runs) {
  sae::test::ScratchDir dir("rundir-prev");
  const fs::path out = dir / "out";
  {
    RunDirectory run(out, "test");
    run.set_quiet(true);
    write(run.stage("configs/x.json"), "from a killed run");
  }
  RunDirectory run(out, "test");
  const auto found = run.previous("configs/x.json");
  BOOST_REQUIRE_EQUAL(found.size(), 1u);
  run.adopt(found.front(), "configs/x.json");
  run.commit({"configs"});
  BOOST_TEST(sae::test::read_file(out / "configs/x.json") == "from a killed run");
}

BOOST_AUTO_TEST_CASE(a_commit_cut_short_is_completed_by_the_next_run) {
  sae::test::ScratchDir dir("rundir-roll");
  const fs::path out = dir / "out";
  write(out / "report.md", "old");
  write(out / "old_figure.png", "old");
  write(out / RunDirectory::kManifest, "report.md\nold_figure.png\n");
  write(out / RunDirectory::kOwner, "test\n");
  // What a run killed between its renames leaves: marker written, one file moved, one not.
  const fs::path staging = out / (std::string(RunDirectory::kStagingPrefix) + "00000000000000000001-1");
  write(staging / "data.csv", "new data");
  write(staging / RunDirectory::kManifest, "data.csv\nreport.md\n");
  write(staging / RunDirectory::kCommitMarker, "old_figure.png\n");
  write(out / "report.md", "new report");  // already moved
  {
    RunDirectory run(out, "test");
    run.set_quiet(true);
    BOOST_TEST(sae::test::read_file(out / "data.csv") == "new data");
    BOOST_TEST(sae::test::read_file(out / "report.md") == "new report");
    BOOST_TEST(!fs::exists(out / "old_figure.png"));
    BOOST_TEST(!fs::exists(staging));
  }
}

BOOST_AUTO_TEST_CASE(one_run_per_folder_and_bad_folders_are_named) {
  sae::test::ScratchDir dir("rundir-lock");
  const fs::path out = dir / "out";
  {
    RunDirectory first(out, "first-program");
    sae::test::require_throws_with<sae::io_error>([&] { RunDirectory second(out, "first-program"); },
                                                  {"another run is writing into this folder", "first-program, pid "});
  }
  RunDirectory again(out, "first-program");  // released with its holder
  again.set_quiet(true);
  write(dir / "file", "x");
  sae::test::require_throws_with<sae::io_error>([&] { RunDirectory r(dir / "file", "t"); }, {"file", "not a directory"});
  sae::test::require_throws_with<sae::io_error>([&] { RunDirectory r("", "t"); }, {"empty"});
  // A run that fails before writing anything leaves no folder behind.
  { RunDirectory r(dir / "fresh", "t"); }
  BOOST_TEST(!fs::exists(dir / "fresh"));
}

BOOST_AUTO_TEST_CASE(fingerprints_name_every_difference) {
  using sae::io::Json;
  Json a = Json::object();
  a["library"] = "0.1.0";
  a["training"]["epochs"] = 25;
  a["training"]["lr"] = 0.001;
  a["data"]["content_hash"] = "abc";
  Json b = a;
  BOOST_TEST(sae::io::fingerprint_differences(a, b).empty());
  b["training"]["lr"] = 0.01;
  b["data"]["content_hash"] = "abd";
  b["seed"] = "3";
  const auto d = sae::io::fingerprint_differences(a, b);
  BOOST_REQUIRE_EQUAL(d.size(), 3u);
  BOOST_TEST(d[0] == "training.lr: 0.001 there, 0.01 now");
  BOOST_TEST(d[1] == "data.content_hash: 'abc' there, 'abd' now");
  BOOST_TEST(d[2] == "seed: not recorded there, '3' now");
}

BOOST_AUTO_TEST_CASE(content_hash_sees_any_change_and_only_content) {
  std::vector<unsigned char> bytes(1000);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 7 + 3);
  const std::string h = sae::io::content_hash(bytes.data(), bytes.size());
  BOOST_TEST(h == sae::io::content_hash(bytes.data(), bytes.size()));
  for (std::size_t at : {std::size_t{0}, std::size_t{31}, std::size_t{32}, std::size_t{500}, std::size_t{999}}) {
    auto changed = bytes;
    changed[at] ^= 1;
    BOOST_TEST(sae::io::content_hash(changed.data(), changed.size()) != h, "flip at " << at);
  }
  BOOST_TEST(sae::io::content_hash(bytes.data(), 999) != h);  // length counts
  // Swapping two 8-byte words of one lane changes the hash too (order matters).
  auto swapped = bytes;
  std::swap_ranges(swapped.begin(), swapped.begin() + 8, swapped.begin() + 32);
  BOOST_TEST(sae::io::content_hash(swapped.data(), swapped.size()) != h);
}

BOOST_AUTO_TEST_CASE(json_output_is_valid_utf8_whatever_the_input) {
  using sae::io::Json;
  // Invalid UTF-8 bytes (a Latin-1 'é', a lone continuation byte, a truncated sequence, an
  // encoded surrogate, an overlong '/') become U+FFFD; valid multi-byte text and controls survive.
  const std::string in = std::string("caf\xe9 \x80 \xe2\x82 \xed\xa0\x80 \xc0\xaf ok \xe2\x82\xac \xf0\x9f\x98\x80") + '\x01';
  const std::string dumped = Json(in).dump();
  const std::string r = "\xef\xbf\xbd";
  BOOST_TEST(dumped == "\"caf" + r + " " + r + " " + r + r + " " + r + r + r + " " + r + r +
                           " ok \xe2\x82\xac \xf0\x9f\x98\x80\\u0001\"");
  BOOST_TEST(Json::parse(dumped).as_string().find("\xe2\x82\xac") != std::string::npos);
  // Escapes: pairs decode, lone surrogates become U+FFFD rather than invalid bytes.
  BOOST_TEST(Json::parse("\"\\ud83d\\ude00\"").as_string() == "\xf0\x9f\x98\x80");
  BOOST_TEST(Json::parse("\"\\ud83d x\"").as_string() == r + " x");
  BOOST_TEST(Json::parse("\"\\ude00\"").as_string() == r);
  BOOST_TEST(Json::parse("\"\\ud83d\\u0041\"").as_string() == r + "A");
  // Strict grammar: what JSON does not allow is refused with the offset, never misread.
  for (const char* bad : {"01", "1.", ".5", "+1", "0x10", "1e", "-", "inf", "NaN", "1e999", "\"a\x01\"", "[1,]", "{\"a\" 1}"})
    BOOST_CHECK_THROW(Json::parse(bad), sae::io_error);
  const std::string deep(100000, '[');
  sae::test::require_throws_with<sae::io_error>([&] { Json::parse(deep); }, {"nested deeper than"});
  BOOST_TEST(Json::parse("-0.5e-2").as_number() == -0.005);
  // Found by the fuzzer: an integer field past what a long long holds is an error, not UB.
  BOOST_CHECK_THROW(Json::parse("4.6e89").as_int(), sae::error);
  BOOST_TEST(Json::parse("9007199254740992").as_int() == 9007199254740992LL);
}

BOOST_AUTO_TEST_CASE(non_finite_values_are_located_in_the_users_coordinates) {
  sae::test::ScratchDir dir("rundir-nan");
  std::vector<float> a(3 * 2 * 4 * 5, 1.0f);
  a[((2 * 2 + 1) * 4 + 3) * 5 + 4] = std::numeric_limits<float>::quiet_NaN();  // sample 2, layer 1, position 3, dim 4
  sae::io::save_npy(dir / "a.npy", a.data(), {3, 2, 4, 5});
  sae::test::require_throws_with<sae::io_error>(
      [&] { sae::data::load_activations<float>(dir / "a.npy", sae::data::LayerPosition{1, 3}); },
      {"a.npy", "(sample 2, layer 1, position 3, dimension 4)"});
  BOOST_CHECK_NO_THROW(sae::data::load_activations<float>(dir / "a.npy", sae::data::LayerPosition{0, 3}));
  std::vector<float> b(6, 0.5f);
  b[4] = std::numeric_limits<float>::infinity();
  sae::io::save_npy(dir / "b.npy", b.data(), {3, 2});
  sae::test::require_throws_with<sae::io_error>([&] { sae::data::load_activations<float>(dir / "b.npy"); },
                                                {"b.npy", "(sample 2, dimension 0)"});
}

// ---- Nothing lost: ownership, outputs apart from inputs, replacements killed at any rename ----

namespace {
// Runs `body` in a child process (with SAE_TEST_KILL_AT=`kill_at`) and says whether it died by SIGKILL.
bool killed_in_child(const std::string& kill_at, const std::function<void()>& body, bool no_exchange = false) {
  std::cout.flush();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("SAE_TEST_KILL_AT", kill_at.c_str(), 1);
    if (no_exchange) ::setenv("SAE_TEST_NO_RENAME_EXCHANGE", "1", 1);
    try {
      body();
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}
std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}
}  // namespace

BOOST_AUTO_TEST_CASE(a_run_writes_only_into_a_new_empty_or_own_folder) {
  sae::test::ScratchDir dir("rundir-own");
  // Files no run wrote: refused, and the folder gains nothing (not even a lock file).
  write(dir / "mine" / "notes.txt", "keep me");
  sae::test::require_throws_with<sae::io_error>([&] { RunDirectory r(dir / "mine", "sae-train"); },
                                                {"mine", "1 file(s) no sae run wrote", "'notes.txt'", "choose another"});
  BOOST_TEST(names_in(dir / "mine") == std::vector<std::string>{"notes.txt"});
  // Another program's run: refused whole and nested; the same program's (nested too) is fine.
  {
    RunDirectory grid(dir / "grid", "sae-grid");
    write(grid.stage("report.md"), "grid report");
    write(grid.stage("figures/pareto.png"), "png");
    grid.commit();
  }
  const auto grid_files = names_in(dir / "grid");
  sae::test::require_throws_with<sae::io_error>([&] { RunDirectory r(dir / "grid", "sae-train"); },
                                                {"grid", "holds a sae-grid run", "sae-train writes only"});
  sae::test::require_throws_with<sae::io_error>([&] { RunDirectory r(dir / "grid" / "figures", "sae-train"); },
                                                {"is among the outputs of", "a sae-grid run folder", "figures/pareto.png"});
  BOOST_TEST(names_in(dir / "grid") == grid_files);
  BOOST_TEST(sae::test::read_file(dir / "grid" / "report.md") == "grid report");
  BOOST_TEST(sae::test::read_file(dir / "grid" / "figures" / "pareto.png") == "png");
  {  // beside its outputs, another program's run may live (the defaults results/ and results/matryoshka)
    RunDirectory beside(dir / "grid" / "matryoshka", "sae-matryoshka");
    write(beside.stage("report.md"), "matryoshka report");
    beside.commit();
  }
  { RunDirectory again(dir / "grid", "sae-grid"); }
  BOOST_TEST(sae::test::read_file(dir / "grid" / "matryoshka" / "report.md") == "matryoshka report");
  {  // and the other way round: results/matryoshka first, then the grid into results
    RunDirectory first(dir / "results" / "matryoshka", "sae-matryoshka");
    write(first.stage("report.md"), "m");
    first.commit();
  }
  { RunDirectory grid_after(dir / "results", "sae-grid"); }
  { RunDirectory nested(dir / "grid" / "shards" / "0-of-2", "sae-grid"); }
  // A run of an earlier version (manifest, no owner): refused until the user names its program.
  write(dir / "old" / RunDirectory::kManifest, "report.md\n");
  write(dir / "old" / "report.md", "old report");
  sae::test::require_throws_with<sae::io_error>([&] { RunDirectory r(dir / "old", "sae-grid"); },
                                                {"earlier version", ".sae-run"});
  write(dir / "old" / RunDirectory::kOwner, "sae-grid\n");
  { RunDirectory adopted(dir / "old", "sae-grid"); }
  // An empty folder is taken and marked.
  fs::create_directories(dir / "empty");
  {
    RunDirectory r(dir / "empty", "sae-train");
    write(r.stage("metrics.json"), "{}");
    r.commit();
  }
  BOOST_TEST(RunDirectory::owner_of(dir / "empty") == "sae-train");
}

BOOST_AUTO_TEST_CASE(an_output_is_never_an_input_of_the_same_run) {
  sae::test::ScratchDir dir("rundir-inputs");
  write(dir / "runs" / "l4" / "checkpoint" / "config.json", "{}");
  write(dir / "acts.npy", "x");
  const auto refuses = [&](const fs::path& out, const fs::path& in, const std::string& how) {
    BOOST_TEST_CONTEXT(out.string() << " vs " << in.string()) {
      sae::test::require_throws_with<sae::invalid_argument>(
          [&] { sae::io::require_apart_from_inputs(out, "--to", {{"--from", in}}); }, {"--to", how, "--from"});
    }
  };
  refuses(dir / "runs" / "l4", dir / "runs" / "l4" / "checkpoint", "holds the input");
  refuses(dir / "runs" / "l4" / "checkpoint", dir / "runs" / "l4" / "checkpoint", "is the input");
  refuses(dir / "runs" / "l4" / "checkpoint" / "x", dir / "runs" / "l4", "is inside the input");
  refuses(dir / "runs" / "l4" / "." / "checkpoint" / "", dir / "runs" / "l4" / "checkpoint", "is the input");
  refuses(dir / "acts.npy", dir / "runs" / ".." / "acts.npy", "is the input");
  // Siblings and name prefixes do not overlap.
  sae::io::require_apart_from_inputs(dir / "runs" / "l4x", "--to", {{"--from", dir / "runs" / "l4"}});
  sae::io::require_apart_from_inputs(dir / "runs" / "l5", "--to", {{"--from", dir / "runs" / "l4" / "checkpoint"}});
}

BOOST_AUTO_TEST_CASE(a_directory_replacement_killed_at_any_rename_is_old_or_new_whole) {
  sae::test::ScratchDir dir("rundir-replace");
  const fs::path target = dir / "ckpt";
  struct Point {
    const char* at;
    bool no_exchange;
    const char* expected;  // after the next reader settles it
  };
  for (const Point p : {Point{"replace-filled", false, "old"}, Point{"replace-exchanged", false, "new"},
                        Point{"replace-filled", true, "old"}, Point{"replace-aside", true, "old"},
                        Point{"replace-in-place", true, "new"}}) {
    BOOST_TEST_CONTEXT(p.at << (p.no_exchange ? " (two renames)" : " (exchange)")) {
      fs::remove_all(target);
      write(target / "a.npy", "old");
      write(target / "b.npy", "old");
      const bool killed = killed_in_child(p.at, [&] {
        sae::io::write_directory_atomically(target, [](const fs::path& d) {
          write(d / "a.npy", "new");
          write(d / "b.npy", "new");
        });
      }, p.no_exchange);
      BOOST_REQUIRE(killed);
      sae::io::settle_directory_replacement(target);  // what every reader and writer does first
      BOOST_TEST(names_in(dir.path) == std::vector<std::string>{"ckpt"});
      BOOST_TEST(sae::test::read_file(target / "a.npy") == p.expected);
      BOOST_TEST(sae::test::read_file(target / "b.npy") == p.expected);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_commit_killed_at_each_rename_is_finished_by_the_next_reader) {
  sae::test::ScratchDir dir("rundir-commit-kill");
  const fs::path out = dir / "run";
  const std::vector<std::string> files = {"checkpoint/config.json", "checkpoint/w_dec.npy", "metrics.json"};
  const auto publish = [&](const std::string& text) {
    RunDirectory run(out, "sae-train");
    run.set_quiet(true);
    for (const auto& f : files) write(run.stage(f), text);
    run.commit();
  };
  for (const std::string at : {"commit-marked", "commit-rename:1", "commit-rename:2", "commit-rename:3"}) {
    BOOST_TEST_CONTEXT(at) {
      fs::remove_all(out);
      publish("old");
      BOOST_REQUIRE(killed_in_child(at, [&] { publish("new"); }));
      // A reader of the checkpoint finishes the commit instead of mixing the two runs' files...
      const auto reading = RunDirectory::settle_before_reading(out / "checkpoint");
      for (const auto& f : files) BOOST_TEST(sae::test::read_file(out / f) == "new", f);
      BOOST_TEST(stagings(out).empty());
    }
  }
  // ...and refuses while the run that is committing still holds the folder.
  fs::remove_all(out);
  publish("old");
  BOOST_REQUIRE(killed_in_child("commit-rename:1", [&] { publish("new"); }));
  const int fd = ::open((out / ".lock").c_str(), O_RDWR);
  BOOST_REQUIRE(fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0);
  sae::test::require_throws_with<sae::io_error>([&] { (void)RunDirectory::settle_before_reading(out / "checkpoint"); },
                                                {"checkpoint", "publishing its outputs right now"});
  ::close(fd);
  const auto reading = RunDirectory::settle_before_reading(out / "checkpoint");
  BOOST_TEST(sae::test::read_file(out / "metrics.json") == "new");
}

BOOST_AUTO_TEST_CASE(a_commit_waits_for_the_readers_of_its_folder) {
  sae::test::ScratchDir dir("rundir-reader-lock");
  const fs::path out = dir / "run";
  {
    RunDirectory run(out, "sae-train");
    write(run.stage("checkpoint/config.json"), "old");
    run.commit();
  }
  auto reading = RunDirectory::settle_before_reading(out / "checkpoint");
  BOOST_REQUIRE(reading.held());
  std::atomic<bool> published{false};
  std::thread writer([&] {
    RunDirectory run(out, "sae-train");
    write(run.stage("checkpoint/config.json"), "new");
    run.commit();
    published = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  BOOST_TEST(!published.load());  // the reader still sees one run's files whole
  BOOST_TEST(sae::test::read_file(out / "checkpoint/config.json") == "old");
  reading = RunDirectory::ReadGuard();
  writer.join();
  BOOST_TEST(published.load());
  BOOST_TEST(sae::test::read_file(out / "checkpoint/config.json") == "new");
  // And a shared hold does not stop another reader.
  const auto first = RunDirectory::settle_before_reading(out / "checkpoint");
  const auto second = RunDirectory::settle_before_reading(out);
  BOOST_TEST((first.held() && second.held()));
}
