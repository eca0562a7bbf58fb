// The CUDA backend on the report-001 shapes: seconds per SAE (5,978 train rows of D = 2,048, batch
// 256, the shared Trainer and Adam; explained variance on the 1,495 validation rows after them),
// the projected report-002 sweep (1,152 SAEs = 96 (layer, position) groups x these 12 configs), and
// the top-k kernel's throughput against a full CUB segmented sort of the same rows. Needs a GPU
// for every mode but write-data; prints "no CUDA device; nothing measured" and exits 0 without one.
//
//   build/benchmarks/bench_cuda [epochs] [data.npy]     the grid + top-k (default: 25 epochs,
//       7,473 x 2,048 planted rows; with a file, its first 5,978 rows train and the rest score —
//       benchmarks/cuda/compare_torch_cuda.py passes the same file to PyTorch)
//   build/benchmarks/bench_cuda one K F epochs [data.npy]      one SAE, the grid's columns
//   build/benchmarks/bench_cuda parity [epochs] [K] [F] [data.npy]   (default 5 epochs, K=20, F=1024)
//       the same SAE trained from the same initial weights, data and batch order on the CPU and on
//       the GPU: each one's validation EV and how far their active latents agree on validation rows
//   build/benchmarks/bench_cuda write-data out.npy      the default planted rows as .npy (no GPU)
//
// benchmarks/cuda/gpu_check.sh runs all of these on a GPU machine.
#include <sae/sae.hpp>
#include <sae/cuda.hpp>

#include <cub/device/device_segmented_radix_sort.cuh>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Rows/s of our top-k kernel and of a full descending segmented sort (CUB) on [rows, f].
void bench_topk(int rows, int f, int k) {
  namespace kn = sae::cuda_backend::kernels;
  sae::cuda_backend::Context ctx;
  sae::Rng rng(1);
  std::vector<float> host(static_cast<std::size_t>(rows) * f);
  for (auto& v : host) v = static_cast<float>(rng.normal());
  sae::cuda_backend::DeviceBuffer<float> pre, sorted;
  sae::cuda_backend::DeviceBuffer<int> idx, offsets;
  sae::cuda_backend::DeviceBuffer<float> val;
  pre.upload(host.data(), host.size(), ctx);
  idx.resize(static_cast<std::size_t>(rows) * k);
  val.resize(static_cast<std::size_t>(rows) * k);
  const int reps = 50;
  ctx.synchronize();
  auto t = Clock::now();
  for (int r = 0; r < reps; ++r)
    kn::topk_rows_kernel<false><<<rows, kn::kTopkThreads, 0, ctx.stream()>>>(pre.data(), f, k, idx.data(), val.data());
  SAE_CUDA_CHECK_LAUNCH();
  ctx.synchronize();
  const double ours = since(t) / reps;

  std::vector<int> off(static_cast<std::size_t>(rows) + 1);
  for (int i = 0; i <= rows; ++i) off[static_cast<std::size_t>(i)] = i * f;
  offsets.upload(off.data(), off.size(), ctx);
  sorted.resize(host.size());
  std::size_t bytes = 0;
  SAE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeysDescending(nullptr, bytes, pre.data(), sorted.data(),
                                                                    rows * f, rows, offsets.data(), offsets.data() + 1,
                                                                    0, 32, ctx.stream()));
  sae::cuda_backend::DeviceBuffer<unsigned char> temp(bytes);
  ctx.synchronize();
  t = Clock::now();
  for (int r = 0; r < reps; ++r)
    SAE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeysDescending(temp.data(), bytes, pre.data(), sorted.data(),
                                                                      rows * f, rows, offsets.data(), offsets.data() + 1,
                                                                      0, 32, ctx.stream()));
  ctx.synchronize();
  const double sort = since(t) / reps;
  std::printf("%6d %6d %4d %12.3f %12.3f %7.1fx\n", rows, f, k, rows / ours / 1e6, rows / sort / 1e6, sort / ours);
}

constexpr long kDim = 2048, kTrainRows = 5978, kPlantedRows = 7473;
using GpuModel = sae::TopKAutoencoder<float, sae::cuda>;
using CpuModel = sae::TopKAutoencoder<float>;

// The reports' rows: the first 5,978 train, the rest (1,495 for the planted default) score.
struct Rows {
  sae::Matrix<float> train, validation;
  std::string what;
};

