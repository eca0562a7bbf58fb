#define BOOST_TEST_MODULE data
#include "test_helpers.hpp"

#include <sae/data/activation_split.hpp>
#include <sae/data/activations.hpp>
#include <sae/data/batches.hpp>
#include <sae/data/cot_steps.hpp>
#include <sae/data/geometric_median.hpp>
#include <sae/data/samples.hpp>
#include <sae/io/atomic_file.hpp>
#include <sae/data/planted.hpp>
#include <sae/data/split.hpp>
#include <sae/io/npy.hpp>

#include <algorithm>
#include <set>

using sae::index_t;
using sae::test::require_throws_with;

BOOST_AUTO_TEST_CASE(layer_position_selection_matches_a_copied_slice) {
  sae::test::ScratchDir dir("activations");
  const index_t n = 5, layers = 3, positions = 2, d = 4;
  std::vector<float> a(static_cast<std::size_t>(n * layers * positions * d));
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) * 0.5f - 7.0f;
  for (bool fortran : {false, true}) {
    BOOST_TEST_CONTEXT("fortran=" << fortran) {
      sae::io::save_npy(dir / "acts.npy", a.data(), {n, layers, positions, d},
                        {sae::io::DType::f4, fortran});
      for (index_t l = 0; l < layers; ++l)
        for (index_t p = 0; p < positions; ++p) {
          const auto x = sae::data::load_activations<double>(dir / "acts.npy", sae::data::LayerPosition{l, p});
          BOOST_REQUIRE(x.rows() == n && x.cols() == d);
          for (index_t i = 0; i < n; ++i)
            for (index_t j = 0; j < d; ++j)  // the copied slice a[i, l, p, j]
              BOOST_TEST(x(i, j) == a[static_cast<std::size_t>(((i * layers + l) * positions + p) * d + j)]);
        }
    }
  }
  require_throws_with<sae::io_error>(
      [&] { sae::data::load_activations<float>(dir / "acts.npy", sae::data::LayerPosition{3, 0}); },
      {"acts.npy", "layer 3 out of range [0, 3)"});
  require_throws_with<sae::io_error>(
      [&] { sae::data::load_activations<float>(dir / "acts.npy", sae::data::LayerPosition{0, -1}); },
      {"position -1 out of range"});
  require_throws_with<sae::io_error>([&] { sae::data::load_activations<float>(dir / "acts.npy"); },
                                     {"4-D", "choose a layer and a position"});
}

BOOST_AUTO_TEST_CASE(two_d_arrays_and_bad_ranks) {
  const auto x = sae::data::load_activations<float>(sae::test::fixture("f4_f_2d.npy"));
  BOOST_TEST(x(1, 2) == 0.25f * 7 - 3);
  require_throws_with<sae::io_error>(
      [] { sae::data::load_activations<float>(sae::test::fixture("f4_c_2d.npy"), sae::data::LayerPosition{0, 0}); },
      {"array is 2-D"});
  require_throws_with<sae::io_error>([] { sae::data::load_activations<float>(sae::test::fixture("f4_be_3d_f.npy")); },
                                     {"f4_be_3d_f.npy", "expected a 2-D [N, D] or 4-D"});
  require_throws_with<sae::io_error>([] { sae::data::load_activations<float>(sae::test::fixture("f4_empty.npy")); },
                                     {"empty"});
  require_throws_with<sae::io_error>([] { sae::data::load_activations<float>(sae::test::fixture("nan.npy")); },
                                     {"nan.npy", "non-finite"});
}

