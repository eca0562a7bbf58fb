#define BOOST_TEST_MODULE sweep
#include "test_helpers.hpp"

#include <sae/train/sweep.hpp>

#include <sstream>

using sae::index_t;
using sae::SweepResult;

namespace {
std::filesystem::path write_array(const sae::test::ScratchDir& dir) {
  sae::Rng rng(5);
  const index_t n = 300, layers = 2, positions = 2, d = 8;
  std::vector<float> a(static_cast<std::size_t>(n * layers * positions * d));
  for (auto& v : a) v = static_cast<float>(rng.normal());
  const auto path = dir / "acts.npy";
  sae::io::save_npy(path, a.data(), {n, layers, positions, d});
  return path;
}

// The report-002 plan on the test array: 2 layers x 2 positions x 2 K x 2 latent_dim.
sae::SweepPlan options() {
  sae::SweepPlan o;
  o.slices.clear();
  for (index_t l : {0, 1})
    for (index_t p : {0, 1}) o.slices.push_back(sae::data::LayerPosition{l, p});
  o.ks = {1, 2};
  o.latents = {4, 8};
  o.train = sae::TrainConfig{2, 64, 3, true};
  o.validation_fraction = 0.2;
  return o;
}

// One run of the sweep into `out`, committed when it finishes (as sae-sweep does).
std::vector<SweepResult> sweep(const sae::data::ArraySet& view, const sae::SweepPlan& o, const std::filesystem::path& out,
                               std::function<void()> interrupt = {}) {
  sae::io::RunDirectory run(out, "sweep_test");
  run.set_quiet(true);
  std::ostringstream log;
  auto results = sae::run_sweep(view, o, run, {log, false}, std::move(interrupt));
  run.commit({"configs", "weights"});
  return results;
}

std::size_t files_in(const std::filesystem::path& dir) {
  return std::filesystem::exists(dir) ? static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir), {})) : 0;
}

std::map<std::string, SweepResult> by_name(const std::vector<SweepResult>& rs) {
  std::map<std::string, SweepResult> m;
  for (const auto& r : rs) m[sae::sweep_result_name(options(), r.slice, r.k, r.latents)] = r;
  return m;
}

void require_same_results(const std::vector<SweepResult>& a, const std::vector<SweepResult>& b) {
  const auto ma = by_name(a), mb = by_name(b);
  BOOST_REQUIRE_EQUAL(ma.size(), mb.size());
  for (const auto& [name, r] : ma) {
    BOOST_TEST_CONTEXT(name) {
      const auto& s = mb.at(name);
      BOOST_TEST(r.val.explained_variance == s.val.explained_variance);  // bitwise: same seed, same pass
      BOOST_TEST(r.val.dead_fraction == s.val.dead_fraction);
      BOOST_TEST(r.val.mse == s.val.mse);
      BOOST_TEST(r.val.max_activation == s.val.max_activation);
      BOOST_TEST(r.val.alive_latents == s.val.alive_latents);
    }
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(resumed_sweep_equals_uninterrupted_sweep) {
  sae::test::ScratchDir dir("sweep");
  const auto path = write_array(dir);
  const sae::data::ArraySet view(path);
  const auto full = sweep(view, options(), dir / "a");
  BOOST_TEST(full.size() == 16u);  // 2 layers x 2 positions x 2 K x 2 d

  // Killed in the middle of the second (layer, position) group: nothing is published, and the
  // first group's 4 SAEs survive in the run's staging folder, from which the next run resumes.
  int epochs_seen = 0;
  BOOST_CHECK_THROW(sweep(view, options(), dir / "b",
                          [&] {
                            if (++epochs_seen == 3) throw std::runtime_error("killed");
                          }),
                    std::runtime_error);
  BOOST_TEST(files_in(dir / "b" / "configs") == 0u);
  std::size_t staged = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "b"))
    if (e.path().filename().string().rfind(".staging-", 0) == 0) staged += files_in(e.path() / "configs");
  BOOST_TEST(staged == 4u);
  const auto resumed = sweep(view, options(), dir / "b");
  require_same_results(full, resumed);
  BOOST_TEST(files_in(dir / "b" / "configs") == 16u);
  for (const auto& e : std::filesystem::directory_iterator(dir / "b"))  // the stale staging folder is gone
    BOOST_TEST(e.path().filename().string().rfind(".staging-", 0) != 0);

  // A sweep spread over runs with max_groups gives the same results too.
  auto limited = options();
  limited.max_slices = 1;
  BOOST_TEST(sweep(view, limited, dir / "c").size() == 4u);
  BOOST_TEST(sweep(view, limited, dir / "c").size() == 8u);
  require_same_results(full, sweep(view, options(), dir / "c"));
}

