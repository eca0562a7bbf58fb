#define BOOST_TEST_MODULE semantics
#include "test_helpers.hpp"

#include <sae/analysis/annotated_layer.hpp>
#include <sae/analysis/layer_semantics.hpp>
#include <sae/analysis/semantics.hpp>
#include <sae/io/npy.hpp>
#include <sae/model/topk_autoencoder.hpp>

#include <fstream>
#include <sae/core/rng.hpp>

using sae::index_t;
using sae::analysis::Operation;

namespace {
sae::data::Sample sample(const std::string& question, const std::string& answer) {
  sae::data::Sample s;
  s.question = question;
  s.answer = answer;
  s.cot_steps = sae::data::parse_cot_steps(answer);
  return s;
}

std::vector<bool> ops(const sae::analysis::CotFeatures& f) {
  return {f.has(Operation::add), f.has(Operation::subtract), f.has(Operation::multiply), f.has(Operation::divide)};
}
}  // namespace

BOOST_AUTO_TEST_CASE(cot_features_of_hand_labelled_gsm8k_answers) {
  // GSM8K train #1: one division, one addition.
  const auto a = sae::analysis::cot_features(sample(
      "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips "
      "did Natalia sell altogether in April and May?",
      "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April "
      "and May.\n#### 72"));
  BOOST_TEST(ops(a) == (std::vector<bool>{true, false, false, true}));
  BOOST_TEST(a.operands == (std::vector<std::string>{"48", "2", "24"}));
  BOOST_TEST(!a.round_number);
  BOOST_TEST(a.keywords == std::vector<std::string>{"how many"});

  // Multi-step with decimals, money and a result of 100: "12*0.50", "60-6.0", "100" as a result.
  const auto b = sae::analysis::cot_features(sample(
      "Weng earns $12 an hour. What is the total and the difference?",
      "<<12*0.50=6>> then <<60-6.0=54>> and <<54+46=100>>\n#### 100"));
  BOOST_TEST(ops(b) == (std::vector<bool>{true, true, true, false}));
  BOOST_TEST(b.operands == (std::vector<std::string>{"12", "0.5", "60", "6", "54", "46"}));
  BOOST_TEST(b.round_number);  // 100 appears as a result
  BOOST_TEST(b.keywords == (std::vector<std::string>{"total", "difference"}));

  // A sign is not subtraction; thousands separators and parentheses; "sum" only as a whole word.
  const auto c = sae::analysis::cot_features(
      sample("In summer, what is the product of the sums?", "<<-5+(1,000/4)=245>> and <<(3)-1=2>>\n#### 2"));
  BOOST_TEST(ops(c) == (std::vector<bool>{true, true, false, true}));
  BOOST_TEST(c.operands == (std::vector<std::string>{"5", "1000", "4", "3", "1"}));
  BOOST_TEST(c.round_number);  // 1,000
  BOOST_TEST(c.keywords == std::vector<std::string>{"product"});

  // No annotations at all: nothing detected.
  const auto d = sae::analysis::cot_features(sample("How Many?", "She has 5 apples.\n#### 5"));
  BOOST_TEST(ops(d) == (std::vector<bool>{false, false, false, false}));
  BOOST_TEST(d.operands.empty());
  BOOST_TEST(d.keywords == std::vector<std::string>{"how many"});
}

BOOST_AUTO_TEST_CASE(number_normalisation) {
  using sae::analysis::detail::normalize_number;
  BOOST_TEST(normalize_number("1,000.50") == "1000.5");
  BOOST_TEST(normalize_number("3.0") == "3");
  BOOST_TEST(normalize_number("007") == "7");
  BOOST_TEST(normalize_number(".25") == "0.25");
  BOOST_TEST(normalize_number("0") == "0");
  BOOST_TEST(sae::analysis::detail::numbers_in("costs 2.5. Then 10") == (std::vector<std::string>{"2.5", "10"}));
}

