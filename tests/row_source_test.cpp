// Row sources (data/row_source.hpp, data/open_rows.hpp) against the in-memory matrix they stand
// for: the same rows from a mapped file in every stored dtype, a 4-D slice, shard sets (directory,
// glob, manifest) with batches across shard boundaries, splits as index views and paired targets;
// every bad shard named; streamed statistics against one pass over the whole matrix; and training
// on a source against training on the matrix, bitwise.
#define BOOST_TEST_MODULE row_source
#include "test_helpers.hpp"

#include <sae/data/activations.hpp>
#include <sae/data/data_options.hpp>
#include <sae/data/metadata.hpp>
#include <sae/data/open_rows.hpp>
#include <sae/data/row_statistics.hpp>
#include <sae/io/npy.hpp>
#include <sae/io/safetensors.hpp>
#include <sae/model/checkpoint.hpp>
#include <sae/model/topk_autoencoder.hpp>
#include <sae/model/jumprelu_autoencoder.hpp>
#include <sae/optim/adam.hpp>
#include <sae/train/trainer.hpp>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using sae::index_t;
using sae::Matrix;
namespace data = sae::data;

namespace {

// Rows of `m` at `rows` read through `source`, compared bitwise with the matrix's.
void require_same_rows(const data::RowSource<float>& source, const Matrix<float>& m, const std::vector<index_t>& rows) {
  Matrix<float> got;
  source.read_inputs(rows.data(), static_cast<index_t>(rows.size()), got);
  BOOST_REQUIRE_EQUAL(got.rows(), static_cast<index_t>(rows.size()));
  for (std::size_t i = 0; i < rows.size(); ++i)
    BOOST_TEST(sae::test::same(got.row(static_cast<index_t>(i)), m.row(rows[i])), "row " << rows[i] << " differs");
}

// Values that f16 and bf16 hold exactly (multiples of 1/8 up to 32), so every dtype reads the same.
Matrix<float> exact_matrix(index_t rows, index_t cols, std::uint64_t seed) {
  sae::Rng rng(seed);
  Matrix<float> m(rows, cols);
  for (index_t i = 0; i < m.size(); ++i) m.data()[i] = static_cast<float>(std::floor(rng.normal() * 8.0)) / 8.0f;
  return m;
}

void save_shards(const Matrix<float>& m, const std::vector<index_t>& sizes, const std::filesystem::path& folder,
                 const std::string& stem = "shard-") {
  std::filesystem::create_directories(folder);
  index_t first = 0;
  for (std::size_t s = 0; s < sizes.size(); ++s) {
    const Matrix<float> part = m.middleRows(first, sizes[s]);
    sae::io::save_npy(folder / (stem + std::to_string(s) + ".npy"), part);
    first += sizes[s];
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_mapped_file_reads_the_same_rows_in_every_dtype) {
  sae::test::ScratchDir dir("rows-dtype");
  const Matrix<float> m = exact_matrix(50, 7, 1);
  sae::io::save_npy(dir / "f4.npy", m);
  sae::io::save_npy(dir / "f8.npy", Matrix<double>(m.cast<double>()));
  sae::io::NpySaveOptions half;
  half.dtype = sae::io::DType::f2;
  sae::io::save_npy(dir / "f2.npy", m, half);
  sae::io::save_safetensors(dir / "bf16.safetensors", {sae::io::tensor_to_write("acts", m, sae::io::FloatDType::bf16)});
  sae::io::save_safetensors(dir / "f16.safetensors", {sae::io::tensor_to_write("acts", m, sae::io::FloatDType::f16)});
  const std::vector<index_t> rows = {49, 0, 3, 3, 17};
  for (const char* f : {"f4.npy", "f8.npy", "f2.npy", "bf16.safetensors", "f16.safetensors"}) {
    BOOST_TEST_CONTEXT(f) {
      const auto source = data::open_rows<float>((dir / f).string());
      BOOST_TEST(source->rows() == 50);
      BOOST_TEST(source->input_dim() == 7);
      BOOST_TEST(!source->has_targets());
      require_same_rows(*source, m, rows);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_4d_slice_is_a_view_with_the_gathered_rows) {
  sae::test::ScratchDir dir("rows-4d");
  const index_t n = 9, layers = 3, positions = 2, d = 5;
  const Matrix<float> flat = sae::test::random_matrix<float>(n, layers * positions * d, 2);
  sae::io::save_npy(dir / "acts.npy", flat.data(), {n, layers, positions, d});
  const sae::io::ArrayFile view((dir / "acts.npy").string());
  for (index_t l = 0; l < layers; ++l)
    for (index_t p = 0; p < positions; ++p) {
      const Matrix<float> gathered = data::gather_activations<float>(view, data::LayerPosition{l, p});
      const data::MappedRows<float> slice((dir / "acts.npy").string(), data::LayerPosition{l, p});
      require_same_rows(slice, gathered, {0, 8, 4});
      BOOST_TEST(slice.describe().find("layer " + std::to_string(l)) != std::string::npos);
    }
  sae::test::require_throws_with<sae::io_error>(
      [&] { data::MappedRows<float>((dir / "acts.npy").string(), data::LayerPosition{3, 0}); }, {"acts.npy", "layer 3", "[0, 3)"});
}

BOOST_AUTO_TEST_CASE(a_shard_set_reads_as_one_source_across_boundaries) {
  sae::test::ScratchDir dir("rows-shards");
  const Matrix<float> m = sae::test::random_matrix<float>(23, 6, 3);
  // Ten shards: "shard-10" must come after "shard-9" (natural order), not after "shard-1".
  save_shards(m, {2, 3, 1, 2, 2, 3, 2, 2, 2, 2, 2}, dir / "set");
  std::ofstream(dir / "set" / "notes.txt") << "not a shard";
  const std::vector<index_t> across = {1, 2, 4, 5, 22, 0, 21, 12, 11};  // a batch over several boundaries
  std::vector<index_t> all(23);
  for (index_t i = 0; i < 23; ++i) all[static_cast<std::size_t>(i)] = i;
  for (const auto& spec : {(dir / "set").string(), (dir / "set" / "shard-*.npy").string()}) {
    BOOST_TEST_CONTEXT(spec) {
      const auto source = data::open_rows<float>(spec);
      BOOST_TEST(source->rows() == 23);
      require_same_rows(*source, m, all);
      require_same_rows(*source, m, across);
      BOOST_TEST(source->describe().find("11 shards") != std::string::npos);
    }
  }
  // A manifest lists shards in its own order, with row counts that are checked.
  save_shards(m, {10, 13}, dir / "listed", "part");
  std::ofstream(dir / "listed" / "manifest.json") << R"({"shards": [{"path": "part0.npy", "rows": 10}, "part1.npy"]})";
  require_same_rows(*data::open_rows<float>((dir / "listed").string()), m, across);
  require_same_rows(*data::open_rows<float>((dir / "listed" / "manifest.json").string()), m, across);
  BOOST_TEST(data::open_rows_detail::natural_less("shard-9", "shard-10"));
  BOOST_TEST(!data::open_rows_detail::natural_less("shard-10", "shard-9"));
  BOOST_TEST(data::open_rows_detail::natural_less("a01", "a2"));
}

BOOST_AUTO_TEST_CASE(a_bad_shard_is_named) {
  sae::test::ScratchDir dir("rows-bad-shards");
  const Matrix<float> m = sae::test::random_matrix<float>(8, 4, 4);
  using sae::test::require_throws_with;
  const auto open = [](const std::filesystem::path& p) { return data::open_rows<float>(p.string()); };

  save_shards(m, {4, 4}, dir / "width");
  sae::io::save_npy(dir / "width" / "shard-2.npy", Matrix<float>(sae::test::random_matrix<float>(3, 5, 5)));
  require_throws_with<sae::io_error>([&] { open(dir / "width"); }, {"shard-2.npy", "5 wide", "shard-0.npy", "same width"});

  save_shards(m, {4, 4}, dir / "dtype");
  sae::io::save_npy(dir / "dtype" / "shard-2.npy", Matrix<double>(sae::test::random_matrix<double>(3, 4, 6)));
  require_throws_with<sae::io_error>([&] { open(dir / "dtype"); }, {"shard-2.npy", "dtype", "same dtype"});

  save_shards(m, {4, 4}, dir / "rows");
  std::ofstream(dir / "rows" / "manifest.json") << R"({"shards": [{"path": "shard-0.npy", "rows": 5}, "shard-1.npy"]})";
  require_throws_with<sae::io_error>([&] { open(dir / "rows"); }, {"shard-0.npy", "4 rows", "manifest says 5"});

  save_shards(m, {4, 4}, dir / "missing");
  std::ofstream(dir / "missing" / "manifest.json") << R"({"shards": ["shard-0.npy", "shard-7.npy"]})";
  require_throws_with<sae::io_error>([&] { open(dir / "missing"); }, {"shard-7.npy"});

  std::filesystem::create_directories(dir / "keys");
  std::ofstream(dir / "keys" / "manifest.json") << R"({"shards": ["a.npy"], "shuffle": true})";
  require_throws_with<sae::io_error>([&] { open(dir / "keys"); }, {"manifest.json", "unknown key 'shuffle'"});

  std::filesystem::create_directories(dir / "empty");
  require_throws_with<sae::io_error>([&] { open(dir / "empty"); }, {"empty", "no .npy or .safetensors shard"});
  require_throws_with<sae::io_error>([&] { open(dir / "empty" / "x-*.npy"); }, {"matches no"});

  // A non-finite value is found when its row is read, named by shard, sample and dimension.
  Matrix<float> bad = m.middleRows(4, 4);
  bad(2, 3) = std::numeric_limits<float>::quiet_NaN();
  save_shards(m, {4, 4}, dir / "nan");
  sae::io::save_npy(dir / "nan" / "shard-1.npy", bad);
  const auto source = open(dir / "nan");
  require_same_rows(*source, m, {0, 5, 7});
  require_throws_with<sae::io_error>([&] { require_same_rows(*source, m, {6}); },
                                     {"shard-1.npy", "non-finite", "sample 2", "dimension 3"});
  require_throws_with<sae::io_error>([&] { data::stream_statistics(*source); }, {"shard-1.npy", "non-finite"});
}

BOOST_AUTO_TEST_CASE(paired_and_selected_views) {
  const Matrix<float> x = sae::test::random_matrix<float>(12, 4, 7), y = sae::test::random_matrix<float>(12, 4, 8);
  auto in = std::make_shared<const data::MatrixRows<float>>(x, "x");
  auto out = std::make_shared<const data::MatrixRows<float>>(y, "y");
  const auto pair = std::make_shared<const data::PairedRows<float>>(in, out);
  BOOST_TEST(pair->has_targets());
  const data::SelectedRows<float> view(pair, {11, 3, 5}, "validation");
  Matrix<float> xs, ys;
  const std::vector<index_t> rows = {2, 0};
  view.read_inputs(rows.data(), 2, xs);
  view.read_targets(rows.data(), 2, ys);
  BOOST_TEST(sae::test::same(xs.row(0), x.row(5)));
  BOOST_TEST(sae::test::same(xs.row(1), x.row(11)));
  BOOST_TEST(sae::test::same(ys.row(0), y.row(5)));
  BOOST_TEST(view.describe() == "validation of x -> y");
  const Matrix<float> short_y = y.topRows(11);
  sae::test::require_throws_with<sae::io_error>(
      [&] { data::PairedRows<float>(in, std::make_shared<const data::MatrixRows<float>>(short_y, "y.npy")); },
      {"x", "12 rows", "y.npy", "11 rows"});
  sae::test::require_throws_with<sae::invalid_argument>([&] { data::SelectedRows<float>(in, {0, 12}); }, {"row 12", "[0, 12)"});
  const std::vector<index_t> past = {3};
  sae::test::require_throws_with<sae::invalid_argument>([&] { view.read_inputs(past.data(), 1, xs); }, {"row 3", "[0, 3)"});
}

BOOST_AUTO_TEST_CASE(streamed_statistics_match_one_pass_over_the_matrix) {
  const Matrix<float> x = sae::test::random_matrix<float>(1000, 9, 9).array() + 3.0f;  // a mean far from 0
  const data::MatrixRows<float> rows(x);
  const data::Moments whole = data::block_moments(x);
  // One block: bitwise the whole-matrix formulas.
  const auto one = data::stream_statistics(rows);
  BOOST_TEST(one.inputs.sst == whole.sst);
  BOOST_TEST(one.inputs.sum_squares == whole.sum_squares);
  BOOST_TEST(sae::test::same(one.inputs.mean, whole.mean));
  // Blocks of 7 rows merged (Chan et al.) against a naive two-pass loop in long double.
  const auto blocks = data::stream_statistics(rows, 7);
  long double mean[9] = {}, sst = 0;
  for (index_t i = 0; i < x.rows(); ++i)
    for (index_t j = 0; j < 9; ++j) mean[j] += x(i, j);
  for (auto& v : mean) v /= x.rows();
  for (index_t i = 0; i < x.rows(); ++i)
    for (index_t j = 0; j < 9; ++j) sst += (x(i, j) - mean[j]) * (x(i, j) - mean[j]);
  BOOST_TEST(blocks.inputs.rows == 1000);
  BOOST_TEST(blocks.inputs.sst == static_cast<double>(sst), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(blocks.inputs.sum_squares == whole.sum_squares, boost::test_tools::tolerance(1e-12));
  for (index_t j = 0; j < 9; ++j) BOOST_TEST(blocks.inputs.mean[j] == static_cast<double>(mean[j]), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(blocks.targets.sst == blocks.inputs.sst);
  // Evenly spaced sample rows: 0, stride, 2 stride, ...
  const Matrix<float> sample = data::evenly_spaced_rows(rows, 300);  // stride 4
  BOOST_TEST(sample.rows() == 250);
  BOOST_TEST(sae::test::same(sample.row(249), x.row(996)));
}

// Training reads batches from the source: a mapped file, a shard set and a split's index view give
// bitwise the weights of training on the matrix; targets equal to the inputs are an autoencoder.
BOOST_AUTO_TEST_CASE(training_on_any_source_matches_the_matrix_bitwise) {
  sae::test::ScratchDir dir("rows-train");
  const Matrix<float> all = sae::test::random_matrix<float>(300, 16, 10);
  save_shards(all, {100, 77, 123}, dir / "set");
  sae::io::save_npy(dir / "all.npy", all);
  const data::Split split = data::fractional_split(300, 0.2, 11);
  const Matrix<float> train = data::take_rows(all, split.train), val = data::take_rows(all, split.validation);

  sae::TrainConfig tc;
  tc.epochs = 3, tc.batch_size = 32, tc.seed = 12;
  using Model = sae::TopKAutoencoder<float>;
  sae::TopKConfig mc{16, 48, 4};
  mc.decoder_bias = mc.median_decoder_bias = true;
  const auto fit_matrix = [&] {
    Model model(mc);
    const auto s = sae::make_trainer<Model>(tc, sae::Adam<float>()).fit(model, train, &val);
    return std::make_pair(model.parameters(), s.history.back());
  };
  const auto fit_source = [&](const data::RowSourcePtr<float>& base) {
    const data::SelectedRows<float> t(base, split.train), v(base, split.validation);
    Model model(mc);
    const auto s = sae::make_trainer<Model>(tc, sae::Adam<float>()).fit(model, t, &v);
    return std::make_pair(model.parameters(), s.history.back());
  };
  const auto [expected, last] = fit_matrix();
  const auto in_memory = std::make_shared<const data::MatrixRows<float>>(all);
  for (const auto& base : {data::RowSourcePtr<float>(in_memory), data::open_rows<float>((dir / "all.npy").string()),
                           data::open_rows<float>((dir / "set").string()),
                           data::RowSourcePtr<float>(std::make_shared<const data::PairedRows<float>>(in_memory, in_memory))}) {
    BOOST_TEST_CONTEXT(base->describe()) {
      const auto [got, got_last] = fit_source(base);
      BOOST_TEST(sae::test::same(got.w_enc, expected.w_enc));
      BOOST_TEST(sae::test::same(got.w_dec, expected.w_dec));
      BOOST_TEST(sae::test::same(got.b_dec, expected.b_dec));
      BOOST_TEST(got_last.train_loss == last.train_loss);
      BOOST_TEST(*got_last.validation_ev == *last.validation_ev);
    }
  }
}

// Distinct targets: the loss and its gradients compare the reconstruction with the target (central
// differences), and a transcoder learns a map an autoencoder of its inputs cannot give.
BOOST_AUTO_TEST_CASE(targets_drive_the_loss_and_its_gradients) {
  const Matrix<double> x = sae::test::random_matrix<double>(20, 6, 13), y = sae::test::random_matrix<double>(20, 6, 14);
  sae::TopKConfig c{6, 10, 3};
  c.decoder_bias = true;
  sae::TopKAutoencoder<double> model(c);
  using Model = decltype(model);
  Model::Gradients g, unused;
  Model::Workspace ws;
  const double loss = model.loss_and_gradient(x, &y, g, ws).loss;
  BOOST_TEST(loss == (model.forward(x) - y).squaredNorm() / static_cast<double>(y.size()), boost::test_tools::tolerance(1e-12));
  auto& p = model.parameters();
  const Eigen::MatrixXd analytic = g.w_dec.to_dense();
  double worst = 0;
  for (index_t i = 0; i < p.w_dec.rows(); ++i)
    for (index_t j = 0; j < p.w_dec.cols(); ++j) {
      const double saved = p.w_dec(i, j), h = 1e-6;
      p.w_dec(i, j) = saved + h;
      const double up = model.loss_and_gradient(x, &y, unused, ws).loss;
      p.w_dec(i, j) = saved - h;
      const double down = model.loss_and_gradient(x, &y, unused, ws).loss;
      p.w_dec(i, j) = saved;
      worst = std::max(worst, std::abs((up - down) / (2 * h) - analytic(i, j)));
    }
  BOOST_TEST(worst < 1e-7);
  const Eigen::VectorXd gb = g.b_enc;
  double worst_b = 0;
  for (index_t j = 0; j < p.b_enc.size(); ++j) {
    const double saved = p.b_enc[j], h = 1e-6;
    p.b_enc[j] = saved + h;
    const double up = model.loss_and_gradient(x, &y, unused, ws).loss;
    p.b_enc[j] = saved - h;
    const double down = model.loss_and_gradient(x, &y, unused, ws).loss;
    p.b_enc[j] = saved;
    worst_b = std::max(worst_b, std::abs((up - down) / (2 * h) - gb[j]));
  }
  BOOST_TEST(worst_b < 1e-7);

  // y = x with its halves swapped: a transcoder reaches a low loss; the targets' EV is what is scored.
  const Matrix<float> xs = sae::test::random_matrix<float>(400, 8, 15);
  Matrix<float> ys(400, 8);
  ys << xs.rightCols(4), xs.leftCols(4);
  auto in = std::make_shared<const data::MatrixRows<float>>(xs), out = std::make_shared<const data::MatrixRows<float>>(ys);
  const data::PairedRows<float> pairs(in, out);
  sae::TrainConfig tc;
  tc.epochs = 40, tc.batch_size = 50;
  sae::TopKAutoencoder<float> transcoder(sae::TopKConfig{8, 32, 8});
  const auto s = sae::make_trainer<sae::TopKAutoencoder<float>>(tc, sae::Adam<float>(sae::AdamConfig{1e-2})).fit(transcoder, pairs, &pairs);
  BOOST_TEST(*s.history.back().validation_ev > 0.9);
  BOOST_TEST(*s.history.back().validation_ev == 1.0 - (transcoder.forward(xs) - ys).cast<double>().squaredNorm() /
                                                        data::block_moments(ys).sst,
             boost::test_tools::tolerance(1e-9));
}

// The block shuffle: every row once per epoch, each window's rows from at most `window` blocks of
// consecutive rows, a function of (seed, epoch) alone.
BOOST_AUTO_TEST_CASE(the_block_shuffle_covers_every_row_in_runs) {
  const data::BatchSchedule s(23, 5, 7, true, data::BlockShuffle{4, 2});
  const auto order = s.epoch_order(0);
  std::vector<index_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (index_t i = 0; i < 23; ++i) BOOST_TEST(sorted[static_cast<std::size_t>(i)] == i);
  // Windows of 2 full blocks of 4 rows: rows [0, 8), [8, 16), ... of the order come from two blocks.
  const auto full = data::BatchSchedule(24, 5, 7, true, data::BlockShuffle{4, 2}).epoch_order(3);
  for (std::size_t w = 0; w < full.size(); w += 8) {
    std::vector<index_t> blocks;
    for (std::size_t i = w; i < w + 8; ++i) blocks.push_back(full[i] / 4);
    std::sort(blocks.begin(), blocks.end());
    blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
    BOOST_TEST(blocks.size() == 2u);
  }
  BOOST_TEST((s.epoch_order(0) == order));
  BOOST_TEST((s.epoch_order(1) != order));
  BOOST_TEST((data::BatchSchedule(23, 5, 7).epoch_order(0) != order));  // the per-row permutation differs
}

namespace {
// Rows from a matrix that fail on the `fail_at`-th batch read, as a bad disk would.
struct FailingRows final : data::RowSource<float> {
  const Matrix<float>& m;
  int fail_at;
  mutable int reads = 0;
  FailingRows(const Matrix<float>& matrix, int at) : m(matrix), fail_at(at) {}
  index_t rows() const override { return m.rows(); }
  index_t input_dim() const override { return m.cols(); }
  std::string describe() const override { return "failing.npy"; }
  void read_input_row(index_t row, float* out) const override { std::copy_n(m.row(row).data(), m.cols(), out); }
  void read_inputs(const index_t* rows, index_t count, Matrix<float>& out) const override {
    if (++reads == fail_at) throw sae::io_error("failing.npy", "read error");
    data::RowSource<float>::read_inputs(rows, count, out);
  }
};
}  // namespace

// Rows read from a map come one batch ahead on another thread: the same weights as reading in
// turn (block shuffle included), and a read error surfaces from fit() naming the file.
BOOST_AUTO_TEST_CASE(prefetched_batches_train_alike_and_pass_errors_on) {
  sae::test::ScratchDir dir("rows-prefetch");
  const Matrix<float> all = sae::test::random_matrix<float>(500, 12, 30);
  sae::io::save_npy(dir / "all.npy", all);
  sae::TrainConfig tc;
  tc.epochs = 2, tc.batch_size = 40, tc.shuffle_block = 16, tc.shuffle_window = 3;
  using Model = sae::TopKAutoencoder<float>;
  const auto fit = [&](const data::RowSource<float>& rows) {
    Model model(sae::TopKConfig{12, 30, 3});
    sae::make_trainer<Model>(tc, sae::Adam<float>()).fit(model, rows, nullptr);
    return model.parameters().w_dec;
  };
  const data::MatrixRows<float> memory(all);
  const auto mapped = data::open_rows<float>((dir / "all.npy").string());
  BOOST_TEST(!mapped->in_memory());
  BOOST_TEST(memory.in_memory());
  BOOST_TEST(sae::test::same(fit(*mapped), fit(memory)));
  for (int at : {2, 3, 16})  // the first batch, one read ahead, the second epoch's
    sae::test::require_throws_with<sae::io_error>([&] { fit(FailingRows(all, at)); }, {"failing.npy", "read error"});
}

// Metadata (data/metadata.hpp): read from safetensors shards and the manifest, checked against what
// the arrays hold and shard against shard, kept through loading, recorded in a checkpoint and
// compared with new data on the identity keys.
BOOST_AUTO_TEST_CASE(metadata_round_trips_and_a_mismatch_is_refused_by_name) {
  sae::test::ScratchDir dir("rows-metadata");
  using sae::test::require_throws_with;
  const Matrix<float> m = exact_matrix(9, 4, 11);
  const auto save_set = [&](const std::string& name, const std::vector<std::map<std::string, std::string>>& metas,
                            const std::string& manifest_metadata) {
    std::filesystem::create_directories(dir / name);
    std::string shards;
    for (std::size_t s = 0; s < metas.size(); ++s) {
      const Matrix<float> part = m.middleRows(static_cast<index_t>(3 * s), 3);
      const std::string file = "part-" + std::to_string(s) + ".safetensors";
      sae::io::save_safetensors(dir / name / file, {sae::io::tensor_to_write("acts", part, sae::io::FloatDType::f16)}, metas[s]);
      shards += (s ? ", \"" : "\"") + file + "\"";
    }
    std::ofstream(dir / name / "manifest.json")
        << "{\"shards\": [" << shards << "]" << (manifest_metadata.empty() ? "" : ", \"metadata\": " + manifest_metadata) << "}";
    return (dir / name).string();
  };
  const std::map<std::string, std::string> layer4 = {{"model", "gpt2"}, {"layer", "4"}, {"hook", "blocks.4.hook_resid_post"}};
  const auto set = data::open_rows<float>(save_set("good", {layer4, layer4, layer4}, R"({"source": "gsm8k", "rows": 9})"));
  data::DataMetadata meta = set->metadata();
  BOOST_TEST(meta["model"] == "gpt2");
  BOOST_TEST(meta["layer"] == "4");
  BOOST_TEST(meta["hook"] == "blocks.4.hook_resid_post");
  BOOST_TEST(meta["source"] == "gsm8k");
  BOOST_TEST(meta["rows"] == "9");
  BOOST_TEST(meta["d_in"] == "4");
  BOOST_TEST(meta["dtype"] == "f16");

  // Loading into memory keeps the metadata and the fingerprint.
  data::DataOptions d;
  d.data = (dir / "good").string();
  const auto loaded = data::open_data<float>(d);
  BOOST_TEST(loaded->in_memory());
  BOOST_TEST((loaded->metadata() == set->metadata()));
  BOOST_TEST(loaded->fingerprint().dump() == set->fingerprint().dump());
  BOOST_TEST(set->fingerprint().at("shards").as_array().size() == 3u);

  // A shard of another layer, and claims the arrays contradict, are named.
  auto layer5 = layer4;
  layer5["layer"] = "5";
  require_throws_with<sae::io_error>([&] { data::open_rows<float>(save_set("mixed", {layer4, layer4, layer5}, "")); },
                                     {"part-2.safetensors", "layer '4' vs '5'", "same activations"});
  require_throws_with<sae::io_error>([&] { data::open_rows<float>(save_set("manifest", {layer4}, R"({"layer": 6})")); },
                                     {"part-0.safetensors", "layer '6' vs '4'"});
  require_throws_with<sae::io_error>([&] { data::open_rows<float>(save_set("width", {layer4}, R"({"d_in": 5})")); },
                                     {"part-0.safetensors", "d_in '5' vs '4'"});
  require_throws_with<sae::io_error>([&] { data::open_rows<float>(save_set("count", {layer4}, R"({"rows": 4})")); },
                                     {"rows '4'", "holds 3"});
  require_throws_with<sae::io_error>([&] { data::open_rows<float>(save_set("dtype", {layer4}, R"({"dtype": "float32"})")); },
                                     {"dtype is f16", "float32"});
  require_throws_with<sae::io_error>([&] { data::open_rows<float>(save_set("value", {layer4}, R"({"layer": [4]})")); },
                                     {"manifest.json", "\"layer\" must be a string or an integer"});
  auto wide = layer4;
  wide["d_in"] = "768";
  require_throws_with<sae::io_error>([&] { data::open_rows<float>(save_set("file", {wide}, "")); },
                                     {"part-0.safetensors", "d_in '768'", "holds 4"});

  // A 4-D array's slice says the layer and position.
  const Matrix<float> flat = sae::test::random_matrix<float>(5, 2 * 3 * 4, 3);
  sae::io::save_npy(dir / "acts4d.npy", flat.data(), {5, 2, 3, 4});
  const auto slice = data::open_rows<float>((dir / "acts4d.npy").string(), data::LayerPosition{1, 2})->metadata();
  BOOST_TEST(slice.at("layer") == "1");
  BOOST_TEST(slice.at("position") == "2");
  BOOST_TEST(slice.at("dtype") == "f32");
  sae::io::save_npy(dir / "plain.npy", m);
  BOOST_TEST(data::open_rows<float>((dir / "plain.npy").string())->metadata().count("layer") == 0u);  // .npy says nothing

  // A checkpoint records the training data's metadata; other data is refused unless forced.
  sae::TopKConfig c;
  c.input_dim = 4, c.num_latents = 8, c.k = 2;
  sae::save_checkpoint(dir / "ckpt", sae::TopKAutoencoder<float>(c), meta);
  const data::DataMetadata trained = sae::checkpoint_data_metadata(dir / "ckpt");
  BOOST_TEST((trained == meta));
  BOOST_CHECK_NO_THROW(data::require_same_data(trained, "ckpt", meta, "data", false, "--force"));
  auto other = meta;
  other["layer"] = "5", other["rows"] = "100", other["dtype"] = "f32";  // only the layer is an identity key
  require_throws_with<sae::invalid_argument>([&] { data::require_same_data(trained, "ckpt", other, "acts/", false, "--force"); },
                                             {"acts/", "ckpt", "layer '4' vs '5'", "--force"});
  BOOST_CHECK_NO_THROW(data::require_same_data(trained, "ckpt", other, "acts/", true, "--force"));
  BOOST_TEST(data::metadata_conflicts(trained, other).size() == 1u);
  sae::save_checkpoint(dir / "bare", sae::TopKAutoencoder<float>(c));
  BOOST_TEST(sae::checkpoint_data_metadata(dir / "bare").empty());  // nothing recorded: nothing refused
  BOOST_CHECK_NO_THROW(data::require_same_data({}, "bare", other, "acts/", false, "--force"));
}

// A shard set shares one hashing budget: shards larger than their share are sampled, so the
// fingerprint of a set far larger than memory reads about 1 GiB, not the set.
BOOST_AUTO_TEST_CASE(content_hash_samples_past_its_budget) {
  std::vector<unsigned char> bytes(std::size_t{6} << 20);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 2654435761u >> 13);
  const std::string whole = sae::io::content_hash(bytes.data(), bytes.size());
  const std::string sampled = sae::io::content_hash(bytes.data(), bytes.size(), std::size_t{4} << 20);
  BOOST_TEST(whole.rfind("sampled-", 0) == std::string::npos);
  BOOST_TEST(sampled.rfind("sampled-", 0) == 0u);
  bytes.back() ^= 1;  // the last block is always hashed
  BOOST_TEST(sae::io::content_hash(bytes.data(), bytes.size(), std::size_t{4} << 20) != sampled);
  BOOST_TEST(sae::io::content_hash(bytes.data(), bytes.size()) != whole);
}

// The statistics pass shared by parts (data-parallel ranks; threads here): each part reads only its
// blocks, every row is read once in all, and every part gets bitwise the one-process result.
BOOST_AUTO_TEST_CASE(a_statistics_pass_shared_by_parts_is_bitwise_the_single_pass) {
  const Matrix<float> x = sae::test::random_matrix<float>(1003, 6, 41), y = sae::test::random_matrix<float>(1003, 5, 42);
  struct Counting final : data::RowSource<float> {
    data::RowSourcePtr<float> base;
    mutable std::atomic<index_t> read{0};
    index_t rows() const override { return base->rows(); }
    index_t input_dim() const override { return base->input_dim(); }
    bool has_targets() const override { return base->has_targets(); }
    index_t target_dim() const override { return base->target_dim(); }
    std::string describe() const override { return "counting"; }
    void read_input_row(index_t r, float* out) const override { ++read, base->read_input_row(r, out); }
    void read_target_row(index_t r, float* out) const override { base->read_target_row(r, out); }
  };
  const auto paired = std::make_shared<const data::PairedRows<float>>(std::make_shared<const data::MatrixRows<float>>(x),
                                                                     std::make_shared<const data::MatrixRows<float>>(y));
  const data::RowStatistics one = data::stream_statistics(*paired, 64);
  for (int parts : {2, 3, 17}) {
    Counting counting;
    counting.base = paired;
    // An all-reduce among threads: each adds its vector, waits for the rest, takes the total.
    std::mutex mu;
    std::condition_variable cv;
    std::vector<double> total;
    int added = 0;
    const auto sum = [&](std::vector<double>& v) {
      std::unique_lock<std::mutex> lock(mu);
      if (total.empty()) total.assign(v.size(), 0.0);
      for (std::size_t i = 0; i < v.size(); ++i) total[i] += v[i];
      if (++added == parts) cv.notify_all();
      cv.wait(lock, [&] { return added == parts; });
      v = total;
    };
    std::vector<data::RowStatistics> got(static_cast<std::size_t>(parts));
    std::vector<std::thread> threads;
    for (int p = 0; p < parts; ++p)
      threads.emplace_back([&, p] { got[static_cast<std::size_t>(p)] = data::stream_statistics(counting, 64, p, parts, sum); });
    for (auto& t : threads) t.join();
    BOOST_TEST(counting.read.load() == 1003, parts << " parts");
    for (const auto& s : got)
      for (const auto* pair : {&s.inputs, &s.targets}) {
        const data::Moments& want = pair == &s.inputs ? one.inputs : one.targets;
        BOOST_TEST(pair->rows == want.rows);
        BOOST_TEST(pair->sst == want.sst);  // bitwise: the blocks merge in the same order
        BOOST_TEST(pair->sum_squares == want.sum_squares);
        BOOST_TEST(sae::test::same(pair->mean, want.mean));
      }
  }
}

// Released rows read back the same (their pages come back from the page cache or the file), at the
// edges of the mapping too, across shards, and through views and pairs.
BOOST_AUTO_TEST_CASE(released_rows_read_back_the_same) {
  sae::test::ScratchDir dir("rows-release");
  const Matrix<float> m = exact_matrix(3000, 40, 61);  // 160 bytes a row: many rows a page
  save_shards(m, {1000, 2000}, dir / "set");
  const auto set = data::open_rows<float>((dir / "set").string());
  const std::vector<index_t> all = data::row_range(0, 3000), edges = {0, 1, 999, 1000, 2998, 2999};
  require_same_rows(*set, m, all);
  set->release_rows(all.data(), 3000);
  require_same_rows(*set, m, edges);
  set->release_rows(edges.data(), static_cast<index_t>(edges.size()));
  require_same_rows(*set, m, all);
  const data::SelectedRows<float> view(set, {2999, 0, 1500});
  const std::vector<index_t> three = {0, 1, 2};
  view.release_rows(three.data(), 3);
  Matrix<float> got;
  view.read_inputs(three.data(), 3, got);
  BOOST_TEST(sae::test::same(got.row(0), m.row(2999)));
  BOOST_TEST(sae::test::same(got.row(2), m.row(1500)));
}
