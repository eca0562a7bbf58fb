// The distributed sweep and data-parallel training (sae::mpi), launched with mpirun:
//
//   OMP_NUM_THREADS=1 mpirun -np 1 build/benchmarks/bench_mpi [--epochs 10] [--dp-latents 2048]
//   OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe build/benchmarks/bench_mpi
//   (--planted-dim 2048: planted data of report 002's width instead of the bundled slices)
//
// Sweep: the report-001 grid (K in {5,10,20,100} x latent_dim in {512,1024,2048}) at both bundled
// MiniLM slices (layers 1 and 4, position 3: a [7473, 2, 1, 384] array), 24 SAEs handed out by
// mpi::run_sweep; SAEs per minute. Data parallel: one TopK SAE (K=20, --dp-latents) on layer 4,
// batch 256 split over the ranks; seconds per step and bytes each rank receives per step.
#include <sae/mpi/communicator.hpp>
#include <sae/mpi/gradient_exchange.hpp>
#include <sae/mpi/sweep.hpp>
#include <sae/sae.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <unistd.h>

int main(int argc, char** argv) {
  sae::mpi::Session session(argc, argv);
  const sae::mpi::Communicator comm;
  long epochs = 10, dp_latents = 2048, planted_dim = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--epochs")) epochs = std::stol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--planted-dim")) planted_dim = std::stol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dp-latents")) dp_latents = std::stol(argv[i + 1]);
    else return std::fprintf(stderr, "unknown flag %s\n", argv[i]), 2;
  }
  // The bundled slices, or (--planted-dim, e.g. 2048 for report 002's LLaMA-3.2-1B) planted data of that width.
  const auto slice = [&](const char* file, std::uint64_t seed) {
    if (planted_dim <= 0) return sae::data::load_activations<float>(std::string(SAE_EXAMPLES_DATA) + "/" + file);
    sae::data::PlantedConfig pc;
    pc.num_samples = 7473, pc.input_dim = planted_dim, pc.num_features = 2 * planted_dim, pc.k_true = 32;
    pc.noise_std = 0.05, pc.seed = seed;
    return sae::data::make_planted<float>(pc).x;
  };
  const auto layer1 = slice("activations_layer1_pos3.npy", 1), layer4 = slice("activations_layer4_pos3.npy", 4);
  const sae::index_t n = layer4.rows(), d = layer4.cols();
  const std::filesystem::path dir = comm.broadcast(
      comm.rank() == 0 ? (std::filesystem::temp_directory_path() / ("sae-bench-mpi-" + std::to_string(::getpid()))).string()
                       : std::string());
  if (comm.rank() == 0) {
    std::filesystem::create_directories(dir);
    sae::Matrix<float> both(n, 2 * d);  // row i: [layer 1 | layer 4], i.e. [N, 2, 1, D] in C order
    both << layer1, layer4;
    sae::io::save_npy(dir / "acts.npy", both.data(), {n, 2, 1, d});
  }
  comm.barrier();
  using Clock = std::chrono::steady_clock;

  // ---- the sweep ----
  sae::SweepPlan plan;
  plan.slices = {sae::data::LayerPosition{0, 0}, sae::data::LayerPosition{1, 0}};
  plan.ks = {5, 10, 20, 100}, plan.latents = {512, 1024, 2048};
  plan.train = sae::TrainConfig{epochs, 256, 0, true};
  plan.force = true;
  const sae::data::ArraySet view(dir / "acts.npy");
  std::optional<sae::io::RunDirectory> run;
  if (comm.rank() == 0) run.emplace(dir / "sweep", "bench_mpi"), run->set_quiet(true);
  std::ostringstream log;
  comm.barrier();
  auto t = Clock::now();
  const auto results = sae::mpi::run_sweep(view, plan, run ? &*run : nullptr, {log, false}, comm);
  comm.barrier();
  const double sweep_s = std::chrono::duration<double>(Clock::now() - t).count();

  // ---- data parallel ----
  const auto split = sae::data::head_split(n);
  const auto train = sae::data::take_rows(layer4, split.train);
  using Model = sae::TopKAutoencoder<float>;
  Model model(sae::TopKConfig{d, dp_latents, 20});
  const sae::TrainConfig tc{epochs, 256, 0, true, 0};
  auto trainer = sae::make_trainer<Model>(tc, sae::Adam<float>(), sae::mpi::GradientExchange(comm));
  comm.barrier();
  t = Clock::now();
  const auto summary = trainer.fit(model, train, nullptr);
  comm.barrier();
  const double dp_s = std::chrono::duration<double>(Clock::now() - t).count();
  const double steps = static_cast<double>(summary.history.back().steps);
  const auto& x = trainer.exchange();

  if (comm.rank() == 0) {
    const double saes = static_cast<double>(results.size());
    std::printf("bench_mpi: %d ranks x %d threads, N=%ld D=%ld, %ld epochs\n", comm.size(), sae::max_threads(),
                static_cast<long>(n), static_cast<long>(d), epochs);
    const auto longest = *std::max_element(results.begin(), results.end(), [](const auto& a, const auto& b) { return a.seconds < b.seconds; });
    std::printf("  sweep: %.0f SAEs in %.1f s = %.1f SAEs/min; longest SAE %.2f s (K=%ld, d=%ld)\n", saes, sweep_s,
                saes / sweep_s * 60, longest.seconds, static_cast<long>(longest.k), static_cast<long>(longest.latents));
    std::printf("  data parallel (F=%ld, K=20, batch 256): %.2f ms/step (%.2f ms in the exchange), %.3g MB received per "
                "step per rank (weight gradients sparse in %llu of %llu exchanges)\n",
                dp_latents, dp_s / steps * 1e3, x.seconds() / steps * 1e3, x.bytes_received() / std::max<double>(1.0, static_cast<double>(x.exchanges())) / 1e6,
                static_cast<unsigned long long>(x.sparse_exchanges()),
                static_cast<unsigned long long>(x.sparse_exchanges() + x.dense_exchanges()));
    run.reset();
    std::filesystem::remove_all(dir);
  }
  return 0;
}
