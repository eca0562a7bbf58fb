// Output folders (lock, staging, commit, roll-forward, manifest), fingerprints, and JSON that
// stays valid whatever text goes in.
#define BOOST_TEST_MODULE run_directory
#include "test_helpers.hpp"

#include <sae/data/activations.hpp>
#include <sae/io/fingerprint.hpp>
#include <sae/io/json.hpp>
#include <sae/io/npy.hpp>
#include <sae/io/run_directory.hpp>

#include <fstream>
#include <sstream>

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
    sae::test::require_throws_with<sae::io_error>([&] { RunDirectory second(out, "second"); },
                                                  {"another run is writing into this folder", "first-program, pid "});
  }
  RunDirectory again(out, "third");  // released with its holder
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
