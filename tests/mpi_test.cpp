// Run under mpirun with 2 or more ranks (ctest does: mpirun -np 2). Data-parallel training against
// one process holding the whole batch, and the distributed sweep against the single-process one.
#define BOOST_TEST_MODULE mpi
#include "test_helpers.hpp"

#include <sae/data/planted.hpp>
#include <sae/mpi/communicator.hpp>
#include <sae/mpi/gradient_exchange.hpp>
#include <sae/mpi/sweep.hpp>
#include <sae/sae.hpp>

#include <cstring>
#include <sstream>

using sae::index_t;

namespace {

struct MpiFixture {
  MpiFixture() {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
  }
  ~MpiFixture() { MPI_Finalize(); }
};

using Model = sae::TopKAutoencoder<float>;

sae::data::PlantedData<float> planted(index_t n, index_t f_true) {
  sae::data::PlantedConfig c;
  c.num_samples = n, c.input_dim = 16, c.num_features = f_true, c.k_true = 3, c.seed = 11;
  return sae::data::make_planted<float>(c);
}

// A content hash of every parameter, to compare replicas bitwise across ranks.
std::uint64_t parameter_hash(const Model& m) {
  std::uint64_t h = 1469598103934665603ull;
  const auto mix = [&](const float* p, index_t n) {
    for (index_t i = 0; i < n; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, p + i, 4);
      h = (h ^ bits) * 1099511628211ull;
    }
  };
  const auto& p = m.parameters();
  mix(p.w_enc.data(), p.w_enc.size()), mix(p.b_enc.data(), p.b_enc.size()), mix(p.w_dec.data(), p.w_dec.size());
  return h;
}

double max_relative_difference(const sae::Matrix<float>& a, const sae::Matrix<float>& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(1e-30f, b.cwiseAbs().maxCoeff());
}

// One step's gradient: the ranks' shares summed equal one process's over the whole batch.
void check_one_step(index_t latents, index_t batch_rows, bool expect_sparse) {
  const sae::mpi::Communicator comm;
  const auto data = planted(batch_rows, 24);
  Model model(sae::TopKConfig{16, latents, 4});
  Model::Gradients whole, share;
  Model::Workspace ws;
  model.loss_and_gradient(data.x, whole, ws);
  const auto [first, last] = sae::rank_share(0, batch_rows, comm.rank(), comm.size());
  const sae::Matrix<float> mine = data.x.middleRows(first, last - first);
  model.loss_and_gradient(mine, share, ws);
  sae::mpi::GradientExchange exchange(comm);
  exchange.sum_gradients(share, static_cast<double>(last - first) / static_cast<double>(batch_rows));
  BOOST_TEST((expect_sparse ? exchange.sparse_exchanges() : exchange.dense_exchanges()) == 2u);
  BOOST_TEST(share.w_dec.rows == whole.w_dec.rows);  // the union of the ranks' rows, ascending
  BOOST_TEST(share.w_enc.rows == whole.w_enc.rows);
  BOOST_TEST(max_relative_difference(share.w_dec.to_dense(), whole.w_dec.to_dense()) < 1e-5);
  BOOST_TEST(max_relative_difference(share.w_enc.to_dense(), whole.w_enc.to_dense()) < 1e-5);
  BOOST_TEST((share.b_enc - whole.b_enc).cwiseAbs().maxCoeff() <= 1e-5 * whole.b_enc.cwiseAbs().maxCoeff());
  BOOST_TEST(exchange.bytes_received() > 0.0);
}

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(MpiFixture);

BOOST_AUTO_TEST_CASE(runs_on_several_ranks) {
  BOOST_REQUIRE_MESSAGE(sae::mpi::Communicator().size() >= 2, "run this test with mpirun -np 2 (or more)");
}

// Few rows touched by a large dictionary: the rows travel sparsely.
BOOST_AUTO_TEST_CASE(sparse_gradient_sum_equals_the_whole_batch) { check_one_step(512, 40, true); }

// Every row touched on every rank: the dense allreduce moves fewer bytes.
BOOST_AUTO_TEST_CASE(dense_gradient_sum_equals_the_whole_batch) { check_one_step(8, 200, false); }