BOOST_AUTO_TEST_CASE(activation_files_default_the_slice_and_split_with_row_provenance) {
  sae::test::ScratchDir dir("activation-file");
  const index_t n = 40, layers = 2, positions = 3, d = 5;
  std::vector<float> a(static_cast<std::size_t>(n * layers * positions * d));
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 97) - 40.0f;
  sae::io::save_npy(dir / "acts.npy", a.data(), {n, layers, positions, d}, {sae::io::DType::f4, false});
  // A 4-D file given no slice reads (0, 0), and says so in its source and fingerprint.
  const auto f = sae::data::load_activation_file((dir / "acts.npy").string());
  BOOST_TEST(sae::test::same(f.all, sae::data::load_activations<float>(dir / "acts.npy", sae::data::LayerPosition{0, 0})));
  BOOST_TEST(f.source == (dir / "acts.npy").string() + " (layer 0, position 0)");
  BOOST_TEST(f.fingerprint.at("layer").as_int() == 0);
  BOOST_TEST(f.fingerprint.at("position").as_int() == 0);
  const auto g = sae::data::load_activation_file((dir / "acts.npy").string(), sae::data::LayerPosition{1, 2});
  BOOST_TEST(g.source == (dir / "acts.npy").string() + " (layer 1, position 2)");
  BOOST_TEST(g.fingerprint.at("content_hash").as_string() == f.fingerprint.at("content_hash").as_string());
  BOOST_TEST(g.fingerprint.at("layer").as_int() == 1);
  // Every validation row is the file row it names; train and validation partition the rows.
  const auto split = sae::data::split_activations(g.all, g.source, sae::data::SplitPolicy{0.25, 3});
  BOOST_TEST(split.rows == n);
  BOOST_TEST(split.validation.rows() == 10);
  BOOST_TEST(split.train.rows() == 30);
  BOOST_TEST(split.source == g.source);
  BOOST_TEST(split.split == sae::data::choose_split(n, sae::data::SplitPolicy{0.25, 3}).description);
  for (std::size_t i = 0; i < split.validation_rows.size(); ++i)
    BOOST_TEST(sae::test::same(split.validation.row(static_cast<index_t>(i)), g.all.row(split.validation_rows[i])));
  const double total = g.all.sum(), parts = split.train.sum() + split.validation.sum();
  BOOST_TEST(total == parts, boost::test_tools::tolerance(1e-9));
  // A 2-D file has no slice unless one is given (and then it is refused).
  const auto two_d = sae::data::load_activation_file(sae::test::fixture("f4_f_2d.npy").string());
  BOOST_TEST(two_d.source == sae::test::fixture("f4_f_2d.npy").string());
  BOOST_TEST(two_d.fingerprint.find("layer") == nullptr);
  require_throws_with<sae::io_error>(
      [] { sae::data::load_activation_file(sae::test::fixture("f4_f_2d.npy").string(), sae::data::LayerPosition{0, 0}); },
      {"array is 2-D"});
}

BOOST_AUTO_TEST_CASE(activations_from_safetensors_as_from_npy) {
  // Tensors the reference safetensors package wrote; value(i) = 0.25 i - 3 at flat index i.
  const auto st = [](const std::string& name) { return sae::test::fixture("safetensors/" + name).string(); };
  const auto ramp = [](index_t i) { return 0.25 * static_cast<double>(i) - 3; };
  // A 4-D [6, 2, 3, 4] tensor: (layer 1, position 2) of row n starts at ((n * 2 + 1) * 3 + 2) * 4.
  const auto f = sae::data::load_activation_file(st("acts_4d.safetensors"), sae::data::LayerPosition{1, 2});
  BOOST_REQUIRE(f.all.rows() == 6 && f.all.cols() == 4);
  for (index_t n = 0; n < 6; ++n)
    for (index_t j = 0; j < 4; ++j) BOOST_TEST(f.all(n, j) == ramp(((n * 2 + 1) * 3 + 2) * 4 + j));
  BOOST_TEST(f.source == st("acts_4d.safetensors") + " (layer 1, position 2)");
  BOOST_TEST(f.fingerprint.at("tensor").as_string() == "acts");
  BOOST_TEST(f.fingerprint.at("dtype").as_string() == "F32");
  // Named explicitly, F16, 2-D.
  const auto h = sae::data::load_activations<float>(st("acts_2d_f16.safetensors") + ":acts");
  for (index_t i = 0; i < h.size(); ++i) BOOST_TEST(h.data()[i] == ramp(i));
  const auto m = sae::data::load_activations<double>(st("mixed.safetensors") + ":h");
  BOOST_TEST((m.rows() == 2 && m.cols() == 3));
  // A file of several tensors needs a name; a missing or non-float tensor is refused by name.
  require_throws_with<sae::io_error>([&] { sae::data::load_activations<float>(st("mixed.safetensors")); },
                                     {"mixed.safetensors", "holds 3 tensors", "steps, d, h", ":NAME"});
  require_throws_with<sae::io_error>([&] { sae::data::load_activations<float>(st("f32.safetensors") + ":acts"); },
                                     {"f32.safetensors", "no tensor 'acts'", "b, w"});
  require_throws_with<sae::io_error>([&] { sae::data::load_activations<float>(st("mixed.safetensors") + ":d"); },
                                     {"expected a 2-D [N, D] or 4-D"});
  require_throws_with<sae::io_error>([&] { sae::data::load_activations<float>(st("empty_tensor.safetensors")); },
                                     {"empty_tensor.safetensors", "empty"});
  require_throws_with<sae::io_error>([&] { sae::data::load_activations<float>(st("overlap.safetensors")); },
                                     {"overlap.safetensors", "overlaps"});
}

