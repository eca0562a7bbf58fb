// The CUDA backend on the report-001 shapes: seconds per SAE (N = 5,978 train rows of D = 2,048,
// 25 epochs, batch 256, the shared Trainer and Adam), the projected report-002 sweep (1,152 SAEs =
// 96 (layer, position) groups x these 12 configs), and the top-k kernel's throughput against a
// full CUB segmented sort of the same rows. Needs a GPU; prints a note and exits 0 without one.
//
//   build/benchmarks/bench_cuda [epochs] [data.npy]   (default: 25 epochs, planted data;
//   with a file, its first 5,978 rows — benchmarks/cuda/compare_torch_cuda.py passes the same
//   file to PyTorch)
#include <sae/cuda.hpp>

#include <cub/device/device_segmented_radix_sort.cuh>

#include <chrono>
#include <cstdio>
#include <cstdlib>

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
}  // namespace

int main(int argc, char** argv) {
  if (sae::cuda_device_count() == 0) {
    std::printf("bench_cuda: no CUDA device; nothing measured\n");
    return 0;
  }
  const long epochs = argc > 1 ? std::atol(argv[1]) : 25;
  cudaDeviceProp prop{};
  SAE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("bench_cuda: %s, N=5978 D=2048 batch=256 epochs=%ld, fp32 GEMM\n", prop.name, epochs);

  sae::data::PlantedConfig pc;
  pc.num_samples = 5978;
  pc.input_dim = 2048;
  pc.num_features = 4096;
  pc.k_true = 32;
  pc.noise_std = 0.05;
  const sae::Matrix<float> x = argc > 2 ? sae::Matrix<float>(sae::io::load_npy_matrix<float>(argv[2]).topRows(5978))
                                        : sae::data::make_planted<float>(pc).x;
  using Model = sae::TopKAutoencoder<float, sae::cuda>;
  std::printf("%5s %5s %9s %8s\n", "K", "F", "s/SAE", "EV");
  double grid = 0;
  for (long f : {512, 1024, 2048})
    for (long k : {5, 10, 20, 100}) {
      Model model(sae::TopKConfig{2048, f, k});
      auto trainer = sae::make_trainer<Model>(sae::TrainConfig{epochs, 256, 0, true}, sae::Adam<float, sae::cuda>());
      const auto t = Clock::now();
      trainer.fit(model, x, nullptr);
      sae::cuda_backend::context().synchronize();
      const double s = since(t);
      grid += s;
      std::printf("%5ld %5ld %9.3f %8.4f\n", k, f, s, sae::metrics::evaluate(model, x).explained_variance);
    }
  std::printf("report-001 grid: %.1f s; projected report-002 sweep (96 groups x 12 configs = 1,152 SAEs): %.1f min\n",
              grid, grid * 96 / 60);

  std::printf("\ntop-k: million rows/s, ours vs a full CUB segmented sort\n%6s %6s %4s %12s %12s %8s\n", "rows", "F", "K",
              "ours", "CUB sort", "ratio");
  for (int f : {2048, 16384, 65536})
    for (int k : {20, 100, 512}) bench_topk(256, f, k);
  return 0;
}