BOOST_AUTO_TEST_CASE(sweep_refuses_results_of_other_settings) {
  sae::test::ScratchDir dir("sweep-fp");
  const auto path = write_array(dir);
  const sae::data::ArraySet view(path);
  sweep(view, options(), dir / "out");
  // Every setting that decides a result: a rerun with any one changed refuses, naming it.
  struct Change {
    const char* field;
    std::function<void(sae::SweepPlan&)> apply;
  };
  const std::vector<Change> changes = {
      {"training.epochs", [](auto& o) { o.train.epochs = 3; }},
      {"training.batch_size", [](auto& o) { o.train.batch_size = 32; }},
      {"training.seed", [](auto& o) { o.train.seed = 4; }},
      {"training.lr", [](auto& o) { o.adam.lr = 2e-3; }},
      {"split", [](auto& o) { o.validation_fraction = 0.25; }},
  };
  for (const auto& c : changes) {
    BOOST_TEST_CONTEXT(c.field) {
      auto o = options();
      c.apply(o);
      sae::test::require_throws_with<sae::io_error>([&] { sweep(view, o, dir / "out"); },
                                                    {"L0_P0_K1_d4.json", "other settings", c.field, "--force"});
      o.force = true;  // --force retrains instead
      BOOST_TEST(sweep(view, o, dir / "out").size() == 16u);
      auto back = options();  // the folder now holds o's results: back to the original ones
      back.force = true;
      sweep(view, back, dir / "out");
    }
  }
  // Other data content under the same name refuses too.
  auto raw = sae::io::load_npy<float>(path);
  raw.data[0] += 1.0f;
  sae::io::save_npy(path, raw.data.data(), raw.shape);
  const sae::data::ArraySet changed(path);
  sae::test::require_throws_with<sae::io_error>([&] { sweep(changed, options(), dir / "out"); },
                                                {"other settings", "data.content_hash"});
}

BOOST_AUTO_TEST_CASE(sweep_rejects_bad_input) {
  sae::test::ScratchDir dir("sweep-bad");
  const auto path = write_array(dir);
  const sae::data::ArraySet view(path);
  auto o = options();
  o.slices.push_back(sae::data::LayerPosition{2, 0});
  sae::test::require_throws_with<sae::io_error>([&] { sweep(view, o, dir / "out"); }, {"acts.npy", "layer 2 out of range [0, 2)"});
  o = options();
  o.ks = {9};
  sae::test::require_throws_with<sae::invalid_argument>([&] { sweep(view, o, dir / "out"); }, {"K=9"});
  // A damaged result file is named, not silently retrained or trusted.
  sweep(view, options(), dir / "d");
  sae::io::write_text_atomically(dir / "d" / "configs" / "L0_P0_K1_d4.json", "{\"k\": 1}");
  sae::test::require_throws_with<sae::io_error>([&] { sweep(view, options(), dir / "d"); },
                                                {"L0_P0_K1_d4.json", "fingerprint"});
  // A result whose contents are another config's is refused, naming the file.
  std::filesystem::copy_file(dir / "d" / "configs" / "L0_P0_K2_d4.json", dir / "d" / "configs" / "L0_P0_K1_d4.json",
                             std::filesystem::copy_options::overwrite_existing);
  sae::test::require_throws_with<sae::io_error>([&] { sweep(view, options(), dir / "d"); },
                                                {"L0_P0_K1_d4.json", "do not match its name", "it holds layer 0, position 0, K=2, d=4"});
}

