// Small helpers shared by the example programs: CLI error handling and run-directory setup.
#pragma once

#include <sae/sae.hpp>

#include <cxxopts.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <filesystem>
#include <iostream>
#include <string>
#include <unistd.h>

namespace sae::examples {

// Runs `body`, turning every failure into one clear line on stderr and a non-zero exit code.
template <class Body>
int run_main(const char* program, Body&& body) {
  try {
    return body();
  } catch (const cxxopts::exceptions::exception& e) {
    std::cerr << program << ": " << e.what() << " (see --help)\n";
    return 2;
  } catch (const sae::invalid_argument& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 1;
  }
}

// One number through a printf format, for tables and messages.
inline std::string fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

// Throws a usage error unless `ok`.
inline void check_flag(bool ok, const std::string& message) {
  if (!ok) throw sae::invalid_argument(message);
}

inline void make_output_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw sae::io_error(dir.string(), "cannot create output directory: " + ec.message());
}

// Sets the OpenMP/Eigen thread count when the user asked for one (0 = leave the default).
inline void set_threads(int threads) {
  check_flag(threads >= 0, "--threads must be >= 0, got " + std::to_string(threads));
#if SAE_USE_OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#endif
}

// Adds the data flags shared by the examples: --data, --layer, --position, --val-fraction.
inline void add_data_options(cxxopts::Options& options, const std::string& default_data) {
  // clang-format off
  options.add_options("data")
    ("data", "activations .npy, [N, D] or [N, layers, positions, D]", cxxopts::value<std::string>()->default_value(default_data))
    ("layer", "layer of a 4-D array (default 0)", cxxopts::value<long>())
    ("position", "position of a 4-D array (default 0)", cxxopts::value<long>())
    ("val-fraction", "hold out this fraction at random instead of the reports' split "
                     "(used anyway when N <= 5,978)", cxxopts::value<double>());
  // clang-format on
}

struct SplitData {
  sae::Matrix<float> train, validation;
  std::string source;  // file and slice, for reports
  std::string split;   // how rows were split, for reports
  index_t rows = 0;
};

// Splits rows the reports' way (first 5,978 train) unless a validation fraction is asked for or
// the data is too small for it.
inline SplitData split_rows(const sae::Matrix<float>& all, std::string source, std::optional<double> val_fraction,
                            std::uint64_t seed) {
  SplitData d;
  d.source = std::move(source);
  d.rows = all.rows();
  sae::data::Split split;
  if (val_fraction || all.rows() <= sae::data::kReportsTrainRows) {
    const double fraction = val_fraction.value_or(0.2);
    split = sae::data::fractional_split(all.rows(), fraction, seed);
    char buf[64];
    std::snprintf(buf, sizeof buf, "seeded random split, %.4g%% held out", 100 * fraction);
    d.split = buf;
  } else {
    split = sae::data::head_split(all.rows(), sae::data::kReportsTrainRows);
    d.split = "reports' split: first 5,978 rows train, the rest validate";
  }
  d.train = sae::data::take_rows(all, split.train);
  d.validation = sae::data::take_rows(all, split.validation);
  return d;
}

// Loads --data (a 4-D array at --layer/--position, default (0, 0)); `all` receives every row.
inline std::string load_data_flag(const cxxopts::ParseResult& args, sae::Matrix<float>& all) {
  const std::string path = args["data"].as<std::string>();
  std::optional<sae::data::LayerPosition> where;
  const sae::io::NpyMmap view(path);
  if (args.count("layer") || args.count("position") || view.rank() == 4)
    where = sae::data::LayerPosition{args.count("layer") ? args["layer"].as<long>() : 0,
                                     args.count("position") ? args["position"].as<long>() : 0};
  all = sae::data::gather_activations<float>(view, where);
  return path + (where ? " (layer " + std::to_string(where->layer) + ", position " + std::to_string(where->position) + ")"
                       : "");
}

// "samples.jsonl beside the data" unless --samples says otherwise.
inline std::string samples_path_for(const cxxopts::ParseResult& args, const std::string& data_path) {
  return args.count("samples") ? args["samples"].as<std::string>()
                               : (std::filesystem::path(data_path).parent_path() / "samples.jsonl").string();
}

