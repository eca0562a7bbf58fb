// Training from a sharded set on disk against training from memory (issue 27's acceptance):
//   generate: writes a sharded f16 set of planted rows (F_true unit directions, k_true active with
//             magnitudes in [1, 2), uniform noise) to --out, shard by shard, never holding more
//             than one shard;
//   train:    one TopK run of --steps steps of --batch rows, either streamed from the set (a view of
//             evenly spread blocks of the whole set, block-shuffled, read one batch ahead) or from
//             an in-memory copy of the set's first --memory-rows rows, trained for as many epochs
//             as make about the same steps (same shapes); prints steps/s, the reading rate, the
//             statistics pass before the first step and the peak RSS.
// benchmarks/stream_larger_than_ram.sh runs both, alternating, in separate processes.
//
//   build/benchmarks/bench_stream generate --out DIR --rows 12000000 --dim 2048 [--shard-rows 131072]
//   build/benchmarks/bench_stream train --data DIR --mode stream|memory [--steps 5000 --batch 1024 --latents 4096 -k 32]
#include <sae/sae.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace {

std::map<std::string, std::string> parse(int argc, char** argv, int first) {
  std::map<std::string, std::string> a;
  for (int i = first; i + 1 < argc; i += 2) {
    std::string key = argv[i];
    if (key.rfind("--", 0) == 0) key = key.substr(2);
    else if (key.rfind("-", 0) == 0) key = key.substr(1);
    a[key] = argv[i + 1];
  }
  return a;
}

long long get(const std::map<std::string, std::string>& a, const std::string& key, long long fallback) {
  const auto it = a.find(key);
  return it == a.end() ? fallback : std::atoll(it->second.c_str());
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

int generate(const std::map<std::string, std::string>& a) {
  const std::filesystem::path out = a.at("out");
  const sae::index_t rows = get(a, "rows", 12000000), dim = get(a, "dim", 2048), shard_rows = get(a, "shard-rows", 131072);
  const sae::index_t features = get(a, "features", 8192), k_true = get(a, "k-true", 32);
  std::filesystem::create_directories(out);
  sae::Rng dict_rng(1);
  sae::Matrix<float> dictionary(features, dim);
  for (sae::index_t i = 0; i < dictionary.size(); ++i) dictionary.data()[i] = static_cast<float>(dict_rng.normal());
  dictionary.rowwise().normalize();
  sae::io::NpySaveOptions half;
  half.dtype = sae::io::DType::f2;
  const auto start = std::chrono::steady_clock::now();
  sae::Matrix<float> shard;
  for (sae::index_t first = 0, s = 0; first < rows; first += shard_rows, ++s) {
    const sae::index_t n = std::min(shard_rows, rows - first);
    shard.setZero(n, dim);
#if SAE_USE_OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (sae::index_t i = 0; i < n; ++i) {
      sae::Rng rng(1000003ull * static_cast<std::uint64_t>(first + i) + 7);
      for (sae::index_t j = 0; j < dim; ++j) shard(i, j) = static_cast<float>(0.1 * (rng.uniform() - 0.5));  // cheap noise
      for (sae::index_t t = 0; t < k_true; ++t)
        shard.row(i) += static_cast<float>(1.0 + rng.uniform()) * dictionary.row(static_cast<sae::index_t>(rng.uniform_int(features)));
    }
    char name[64];
    std::snprintf(name, sizeof name, "shard-%05lld.npy", static_cast<long long>(s));
    sae::io::save_npy(out / name, shard, half);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("\rwrote %lld of %lld rows (%.0f s)", static_cast<long long>(first + n), static_cast<long long>(rows), secs);
    std::fflush(stdout);
  }
  std::printf("\n");
  return 0;
}

int train(const std::map<std::string, std::string>& a) {
  const std::string mode = a.count("mode") ? a.at("mode") : "stream";
  const sae::index_t steps = get(a, "steps", 5000), batch = get(a, "batch", 1024), latents = get(a, "latents", 4096),
                     k = get(a, "k", 32), block = get(a, "shuffle-block", 4096);
  const auto set = sae::data::open_rows<float>(a.at("data"));
  const sae::index_t used = steps * batch;
  if (used > set->rows()) {
    std::fprintf(stderr, "bench_stream: %lld steps of %lld rows need %lld rows; the set has %lld\n", static_cast<long long>(steps),
                 static_cast<long long>(batch), static_cast<long long>(used), static_cast<long long>(set->rows()));
    return 1;
  }
  sae::data::RowSourcePtr<float> rows;
  sae::TrainConfig tc;
  tc.epochs = 1, tc.batch_size = batch, tc.validate_every = 0;
  if (mode == "memory") {
    const sae::index_t in_memory = std::min(used, static_cast<sae::index_t>(get(a, "memory-rows", 262144)));
    tc.epochs = std::max<sae::index_t>(1, (used + in_memory - 1) / in_memory);
    rows = std::make_shared<const sae::data::MatrixRows<float>>(
        sae::data::read_all_inputs(sae::data::SelectedRows<float>(set, sae::data::row_range(0, in_memory))), "first rows in memory");
  } else {
    // Blocks of `block` rows spread evenly over the whole set: the batches come from all of it.
    const sae::index_t blocks = (used + block - 1) / block, stride = set->rows() / blocks;
    std::vector<sae::index_t> view;
    for (sae::index_t b = 0; b < blocks && static_cast<sae::index_t>(view.size()) < used; ++b)
      for (sae::index_t r = b * stride; r < b * stride + block && static_cast<sae::index_t>(view.size()) < used; ++r)
        view.push_back(r);
    rows = std::make_shared<const sae::data::SelectedRows<float>>(set, std::move(view), "spread blocks");
  }
  if (mode != "memory") tc.shuffle_block = block;
  using Model = sae::TopKAutoencoder<float>;
  Model model(sae::TopKConfig{set->input_dim(), latents, k});
  const double rss_before = peak_rss_mb();
  const auto begin = std::chrono::steady_clock::now();
  const auto summary = sae::make_trainer<Model>(tc, sae::Adam<float>()).fit(model, *rows, nullptr);
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  const double secs = summary.seconds, ran_steps = static_cast<double>(summary.history.back().steps);
  const double mb = ran_steps * static_cast<double>(batch) * static_cast<double>(set->input_dim()) * 2.0 / 1e6;  // f16 on disk
  std::printf("mode=%s rows=%lld D=%lld F=%lld K=%lld steps=%.0f batch=%lld seconds=%.1f steps_per_s=%.3f read_MB_per_s=%.0f "
              "statistics_pass_s=%.1f train_ev=%.4f peak_rss_MB=%.0f rss_before_training_MB=%.0f\n",
              mode.c_str(), static_cast<long long>(rows->rows()), static_cast<long long>(set->input_dim()),
              static_cast<long long>(latents), static_cast<long long>(k), ran_steps, static_cast<long long>(batch), secs,
              ran_steps / secs, mb / secs, total - secs, summary.history.back().train_ev, peak_rss_mb(), rss_before);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    const auto args = parse(argc, argv, 2);
    if (cmd == "generate") return generate(args);
    if (cmd == "train") return train(args);
    std::fprintf(stderr, "usage: bench_stream generate --out DIR [--rows N --dim D --shard-rows S]\n"
                         "       bench_stream train --data DIR --mode stream|memory [--steps S --batch B --latents F -k K]\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_stream: %s\n", e.what());
    return 1;
  }
}