BOOST_AUTO_TEST_CASE(one_after_another_equals_the_shared_pass) {
  // The grid's plan (one SAE at a time) and the sweep's (a slice's SAEs together) give bitwise
  // the same results, and the grid's names leave the slice out.
  sae::test::ScratchDir dir("sweep-seq");
  const sae::data::ArraySet view(write_array(dir));
  auto seq = options();
  seq.shared_pass = false;
  require_same_results(sweep(view, options(), dir / "shared"), sweep(view, seq, dir / "seq"));
  auto grid = options();
  grid.slices = {sae::data::LayerPosition{1, 0}};
  grid.shared_pass = false;
  grid.slice_in_names = false;
  const auto r = sweep(view, grid, dir / "grid");
  BOOST_TEST(r.size() == 4u);
  BOOST_TEST(std::filesystem::exists(dir / "grid" / "configs" / "K2_d8.json"));
}

// Job-array shards: each trains a disjoint, like-sized share (dealt largest first); together they
// cover the plan, and the run that assembles them trains nothing and reports what one run would.
BOOST_AUTO_TEST_CASE(shards_cover_the_plan_and_assemble_into_the_full_sweep) {
  sae::test::ScratchDir dir("sweep-shards");
  const sae::data::ArraySet view(write_array(dir));
  const auto full = sweep(view, options(), dir / "full");

  const auto tasks = sae::sweep_tasks_largest_first(options());
  BOOST_REQUIRE_EQUAL(tasks.size(), 16u);
  for (std::size_t i = 1; i < tasks.size(); ++i)  // latent_dim, then K, never increase
    BOOST_TEST((tasks[i].latents < tasks[i - 1].latents ||
                (tasks[i].latents == tasks[i - 1].latents && tasks[i].k <= tasks[i - 1].k)));

  const int n = 3;
  std::vector<std::filesystem::path> shard_dirs;
  std::size_t trained = 0;
  std::vector<double> work(n, 0.0);
  for (int i = 0; i < n; ++i) {
    auto plan = options();
    plan.shard_index = i, plan.shard_count = n;
    shard_dirs.push_back(sae::sweep_shard_folder(dir / "out", i, n, "sweep_test"));
    const auto part = sweep(view, plan, shard_dirs.back());
    trained += part.size();
    for (const auto& r : part) work[static_cast<std::size_t>(i)] += static_cast<double>(r.latents);
  }
  BOOST_TEST(trained == 16u);  // disjoint and complete
  const auto [least, most] = std::minmax_element(work.begin(), work.end());
  BOOST_TEST(*most - *least <= 8.0);  // within one largest SAE of each other

  auto plan = options();
  plan.reuse_from = shard_dirs;
  int epochs_trained = 0;
  const auto assembled = sweep(view, plan, dir / "out", [&] { ++epochs_trained; });
  BOOST_TEST(epochs_trained == 0);
  require_same_results(full, assembled);

  auto bad = options();
  bad.shard_index = 3, bad.shard_count = 3;
  sae::test::require_throws_with<sae::invalid_argument>([&] { sweep(view, bad, dir / "bad"); }, {"shard 3 of 3", "0 <= index < count"});
}