inline std::optional<double> val_fraction_flag(const cxxopts::ParseResult& args) {
  if (!args.count("val-fraction")) return std::nullopt;
  return args["val-fraction"].as<double>();
}

// A progress line: redrawn in place on a terminal; in a log (not a terminal) only final lines
// are printed, so logs stay one line per finished unit.
inline void progress_line(const std::string& text, bool final) {
  static const bool tty = ::isatty(::fileno(stdout)) != 0;
  if (tty) {
    std::printf("\r%-110s%s", text.c_str(), final ? "\n" : "");
  } else if (final) {
    std::printf("%s\n", text.c_str());
  }
  std::fflush(stdout);
}

// Every K must fit every dictionary size of a grid.
inline void check_k_within_latents(const std::vector<index_t>& ks, const std::vector<index_t>& latents) {
  check_flag(!ks.empty() && !latents.empty(), "--ks and --latents need at least one value each");
  for (index_t k : ks)
    for (index_t d : latents)
      check_flag(k >= 1 && k <= d, "every K must be in [1, latent_dim]: K=" + std::to_string(k) +
                                       " with latent_dim=" + std::to_string(d));
}

// The flags of a K x latent_dim grid trained with the reports' setup (sae-grid, sae-sweep).
// The defaults are the report-001 grid unless given. `resumable`: results are cached per config
// (and --force retrains them).
inline void add_grid_options(cxxopts::Options& options, const std::string& ks = "5,10,20,100",
                             const std::string& latents = "512,1024,2048", bool resumable = true) {
  // clang-format off
  options.add_options("grid")
    ("ks", "K values", cxxopts::value<std::vector<long>>()->default_value(ks))
    ("latents", "latent_dim values (dictionary sizes)", cxxopts::value<std::vector<long>>()->default_value(latents))
    ("epochs", "epochs per SAE", cxxopts::value<long>()->default_value("25"))
    ("batch-size", "mini-batch size", cxxopts::value<long>()->default_value("256"))
    ("lr", "Adam learning rate", cxxopts::value<double>()->default_value("1e-3"))
    ("seed", "seed for initialisation and batch order", cxxopts::value<std::uint64_t>()->default_value("0"))
    ("threads", "OpenMP threads (0 = default)", cxxopts::value<int>()->default_value("0"))
    ("no-plots", "write figure data and scripts but do not run gnuplot");
  if (resumable) options.add_options("grid")("force", "retrain configs whose results already exist");
  // clang-format on
}

// A list flag's values in ascending order, each once.
inline std::vector<index_t> sorted_unique(std::vector<long> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return std::vector<index_t>(v.begin(), v.end());
}

struct GridFlags {
  std::vector<index_t> ks, latents;  // sorted, without repeats
  TrainConfig train;
  AdamConfig adam;
};

// Reads and checks the add_grid_options flags; also applies --threads.
inline GridFlags read_grid_flags(const cxxopts::ParseResult& args) {
  set_threads(args["threads"].as<int>());
  GridFlags g;
  g.ks = sorted_unique(args["ks"].as<std::vector<long>>());
  g.latents = sorted_unique(args["latents"].as<std::vector<long>>());
  check_k_within_latents(g.ks, g.latents);
  g.train = TrainConfig{args["epochs"].as<long>(), args["batch-size"].as<long>(), args["seed"].as<std::uint64_t>(), true};
  g.train.validate();
  g.adam.lr = args["lr"].as<double>();
  g.adam.validate();
  return g;
}

// Parses the command line; prints help and returns nothing for --help. Positional leftovers,
// which cxxopts would otherwise ignore, are an error.
inline std::optional<cxxopts::ParseResult> parse_args(cxxopts::Options& options, int argc, char** argv) {
  options.add_options()("h,help", "show this help");
  auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << "\n";
    return std::nullopt;
  }
  if (!args.unmatched().empty()) throw sae::invalid_argument("unexpected argument '" + args.unmatched().front() + "'");
  return args;
}

}  // namespace sae::examples