BOOST_AUTO_TEST_CASE(latent_profiles_match_a_naive_scan) {
  // Random codes; frequency, mean activation and the top samples against direct loops.
  sae::Rng rng(3);
  sae::SparseCodes<float> codes;
  codes.resize(40, 3, 10);
  for (index_t i = 0; i < 40; ++i) {
    auto perm = rng.permutation(10);
    for (index_t s = 0; s < 3; ++s) {
      codes.row_indices(i)[s] = static_cast<std::int32_t>(perm[static_cast<std::size_t>(s)]);
      codes.row_values(i)[s] = s == 2 ? 0.0f : static_cast<float>(rng.uniform(0.1, 2.0));  // third slot: ReLU zero
    }
  }
  std::vector<double> freq(10, 0.0);
  const auto dense = codes.to_dense();
  for (index_t j = 0; j < 10; ++j) freq[static_cast<std::size_t>(j)] = (dense.col(j).array() > 0).count() / 40.0;
  const auto ranking = sae::analysis::rank_by_frequency(freq);
  for (std::size_t r = 1; r < ranking.size(); ++r) {
    const double a = freq[static_cast<std::size_t>(ranking[r - 1])], b = freq[static_cast<std::size_t>(ranking[r])];
    BOOST_TEST((a > b || (a == b && ranking[r - 1] < ranking[r])));
  }
  // A range past the model's F = 10 latents is refused, not clipped.
  sae::test::require_throws_with<sae::invalid_argument>(
      [&] { sae::analysis::profile_rank_range(codes, ranking, {2, 12}, 4); }, {"2-12", "outside the model's 10 latents"});
  const auto profiles = sae::analysis::profile_rank_range(codes, ranking, {2, 10}, 4);
  BOOST_TEST(profiles.size() == 9u);
  for (const auto& p : profiles) {
    BOOST_TEST(p.latent == ranking[static_cast<std::size_t>(p.rank - 1)]);
    BOOST_TEST(p.frequency == freq[static_cast<std::size_t>(p.latent)]);
    const auto col = dense.col(p.latent);
    const double active = (col.array() > 0).count();
    BOOST_TEST(p.mean_activation == (active ? col.sum() / active : 0.0), boost::test_tools::tolerance(1e-6));
    // Top samples: descending, and no other sample beats the weakest listed one.
    BOOST_TEST(p.top.size() == static_cast<std::size_t>(std::min(4.0, active)));
    for (std::size_t t = 0; t < p.top.size(); ++t) {
      BOOST_TEST(p.top[t].activation == col(p.top[t].sample));
      if (t) BOOST_TEST(p.top[t].activation <= p.top[t - 1].activation);
    }
    if (!p.top.empty())
      BOOST_TEST((col.array() > p.top.back().activation).count() <= static_cast<Eigen::Index>(p.top.size()) - 1);
  }
}

BOOST_AUTO_TEST_CASE(rank_ranges_parse_or_fail_clearly) {
  const auto r = sae::analysis::parse_rank_range("400-512");
  BOOST_TEST(r.first == 400);
  BOOST_TEST(r.last == 512);
  BOOST_TEST(r.label() == "400-512");
  for (const char* bad : {"512-400", "0-5", "5", "a-b", "-3", "1-2x"})
    sae::test::require_throws_with<sae::invalid_argument>([bad] { sae::analysis::parse_rank_range(bad); },
                                                          {"FIRST-LAST", bad});
}

BOOST_AUTO_TEST_CASE(patterns_need_min_samples_of_the_top_samples) {
  std::vector<sae::analysis::CotFeatures> f(5);
  // Samples 0-2 add, 3-4 multiply; samples 0, 1 have round numbers; all ask "how many".
  for (int s = 0; s < 5; ++s) {
    f[static_cast<std::size_t>(s)].uses[s < 3 ? 0 : 2] = true;
    f[static_cast<std::size_t>(s)].round_number = s < 2;
    f[static_cast<std::size_t>(s)].keywords = {"how many"};
  }
  sae::analysis::LatentProfile p;
  for (index_t s = 0; s < 5; ++s) p.top.push_back({s, 1.0});
  auto found = sae::analysis::detect_patterns(p, f);
  BOOST_TEST(found.patterns == std::vector<std::string>{"addition"});  // 3 of 5; multiplication only 2
  BOOST_TEST(found.keywords == std::vector<std::string>{"how many"});
  found = sae::analysis::detect_patterns(p, f, {2});
  BOOST_TEST(found.patterns == (std::vector<std::string>{"addition", "multiplication", "round numbers"}));
  p.top.resize(2);  // only two top samples: nothing reaches 3
  BOOST_TEST(!sae::analysis::detect_patterns(p, f).has_pattern());

  std::vector<sae::analysis::LatentProfile> latents(2);
  latents[0].frequency = 0.5, latents[0].mean_activation = 2.0;
  latents[1].frequency = 1.0, latents[1].mean_activation = 0.5;
  std::vector<sae::analysis::LatentPatterns> pats(2);
  pats[0].patterns = {"addition"};
  const auto s = sae::analysis::summarize_semantics(latents, pats);
  BOOST_TEST(s.with_pattern == 1);
  BOOST_TEST(s.mean_frequency == 0.75);
  BOOST_TEST(s.min_mean_activation == 0.5);
  BOOST_TEST(s.max_mean_activation == 2.0);
}