// JumpReLU's log-threshold gradient is summed too (a dense vector beside the biases).
BOOST_AUTO_TEST_CASE(jumprelu_threshold_gradients_are_summed) {
  const sae::mpi::Communicator comm;
  const auto data = planted(60, 24);
  sae::JumpReluConfig c;
  c.input_dim = 16, c.num_latents = 32, c.bandwidth = 0.5, c.sparsity_coefficient = 2;
  sae::JumpReluAutoencoder<float> model(c);
  model.parameters().log_threshold.setConstant(std::log(0.3f));
  sae::JumpReluAutoencoder<float>::Gradients whole, share;
  sae::JumpReluAutoencoder<float>::Workspace ws;
  model.loss_and_gradient(data.x, whole, ws);
  const auto [first, last] = sae::rank_share(0, 60, comm.rank(), comm.size());
  model.loss_and_gradient(data.x.middleRows(first, last - first), share, ws);
  sae::mpi::GradientExchange(comm).sum_gradients(share, static_cast<double>(last - first) / 60.0);
  BOOST_TEST((whole.log_threshold.array() != 0).count() > 0);
  BOOST_TEST((share.log_threshold - whole.log_threshold).cwiseAbs().maxCoeff() <= 1e-5 * whole.log_threshold.cwiseAbs().maxCoeff());
  BOOST_TEST(max_relative_difference(share.w_enc.to_dense(), whole.w_enc.to_dense()) < 1e-5);
}

// Whole trainings: the replicas stay bitwise identical, and match one process up to the
// floating-point summation order (tolerance stated in sae/mpi/gradient_exchange.hpp).
BOOST_AUTO_TEST_CASE(data_parallel_training_matches_one_process) {
  const sae::mpi::Communicator comm;
  const auto data = planted(1200, 24);
  const sae::Matrix<float> train = data.x.topRows(1000), val = data.x.bottomRows(200);
  const sae::TopKConfig config{16, 64, 4};
  const sae::TrainConfig tc{4, 100, 5, true};
  Model alone(config), parallel(config);
  const auto one = sae::make_trainer<Model>(tc, sae::Adam<float>(sae::AdamConfig{3e-3})).fit(alone, train, &val);
  auto trainer = sae::make_trainer<Model>(tc, sae::Adam<float>(sae::AdamConfig{3e-3}), sae::mpi::GradientExchange(comm));
  const auto many = trainer.fit(parallel, train, &val);
  const auto hashes = comm.gather_all(static_cast<unsigned long long>(parameter_hash(parallel)));
  for (auto h : hashes) BOOST_TEST(h == hashes.front());
  BOOST_TEST(max_relative_difference(parallel.parameters().w_dec, alone.parameters().w_dec) < 1e-3);
  BOOST_TEST(max_relative_difference(parallel.parameters().w_enc, alone.parameters().w_enc) < 1e-3);
  BOOST_REQUIRE_EQUAL(many.history.size(), one.history.size());
  for (std::size_t e = 0; e < one.history.size(); ++e) {
    BOOST_TEST(many.history[e].train_loss == one.history[e].train_loss, boost::test_tools::tolerance(1e-4));
    BOOST_TEST(*many.history[e].validation_loss == *one.history[e].validation_loss, boost::test_tools::tolerance(1e-4));
  }
  BOOST_TEST(trainer.exchange().exchanges() == 4u * 10u);
  // A batch too small to give every rank a row is refused on every rank alike.
  const sae::Matrix<float> tiny = train.topRows(101);  // the last batch has 1 row
  sae::test::require_throws_with<sae::invalid_argument>([&] { trainer.fit(parallel, tiny, nullptr); },
                                                        {"a batch of 1 rows cannot be split over"});
}

namespace {
// Rank 0's scratch folder, shared with the other ranks (one machine here), holding acts.npy: normal
// draws of `shape` from `seed`; every rank returns once it is written.
struct SharedArray {
  std::optional<sae::test::ScratchDir> scratch;  // rank 0 owns (and removes) it
  std::filesystem::path dir;
  SharedArray(const std::string& tag, std::uint64_t seed, const std::vector<index_t>& shape) {
    const sae::mpi::Communicator comm;
    if (comm.rank() == 0) scratch.emplace(tag);
    dir = comm.broadcast(scratch ? scratch->path.string() : std::string());
    if (comm.rank() == 0) {
      sae::Rng rng(seed);
      index_t n = 1;
      for (index_t e : shape) n *= e;
      std::vector<float> a(static_cast<std::size_t>(n));
      for (auto& v : a) v = static_cast<float>(rng.normal());
      sae::io::save_npy(dir / "acts.npy", a.data(), shape);
    }
    comm.barrier();
  }
};

// A sweep into `out`, committed by rank 0 (as sae-sweep --mpi does); the log is rank 0's.
std::vector<sae::SweepResult> distributed(const sae::data::ArraySet& view, const sae::SweepPlan& plan,
                                          const std::filesystem::path& out, std::ostringstream& log) {
  const sae::mpi::Communicator comm;
  std::optional<sae::io::RunDirectory> run;
  if (comm.rank() == 0) run.emplace(out, "mpi_test"), run->set_quiet(true);
  auto results = sae::mpi::run_sweep(view, plan, run ? &*run : nullptr, {log, false}, comm);
  if (run) run->commit({"configs"});
  comm.barrier();
  return results;
}
}  // namespace