// Variants: several architectures on one plan. Each result names its variant; the TopK variant of
// a many-variant plan is the TopK-only plan's result bitwise; a rerun reuses every result; a
// changed variant setting refuses, naming it; and the L0 search keeps its closest training.
BOOST_AUTO_TEST_CASE(variants_train_every_architecture_resumably) {
  sae::test::ScratchDir dir("sweep-variants");
  const sae::data::ArraySet view(write_array(dir));
  auto plan = options();
  plan.slices = {sae::data::LayerPosition{0, 1}};
  plan.shared_pass = false;
  plan.score_training_rows = true;
  sae::SweepVariant auxk, batchtopk, jumprelu, matryoshka;
  auxk.name = "auxk", auxk.model["aux_k"] = 1, auxk.model["dead_window"] = 100;
  batchtopk.name = batchtopk.architecture = "batchtopk";
  matryoshka.name = matryoshka.architecture = "matryoshka";
  jumprelu.name = jumprelu.architecture = "jumprelu";
  jumprelu.model["bandwidth"] = 0.1;
  jumprelu.l0_search_runs = 3;
  plan.variants = {sae::SweepVariant{}, auxk, batchtopk, jumprelu, matryoshka};
  const auto results = sweep(view, plan, dir / "v");
  BOOST_REQUIRE_EQUAL(results.size(), 5u * 4u);
  BOOST_TEST(std::filesystem::exists(dir / "v" / "configs" / "L0_P1_batchtopk_K2_d8.json"));
  BOOST_TEST(std::filesystem::exists(dir / "v" / "configs" / "L0_P1_topk_K1_d4.json"));
  std::map<std::string, int> per_variant;
  for (const auto& r : results) {
    ++per_variant[r.variant];
    BOOST_TEST(r.extra.find("train_dead_fraction") != nullptr);
    if (r.variant == "jumprelu") {  // the search's record: at most 3 runs, the chosen lambda a power of ten in [1e-3, 1e3]
      const auto runs = r.extra.at("search_runs").as_int();
      BOOST_TEST((runs >= 1 && runs <= 3));
      const double lambda = r.extra.at("sparsity_coefficient").as_number();
      BOOST_TEST((lambda >= 1e-3 && lambda <= 1e3));
      BOOST_TEST(r.extra.at("l0_matched").as_bool() == (std::abs(r.val.l0 - static_cast<double>(r.k)) <= 0.1 * static_cast<double>(r.k)));
    }
  }
  for (const char* v : {"topk", "auxk", "batchtopk", "jumprelu", "matryoshka"}) BOOST_TEST(per_variant[v] == 4, v);

  // The TopK variant is the TopK-only plan's SAE: same numbers.
  auto topk_only = plan;
  topk_only.variants = {sae::SweepVariant{}};
  topk_only.score_training_rows = false;
  const auto alone = sweep(view, topk_only, dir / "t");
  for (const auto& a : alone)
    for (const auto& r : results)
      if (r.variant == "topk" && r.k == a.k && r.latents == a.latents) {
        BOOST_TEST(r.val.explained_variance == a.val.explained_variance);
        BOOST_TEST(r.val.dead_fraction == a.val.dead_fraction);
      }

  // A rerun reuses every result (nothing trains: the interrupt would throw).
  const auto again = sweep(view, plan, dir / "v", [] { throw std::runtime_error("trained"); });
  BOOST_TEST(again.size() == 20u);
  // A changed variant setting refuses, naming the result and the setting.
  auto changed = plan;
  changed.variants[1].model["aux_k"] = 2;
  sae::test::require_throws_with<sae::io_error>([&] { sweep(view, changed, dir / "v"); },
                                                {"auxk_K1_d4.json", "other settings", "model.aux_k"});
  changed = plan;
  changed.variants[3].l0_search_runs = 2;
  sae::test::require_throws_with<sae::io_error>([&] { sweep(view, changed, dir / "v"); }, {"jumprelu_K1_d4.json", "l0_search.runs"});
}