sae::Matrix<float> planted_rows() {
  sae::data::PlantedConfig pc;
  pc.num_samples = kPlantedRows;
  pc.input_dim = kDim;
  pc.num_features = 4096;
  pc.k_true = 32;
  pc.noise_std = 0.05;
  return sae::data::make_planted<float>(pc).x;
}

Rows load_rows(const char* path) {
  const sae::Matrix<float> x = path ? sae::io::load_npy_matrix<float>(path) : planted_rows();
  if (x.cols() != kDim) {
    std::fprintf(stderr, "bench_cuda: %s has %ld columns, need %ld\n", path, static_cast<long>(x.cols()), kDim);
    std::exit(2);
  }
  Rows r;
  const long n = static_cast<long>(x.rows());
  if (n > kTrainRows) {
    r.train = x.topRows(kTrainRows);
    r.validation = x.bottomRows(n - kTrainRows);
  } else {  // too few rows to hold any out: score on the training rows, and say so
    r.train = x;
    r.validation = x;
  }
  r.what = std::string(path ? path : "planted") + ": " + std::to_string(r.train.rows()) + " train rows, " +
           (n > kTrainRows ? std::to_string(n - kTrainRows) + " validation rows"
                           : std::string("EV scored on the training rows (none held out)"));
  return r;
}

sae::TrainConfig train_config(long epochs) { return sae::TrainConfig{epochs, 256, 0, true}; }

// Trains one SAE on the GPU; prints "K F s/SAE EV" (EV on the validation rows).
double train_one(const Rows& rows, long k, long f, long epochs) {
  GpuModel model(sae::TopKConfig{kDim, f, k});
  auto trainer = sae::make_trainer<GpuModel>(train_config(epochs), sae::Adam<float, sae::cuda>());
  sae::cuda_backend::context().synchronize();
  const auto t = Clock::now();
  trainer.fit(model, rows.train, nullptr);
  sae::cuda_backend::context().synchronize();
  const double s = since(t);
  std::printf("%5ld %5ld %9.3f %8.4f\n", k, f, s, sae::metrics::evaluate(model, rows.validation).explained_variance);
  std::fflush(stdout);
  return s;
}

bool have_device() {
  if (sae::cuda_device_count() > 0) return true;
  std::printf("bench_cuda: no CUDA device; nothing measured\n");
  return false;
}

void print_device(const char* what, long epochs) {
  cudaDeviceProp prop{};
  SAE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("bench_cuda %s: %s, D=%ld batch=256 epochs=%ld, fp32 GEMM\n", what, prop.name, kDim, epochs);
}

