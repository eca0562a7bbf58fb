#define BOOST_TEST_MODULE sweep
#include "test_helpers.hpp"

#include "sweep.hpp"  // examples/: the resumable report-002 sweep driver

using sae::index_t;
using sae::examples::SweepResult;

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

sae::examples::SweepOptions options(const std::filesystem::path& out) {
  sae::examples::SweepOptions o;
  o.ks = {1, 2};
  o.latents = {4, 8};
  o.train = sae::TrainConfig{2, 64, 3, true};
  o.val_fraction = 0.2;
  o.out = out;
  return o;
}

std::map<std::string, SweepResult> by_name(const std::vector<SweepResult>& rs) {
  std::map<std::string, SweepResult> m;
  for (const auto& r : rs) m[sae::examples::sweep_config_name(r.layer, r.position, r.k, r.latents)] = r;
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
  const sae::io::NpyMmap view(path);
  const auto full = sae::examples::run_sweep(view, options(dir / "a"));
  BOOST_TEST(full.size() == 16u);  // 2 layers x 2 positions x 2 K x 2 d

  // Killed in the middle of the second (layer, position) group: the first group's 4 SAEs survive.
  int epochs_seen = 0;
  BOOST_CHECK_THROW(sae::examples::run_sweep(view, options(dir / "b"),
                                             [&] {
                                               if (++epochs_seen == 3) throw std::runtime_error("killed");
                                             }),
                    std::runtime_error);
  BOOST_TEST(std::distance(std::filesystem::directory_iterator(dir / "b" / "configs"), {}) == 4);
  const auto resumed = sae::examples::run_sweep(view, options(dir / "b"));
  require_same_results(full, resumed);

  // A sweep spread over runs with max_groups gives the same results too.
  auto limited = options(dir / "c");
  limited.max_groups = 1;
  BOOST_TEST(sae::examples::run_sweep(view, limited).size() == 4u);
  BOOST_TEST(sae::examples::run_sweep(view, limited).size() == 8u);
  require_same_results(full, sae::examples::run_sweep(view, options(dir / "c")));
}

BOOST_AUTO_TEST_CASE(sweep_rejects_bad_input) {
  sae::test::ScratchDir dir("sweep-bad");
  const auto path = write_array(dir);
  const sae::io::NpyMmap view(path);
  auto o = options(dir / "out");
  o.layers = {2};
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::examples::run_sweep(view, o); },
                                                        {"--layers: layer 2 out of range [0, 2)"});
  o.layers = {};
  o.ks = {9};
  sae::test::require_throws_with<sae::invalid_argument>([&] { sae::examples::run_sweep(view, o); }, {"K=9"});
  const sae::io::NpyMmap flat(sae::test::fixture("f4_c_2d.npy"));
  sae::test::require_throws_with<sae::io_error>([&] { sae::examples::run_sweep(flat, options(dir / "x")); },
                                                {"f4_c_2d.npy", "needs a 4-D"});
  // A damaged result file is named, not silently retrained or trusted.
  sae::examples::run_sweep(view, options(dir / "d"));
  sae::io::write_text_atomically(dir / "d" / "configs" / "L0_P0_K1_d4.json", "{\"k\": 1}");
  sae::test::require_throws_with<sae::io_error>([&] { sae::examples::run_sweep(view, options(dir / "d")); },
                                                {"L0_P0_K1_d4.json", "not a sweep result"});
}