BOOST_AUTO_TEST_CASE(distributed_sweep_matches_the_single_process_sweep_and_resumes) {
  const sae::mpi::Communicator comm;
  const SharedArray shared("mpi-sweep", 5, {300, 2, 2, 8});
  const std::filesystem::path& dir = shared.dir;
  const sae::data::ArraySet view(dir / "acts.npy");
  sae::SweepPlan plan;
  plan.slices.clear();
  for (index_t l : {0, 1})
    for (index_t p : {0, 1}) plan.slices.push_back(sae::data::LayerPosition{l, p});
  plan.ks = {1, 2}, plan.latents = {4, 8};
  plan.train = sae::TrainConfig{2, 64, 3, true};
  plan.validation_fraction = 0.2;

  // The single-process reference, with its first group only (a run stopped early): the
  // distributed run reuses those 4 and trains the other 12.
  std::vector<sae::SweepResult> reference;
  if (comm.rank() == 0) {
    std::ostringstream quiet;
    sae::io::RunDirectory ref(dir / "reference", "mpi_test");
    ref.set_quiet(true);
    reference = sae::run_sweep(view, plan, ref, {quiet, false});
    auto first = plan;
    first.max_slices = 1;
    sae::io::RunDirectory partial(dir / "out", "mpi_test");
    partial.set_quiet(true);
    BOOST_TEST(sae::run_sweep(view, first, partial, {quiet, false}).size() == 4u);
    partial.commit({"configs"});
  }
  std::ostringstream log;
  const auto results = distributed(view, plan, dir / "out", log);
  if (comm.rank() != 0) {
    BOOST_TEST(results.empty());
    return;
  }
  BOOST_TEST(log.str().find("12 SAEs to train on " + std::to_string(comm.size()) + " ranks (4 reused)") != std::string::npos, log.str());
  BOOST_REQUIRE_EQUAL(results.size(), reference.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    BOOST_TEST(results[i].k == reference[i].k);  // plan order
    BOOST_TEST(results[i].latents == reference[i].latents);
    BOOST_TEST(results[i].val.explained_variance == reference[i].val.explained_variance);  // bitwise
    BOOST_TEST(results[i].val.dead_fraction == reference[i].val.dead_fraction);
    BOOST_TEST(results[i].val.mse == reference[i].val.mse);
  }
  BOOST_TEST(std::distance(std::filesystem::directory_iterator(dir / "out" / "configs"), {}) == 16);
}

// Run again with everything finished: nothing is handed out, every rank stops cleanly.
BOOST_AUTO_TEST_CASE(a_finished_distributed_sweep_trains_nothing) {
  const sae::mpi::Communicator comm;
  const SharedArray shared("mpi-sweep-done", 6, {200, 8});
  const std::filesystem::path& dir = shared.dir;
  const sae::data::ArraySet view(dir / "acts.npy");
  sae::SweepPlan plan;
  plan.ks = {1, 2}, plan.latents = {4};
  plan.train = sae::TrainConfig{1, 50, 1, true};
  plan.validation_fraction = 0.25;
  std::ostringstream first, second;
  const auto a = distributed(view, plan, dir / "out", first);
  const auto b = distributed(view, plan, dir / "out", second);
  if (comm.rank() == 0) {
    BOOST_TEST(second.str().find("every SAE of the plan is already finished") != std::string::npos, second.str());
    BOOST_REQUIRE_EQUAL(a.size(), 2u);
    BOOST_REQUIRE_EQUAL(b.size(), 2u);
    BOOST_TEST(a[1].val.mse == b[1].val.mse);
  }
}