// CPU and GPU from the same initial weights, data and batch order. Prints one line of key=value
// pairs (gpu_check.sh reads it): each backend's validation EV and training seconds; on the
// validation rows, the Jaccard index of the (row, latent) pairs active under each (pooled over
// rows), the share of the CPU's active pairs the GPU also has (metrics::active_overlap), and the
// Jaccard index of the two sets of latents alive on those rows; the largest weight difference.
int parity(long epochs, long k, long f, const char* path) {
  const Rows rows = load_rows(path);
  print_device("parity", epochs);
  std::printf("%s; K=%ld F=%ld\n", rows.what.c_str(), k, f);
  const sae::TopKConfig c{kDim, f, k};
  CpuModel cpu(c);
  GpuModel gpu(c, cpu.parameters());
  auto cpu_trainer = sae::make_trainer<CpuModel>(train_config(epochs), sae::Adam<float>());
  auto gpu_trainer = sae::make_trainer<GpuModel>(train_config(epochs), sae::Adam<float, sae::cuda>());
  auto t = Clock::now();
  cpu_trainer.fit(cpu, rows.train, nullptr);
  const double cpu_s = since(t);
  sae::cuda_backend::context().synchronize();
  t = Clock::now();
  gpu_trainer.fit(gpu, rows.train, nullptr);
  sae::cuda_backend::context().synchronize();
  const double gpu_s = since(t);

  const auto ec = sae::metrics::evaluate(cpu, rows.validation), eg = sae::metrics::evaluate(gpu, rows.validation);
  const auto a = cpu.encode(rows.validation), b = gpu.encode(rows.validation);
  std::int64_t active_a = 0, active_b = 0, shared = 0;
  for (sae::index_t i = 0; i < a.rows; ++i) {
    for (sae::index_t s = 0; s < b.k; ++s) active_b += b.row_values(i)[s] > 0.0f;
    for (sae::index_t s = 0; s < a.k; ++s) {
      if (!(a.row_values(i)[s] > 0.0f)) continue;
      ++active_a;
      for (sae::index_t u = 0; u < b.k; ++u)
        if (b.row_indices(i)[u] == a.row_indices(i)[s] && b.row_values(i)[u] > 0.0f) {
          ++shared;
          break;
        }
    }
  }
  const std::int64_t either = active_a + active_b - shared;
  long alive_a = 0, alive_b = 0, alive_both = 0;
  for (std::size_t j = 0; j < ec.activation_frequency.size(); ++j) {
    const bool x = ec.activation_frequency[j] > 0, y = eg.activation_frequency[j] > 0;
    alive_a += x;
    alive_b += y;
    alive_both += x && y;
  }
  const long alive_either = alive_a + alive_b - alive_both;
  const float dw = (gpu.parameters().w_dec - cpu.parameters().w_dec).cwiseAbs().maxCoeff();
  std::printf("parity: K=%ld F=%ld epochs=%ld cpu_ev=%.4f cuda_ev=%.4f row_jaccard=%.4f cpu_pairs_on_gpu=%.4f "
              "alive_jaccard=%.4f alive_cpu=%ld alive_cuda=%ld max_w_dec_diff=%.3g cpu_s=%.2f cuda_s=%.2f\n",
              k, f, epochs, ec.explained_variance, eg.explained_variance,
              either > 0 ? static_cast<double>(shared) / static_cast<double>(either) : 1.0,
              sae::metrics::active_overlap(a, b),
              alive_either > 0 ? static_cast<double>(alive_both) / static_cast<double>(alive_either) : 1.0, alive_a,
              alive_b, static_cast<double>(dw), cpu_s, gpu_s);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "write-data") {
    if (argc != 3) {
      std::fprintf(stderr, "usage: bench_cuda write-data out.npy\n");
      return 2;
    }
    sae::io::save_npy(argv[2], planted_rows());
    std::printf("bench_cuda: wrote %ld x %ld planted rows to %s\n", kPlantedRows, kDim, argv[2]);
    return 0;
  }
  if (mode == "parity") {
    if (!have_device()) return 0;
    return parity(argc > 2 ? std::atol(argv[2]) : 5, argc > 3 ? std::atol(argv[3]) : 20,
                  argc > 4 ? std::atol(argv[4]) : 1024, argc > 5 ? argv[5] : nullptr);
  }
  if (mode == "one") {
    if (argc < 5) {
      std::fprintf(stderr, "usage: bench_cuda one K F epochs [data.npy]\n");
      return 2;
    }
    if (!have_device()) return 0;
    const long k = std::atol(argv[2]), f = std::atol(argv[3]), epochs = std::atol(argv[4]);
    const Rows rows = load_rows(argc > 5 ? argv[5] : nullptr);
    print_device("one", epochs);
    std::printf("%s\n%5s %5s %9s %8s\n", rows.what.c_str(), "K", "F", "s/SAE", "val EV");
    train_one(rows, k, f, epochs);
    std::size_t free_b = 0, total_b = 0;
    SAE_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    std::printf("device memory in use after training: %.2f GiB of %.2f GiB\n", (total_b - free_b) / 1073741824.0,
                total_b / 1073741824.0);
    return 0;
  }

  if (!have_device()) return 0;
  const long epochs = argc > 1 ? std::atol(argv[1]) : 25;
  const Rows rows = load_rows(argc > 2 ? argv[2] : nullptr);
  print_device("grid", epochs);
  std::printf("%s\n%5s %5s %9s %8s\n", rows.what.c_str(), "K", "F", "s/SAE", "val EV");
  double grid = 0;
  for (long f : {512, 1024, 2048})
    for (long k : {5, 10, 20, 100}) grid += train_one(rows, k, f, epochs);
  std::printf("report-001 grid: %.1f s; projected report-002 sweep (96 groups x 12 configs = 1,152 SAEs): %.1f min\n",
              grid, grid * 96 / 60);

  std::printf("\ntop-k: million rows/s, ours vs a full CUB segmented sort\n%6s %6s %4s %12s %12s %8s\n", "rows", "F", "K",
              "ours", "CUB sort", "ratio");
  for (int f : {2048, 16384, 65536})
    for (int k : {20, 100, 512}) bench_topk(256, f, k);
  return 0;
}