BOOST_AUTO_TEST_CASE(splits) {
  const auto s = sae::data::head_split(7473);
  BOOST_TEST(s.train.size() == 5978u);
  BOOST_TEST(s.validation.size() == 1495u);
  BOOST_TEST(s.train.back() == 5977);
  BOOST_TEST(s.validation.front() == 5978);
  BOOST_CHECK_THROW(sae::data::head_split(5978), sae::invalid_argument);

  const auto a = sae::data::fractional_split(1000, 0.2, 7), b = sae::data::fractional_split(1000, 0.2, 7),
             c = sae::data::fractional_split(1000, 0.2, 8);
  BOOST_TEST(a.validation.size() == 200u);
  BOOST_TEST(a.train == b.train, boost::test_tools::per_element());
  BOOST_TEST(a.validation != c.validation);
  std::set<index_t> all(a.train.begin(), a.train.end());
  all.insert(a.validation.begin(), a.validation.end());
  BOOST_TEST(all.size() == 1000u);  // disjoint and covering
  BOOST_TEST(std::is_sorted(a.train.begin(), a.train.end()));
  BOOST_CHECK_THROW(sae::data::fractional_split(1000, 1.0, 0), sae::invalid_argument);
  BOOST_CHECK_THROW(sae::data::fractional_split(3, 0.01, 0), sae::invalid_argument);

  // The policy every program uses: the reports' split where it fits, else (or when asked) a
  // seeded fraction, each saying which.
  const auto reports = sae::data::choose_split(7473, {});
  BOOST_TEST(reports.train == s.train, boost::test_tools::per_element());
  BOOST_TEST(reports.description.find("reports' split") != std::string::npos);
  const auto small = sae::data::choose_split(1319, {std::nullopt, 7});
  BOOST_TEST(small.validation == sae::data::fractional_split(1319, 0.2, 7).validation, boost::test_tools::per_element());
  BOOST_TEST(small.description == "seeded random split, 20% held out");
  const auto asked = sae::data::choose_split(7473, {0.3, 7});
  BOOST_TEST(asked.validation == sae::data::fractional_split(7473, 0.3, 7).validation, boost::test_tools::per_element());
  BOOST_TEST(sae::data::choose_split(5978, {}).validation.size() == 1196u);  // 5,978 rows: too few for the head split
}

BOOST_AUTO_TEST_CASE(batch_schedule_is_a_seeded_permutation_per_epoch) {
  const sae::data::BatchSchedule sched(1000, 256, 42);
  BOOST_TEST(sched.num_batches() == 4);
  BOOST_TEST(sched.batch_end(3) == 1000);
  const auto e0 = sched.epoch_order(0), e1 = sched.epoch_order(1);
  auto sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  for (index_t i = 0; i < 1000; ++i) BOOST_TEST(sorted[static_cast<std::size_t>(i)] == i);
  BOOST_TEST(e0 != e1);
  BOOST_TEST(e0 == sae::data::BatchSchedule(1000, 256, 42).epoch_order(0), boost::test_tools::per_element());
  BOOST_TEST(e0 != sae::data::BatchSchedule(1000, 256, 43).epoch_order(0));
  const auto plain = sae::data::BatchSchedule(10, 3, 0, false).epoch_order(5);
  for (index_t i = 0; i < 10; ++i) BOOST_TEST(plain[static_cast<std::size_t>(i)] == i);
  BOOST_CHECK_THROW(sae::data::BatchSchedule(10, 0, 0), sae::invalid_argument);
}