BOOST_AUTO_TEST_CASE(bad_variants_are_refused_before_training) {
  sae::test::ScratchDir dir("sweep-bad-variants");
  const sae::data::ArraySet view(write_array(dir));
  const auto with = [&](sae::SweepVariant v) {
    auto plan = options();
    plan.variants = {sae::SweepVariant{}, std::move(v)};
    return plan;
  };
  sae::SweepVariant v;
  v.name = "g", v.architecture = "gated";
  sae::test::require_throws_with<sae::invalid_argument>([&] { sweep(view, with(v), dir / "a"); },
                                                        {"variant 'g'", "'gated'", "batchtopk"});
  v = {};  // a second variant named topk
  sae::test::require_throws_with<sae::invalid_argument>([&] { sweep(view, with(v), dir / "b"); }, {"two variants", "'topk'"});
  v.name = "x", v.model["no_such_field"] = 1;
  sae::test::require_throws_with<sae::invalid_argument>([&] { sweep(view, with(v), dir / "c"); },
                                                        {"variant 'x'", "no_such_field", "unknown key"});
  v = {}, v.name = "y", v.model["aux_k"] = 99;  // more than latent_dim 4
  sae::test::require_throws_with<sae::invalid_argument>([&] { sweep(view, with(v), dir / "d"); }, {"variant 'y'", "d=4", "aux_k"});
  v = {}, v.name = "z", v.l0_search_runs = 2;
  sae::test::require_throws_with<sae::invalid_argument>([&] { sweep(view, with(v), dir / "e"); }, {"variant 'z'", "JumpReLU"});
  BOOST_TEST(!std::filesystem::exists(dir / "a" / "configs"));
}

BOOST_AUTO_TEST_CASE(kept_weights_survive_a_resume_and_a_rerun_that_asks_for_them) {
  sae::test::ScratchDir dir("sweep-weights");
  const sae::data::ArraySet view(write_array(dir));
  auto keep = options();
  keep.keep_weights = true;
  const auto weight_folders = [](const std::filesystem::path& out) { return files_in(out / "weights"); };
  // Killed after the first group: a resume reuses its 4 results and must publish their weights too.
  int epochs_seen = 0;
  BOOST_CHECK_THROW(sweep(view, keep, dir / "resumed", [&] {
                      if (++epochs_seen == 3) throw std::runtime_error("killed");
                    }),
                    std::runtime_error);
  sweep(view, keep, dir / "resumed");
  BOOST_TEST(weight_folders(dir / "resumed") == 16u);  // the 4 reused ones' weights too
  for (const auto& e : std::filesystem::directory_iterator(dir / "resumed" / "weights"))
    BOOST_TEST(std::filesystem::exists(e.path() / "w_dec.npy"), e.path());
  // A rerun that asks for weights over a sweep made without them retrains (it cannot reuse a result
  // whose weights it was asked to keep), and the weights it writes give the same results.
  const auto plain = sweep(view, options(), dir / "plain");
  BOOST_TEST(weight_folders(dir / "plain") == 0u);
  const auto with_weights = sweep(view, keep, dir / "plain");
  BOOST_TEST(weight_folders(dir / "plain") == 16u);
  require_same_results(plain, with_weights);
  // And a rerun with weights already there reuses everything (nothing trains: the interrupt would throw).
  sweep(view, keep, dir / "plain", [] { throw std::runtime_error("trained again"); });
  BOOST_TEST(weight_folders(dir / "plain") == 16u);
}

BOOST_AUTO_TEST_CASE(weights_left_by_a_run_with_other_settings_are_not_reused_with_a_result) {
  sae::test::ScratchDir dir("sweep-foreign-weights");
  const auto path = write_array(dir);
  const sae::data::ArraySet view(path);
  auto keep = options();
  keep.keep_weights = true;
  auto other = keep;  // other settings: its weights must never pass for this run's
  other.adam.lr *= 2;
  sweep(view, other, dir / "out");
  auto plain = options();
  plain.force = true;  // retrains every result; the weights folder of the earlier run stays
  sweep(view, plain, dir / "out");
  int epochs = 0;
  sweep(view, keep, dir / "out", [&] { ++epochs; });
  BOOST_TEST(epochs > 0);  // retrained: the results' weights were another run's
  std::size_t checked = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "out" / "weights")) {
    const auto result = sae::io::read_json_file((dir / "out" / "configs" / (e.path().filename().string() + ".json")).string());
    const auto mark = sae::io::read_json_file((e.path() / sae::io::kCompanionFingerprint).string());
    BOOST_TEST(sae::io::fingerprint_differences(mark, *result.find("fingerprint")).empty(), e.path());
    ++checked;
  }
  BOOST_TEST(checked == 16u);
  // Nothing left to train now.
  sweep(view, keep, dir / "out", [] { throw std::runtime_error("trained again"); });
}