BOOST_AUTO_TEST_CASE(annotated_layers_pair_each_validation_row_with_its_sample) {
  sae::test::ScratchDir dir("annotated");
  const index_t n = 24, d = 6;
  const sae::Matrix<float> x = sae::test::random_matrix<float>(n, d, 5);
  sae::io::save_npy(dir / "acts.npy", x.data(), {n, d}, {sae::io::DType::f4, false});
  {
    std::ofstream out(dir / "samples.jsonl");
    for (index_t i = 0; i < n; ++i)  // sample i computes i+1 (even i) or i*2 (odd i)
      out << "{\"question\": \"q" << i << "\", \"answer\": \"so <<" << i << (i % 2 ? "*2=" : "+1=") << (i % 2 ? 2 * i : i + 1)
          << ">> #### 1\"}\n";
  }
  const auto samples = sae::data::load_samples((dir / "samples.jsonl").string());
  const auto layer = sae::analysis::load_annotated_layer((dir / "acts.npy").string(), std::nullopt, samples,
                                                         (dir / "samples.jsonl").string(), sae::data::SplitPolicy{0.25, 7});
  BOOST_REQUIRE(layer.validation_samples.size() == 6u);
  for (std::size_t i = 0; i < 6; ++i) {
    const index_t row = layer.data.validation_rows[i];
    BOOST_TEST(layer.validation_samples[i].question == "q" + std::to_string(row));
    BOOST_TEST(layer.validation_features[i].has(row % 2 ? sae::analysis::Operation::multiply : sae::analysis::Operation::add));
    BOOST_TEST(sae::test::same(layer.data.validation.row(static_cast<index_t>(i)), x.row(row)));
  }
  // The semantics of a model on it: the library's metrics, the top latents by frequency, and JSON
  // naming each top sample's file row and CoT.
  sae::TopKAutoencoder<float> model(sae::TopKConfig{d, 8, 2, sae::Selection::value, false, 1});
  const auto sem = sae::analysis::layer_semantics("late", layer, model, 3, {{4, 5}}, 2, sae::analysis::PatternRule{1});
  const auto val = sae::metrics::evaluate(model, layer.data.validation);
  BOOST_TEST(sem.val.explained_variance == val.explained_variance);
  BOOST_REQUIRE(sem.top.size() == 3u);
  for (std::size_t r = 1; r < sem.top.size(); ++r) BOOST_TEST(sem.top[r - 1].frequency >= sem.top[r].frequency);
  BOOST_TEST(sem.ranges.size() == 1u);
  const auto j = sae::analysis::to_json(sem, layer, sae::analysis::PatternRule{1});
  const auto& first = j.at("top_latents").as_array().front();
  for (const auto& t : first.at("top_samples").as_array()) {
    const auto v = static_cast<std::size_t>(t.at("validation_row").as_int());
    BOOST_TEST(t.at("sample").as_int() == layer.data.validation_rows[v]);
    BOOST_TEST(t.at("cot").as_string() == sae::analysis::cot_line(layer.validation_samples[v]));
  }
  BOOST_TEST(j.at("rank_ranges").find("4-5") != nullptr);
  // A samples file that does not match the rows is refused, naming both files.
  std::vector<sae::data::Sample> fewer(samples.begin(), samples.end() - 1);
  sae::test::require_throws_with<sae::error>(
      [&] {
        sae::analysis::load_annotated_layer((dir / "acts.npy").string(), std::nullopt, fewer, "samples.jsonl",
                                            sae::data::SplitPolicy{0.25, 7});
      },
      {"samples.jsonl", "acts.npy"});
}