BOOST_AUTO_TEST_CASE(planted_samples_are_positive_combinations_of_the_dictionary) {
  sae::data::PlantedConfig c;
  c.num_samples = 300;
  c.input_dim = 12;
  c.num_features = 20;
  c.k_true = 1;
  c.noise_std = 0.0;
  const auto d = sae::data::make_planted<double>(c);
  for (index_t f = 0; f < c.num_features; ++f) BOOST_TEST(std::abs(d.dictionary.row(f).norm() - 1.0) < 1e-12);
  // With one active feature and no noise, every sample is magnitude >= 1 times a dictionary row.
  for (index_t i = 0; i < c.num_samples; ++i) {
    const Eigen::VectorXd proj = d.dictionary * d.x.row(i).transpose();
    index_t best;
    const double m = proj.maxCoeff(&best);
    BOOST_TEST(m >= 1.0 - 1e-12);
    BOOST_TEST((d.x.row(i) - m * d.dictionary.row(best)).norm() < 1e-9);
  }
  // Same seed, same data.
  c.k_true = 3;
  c.noise_std = 0.1;
  BOOST_TEST(sae::test::same(sae::data::make_planted<float>(c).x, sae::data::make_planted<float>(c).x));
  c.k_true = 21;
  BOOST_CHECK_THROW(sae::data::make_planted<float>(c), sae::invalid_argument);
}

namespace {
std::vector<std::string> step_texts(const std::string& answer) {
  std::vector<std::string> out;
  for (const auto& s : sae::data::parse_cot_steps(answer)) out.push_back(s.text());
  return out;
}
}  // namespace

BOOST_AUTO_TEST_CASE(cot_steps_from_hand_written_answers) {
  using V = std::vector<std::string>;
  BOOST_TEST(step_texts("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
                        "altogether in April and May.\n#### 72") == V({"48/2=24", "48+24=72"}),
             boost::test_tools::per_element());
  // Decimals, money, parentheses and a multi-operator step.
  BOOST_TEST(step_texts("Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\n0.2 x 50 = $<<0.2*50=10>>10.\n"
                        "Then (3+4)*2-1 = <<(3+4)*2-1=13>>13.\n#### 10") == V({"12/60=0.2", "0.2*50=10", "(3+4)*2-1=13"}),
             boost::test_tools::per_element());
  const auto steps = sae::data::parse_cot_steps("x <<1.5*4=6>>6 and <<broken>> and <<7-2=5");
  BOOST_REQUIRE(steps.size() == 1u);  // no '=' and unclosed annotations are skipped
  BOOST_TEST(steps[0].expression == "1.5*4");
  BOOST_TEST(steps[0].result == "6");
  BOOST_TEST(sae::data::parse_final_answer("a\n#### 1,234 \n") == "1,234");
  BOOST_TEST(sae::data::parse_final_answer("no marker").empty());
}

BOOST_AUTO_TEST_CASE(cot_steps_on_real_gsm8k_lines) {
  const std::string path = std::string(SAE_TEST_DATA_DIR) + "/../../../shared/data/gsm8k/train.jsonl";
  if (!std::filesystem::exists(path)) {
    BOOST_TEST_MESSAGE("skipped: " << path << " not present");
    return;
  }
  const auto samples = sae::data::load_samples(path);
  BOOST_TEST(samples.size() == 7473u);
  // GSM8K train's first two problems, parsed by hand.
  BOOST_TEST(step_texts(samples[0].answer) == std::vector<std::string>({"48/2=24", "48+24=72"}),
             boost::test_tools::per_element());
  BOOST_TEST(samples[0].final_answer == "72");
  BOOST_TEST(step_texts(samples[1].answer) == std::vector<std::string>({"12/60=0.2", "0.2*50=10"}),
             boost::test_tools::per_element());
  BOOST_TEST(samples[1].final_answer == "10");
  // Every problem has a final answer, and nearly all have at least one annotation.
  std::size_t with_steps = 0;
  for (const auto& s : samples) {
    BOOST_TEST(!s.final_answer.empty());
    with_steps += !s.cot_steps.empty();
  }
  BOOST_TEST(with_steps > 7000u);
}

BOOST_AUTO_TEST_CASE(samples_errors_name_file_and_line) {
  sae::test::ScratchDir dir("samples");
  sae::io::write_text_atomically(dir / "ok.jsonl", "{\"question\": \"q1\", \"answer\": \"<<1+1=2>>2\\n#### 2\"}\n\n"
                                                   "{\"question\": \"q2\", \"answer\": \"#### 3\"}\n");
  const auto s = sae::data::load_samples((dir / "ok.jsonl").string());
  BOOST_REQUIRE(s.size() == 2u);
  BOOST_TEST(s[0].cot_steps.size() == 1u);
  BOOST_TEST(s[1].final_answer == "3");
  sae::test::require_throws_with<sae::io_error>(
      [&] { sae::data::require_matching_rows(s, 3, "ok.jsonl", "acts.npy"); }, {"ok.jsonl", "2 samples", "acts.npy", "3 rows"});
  sae::io::write_text_atomically(dir / "bad.jsonl", "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q\",\n");
  sae::test::require_throws_with<sae::io_error>([&] { sae::data::load_samples((dir / "bad.jsonl").string()); },
                                                {"bad.jsonl:2", "invalid JSON"});
  sae::io::write_text_atomically(dir / "nokey.jsonl", "{\"question\": \"q\"}\n");
  sae::test::require_throws_with<sae::io_error>([&] { sae::data::load_samples((dir / "nokey.jsonl").string()); },
                                                {"nokey.jsonl", "record 1", "missing key 'answer'"});
}

// Weiszfeld's geometric median against ground truth: on a line it is the 1-D median; in general
// the unit vectors from it to the rows sum to zero, and one far-off row barely moves it.
BOOST_AUTO_TEST_CASE(geometric_median_against_known_answers) {
  sae::Matrix<double> line(5, 2);
  line << 0, 0, 1, 1, 2, 2, 10, 10, 11, 11;
  const auto m = sae::data::geometric_median(line);
  BOOST_TEST(std::abs(m(0) - 2.0) < 1e-4);
  BOOST_TEST(std::abs(m(1) - 2.0) < 1e-4);

  sae::Matrix<double> cloud = sae::test::random_matrix(40, 3, 7);
  cloud.row(39).setConstant(1000.0);  // an outlier
  const Eigen::Vector3d med = sae::data::geometric_median(cloud);
  Eigen::Vector3d pull = Eigen::Vector3d::Zero();
  for (index_t i = 0; i < cloud.rows(); ++i) pull += (cloud.row(i).transpose() - med).normalized();
  BOOST_TEST(pull.norm() < 1e-4);                 // optimality: zero (sub)gradient
  BOOST_TEST(med.cwiseAbs().maxCoeff() < 1.0);    // the mean is pulled ~25 units toward the outlier
  BOOST_TEST(cloud.colwise().mean().maxCoeff() > 20.0);
  const auto objective = [&](const Eigen::Vector3d& y) {
    return (cloud.rowwise() - y.transpose()).rowwise().norm().sum();
  };
  for (int j = 0; j < 3; ++j)
    for (double h : {-1e-3, 1e-3}) {
      Eigen::Vector3d y = med;
      y(j) += h;
      BOOST_TEST(objective(y) > objective(med));
    }
  sae::test::require_throws_with<sae::invalid_argument>([] { sae::data::geometric_median(sae::Matrix<double>(0, 3)); },
                                                        {"at least one row"});
}

// Planted rows as a program reads a file: the same rows make_planted draws, a source line naming
// the sizes, and a fingerprint of every setting (a changed one changes it).
BOOST_AUTO_TEST_CASE(planted_activation_file_is_make_planted_with_its_settings) {
  sae::data::PlantedConfig pc;
  pc.num_samples = 50, pc.input_dim = 6, pc.num_features = 10, pc.k_true = 2, pc.seed = 4;
  const auto f = sae::data::planted_activation_file(pc);
  BOOST_TEST(sae::test::same(f.all, sae::data::make_planted<float>(pc).x));
  BOOST_TEST(f.source == "planted synthetic data (50 x 6, 10 true features, 2 active per sample)");
  BOOST_TEST(f.fingerprint.at("planted_k").as_int() == 2);
  auto other = pc;
  other.noise_std = 0.5;
  BOOST_TEST(sae::data::planted_activation_file(other).fingerprint.dump() != f.fingerprint.dump());
}
