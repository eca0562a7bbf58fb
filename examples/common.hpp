// Small helpers shared by the example programs: CLI error handling and run-directory setup.
#pragma once

#include <sae/report/text.hpp>
#include <sae/sae.hpp>

#include <cxxopts.hpp>

#include "config_file.hpp"
#include "field_flags.hpp"
#include "output_paths.hpp"

#include <sae/data/activation_split.hpp>
#include <sae/data/data_options.hpp>
#include <sae/io/fingerprint.hpp>
#include <sae/io/run_directory.hpp>
#include <sae/train/sweep.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>
#include <filesystem>
#include <iostream>
#include <string>
#include <unistd.h>

namespace sae::examples {

// Runs `body`, turning every failure into one clear line on stderr and a non-zero exit code.
template <class Body>
int run_main(const char* program, Body&& body) {
  const auto note = [] {
    const std::string n = sae::io::RunDirectory::take_unfinished_note();
    if (!n.empty()) std::cerr << "note: " << n << "\n";
  };
  try {
    return body();
  } catch (const cxxopts::exceptions::exception& e) {
    std::cerr << program << ": " << e.what() << " (see --help)\n";
    return 2;
  } catch (const sae::invalid_argument& e) {
    std::cerr << program << ": " << e.what() << "\n";
    note();
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << program << ": error: out of memory; choose smaller sizes (--latents, --batch-size) or free memory\n";
    note();
    return 1;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    note();
    return 1;
  }
}

// Tests of "a run that fails late leaves the previous outputs alone": when the environment variable
// SAE_TEST_FAIL_AT names this point, the program fails here as a real late error would.
inline void test_fault_point(const std::string& point) {
  const char* at = std::getenv("SAE_TEST_FAIL_AT");
  if (at && point == at) throw sae::error("injected failure at '" + point + "' (SAE_TEST_FAIL_AT)");
}

using report::fmt;  // one number through a printf format (sae/report/text.hpp)

// Throws a usage error unless `ok`.
inline void check_flag(bool ok, const std::string& message) {
  if (!ok) throw sae::invalid_argument(message);
}

// A flag that changes the run only in some combinations: `matters` says whether it does in this
// one, `why` says why not ("does nothing with ..."). Flags that do nothing are refused rather than
// ignored, so a user never believes a setting was applied that was not.
struct FlagUse {
  std::string flag;  // long name, without "--"
  bool matters;
  std::string why;   // after "--flag: ": "does nothing with --optimizer adam (momentum is SGD's)"
};

// Refuses a flag the user gave that does nothing here, with `message` naming it ("--momentum:
// does nothing with --optimizer adam ..."), or, when its value came from the --config file rather
// than the command line, says once that it is ignored.
inline void refuse_idle_flag(const cxxopts::ParseResult& args, const std::string& flag, const std::string& message) {
  if (args.count(flag) == 0) return;  // a default, never given
  const auto& config = flags_from_config_file();
  check_flag(config.has(flag), message);
  static std::set<std::string> noted;
  if (noted.insert(flag).second) std::cerr << "note: " << message << " (the value is from " << config.path << "); ignored\n";
}

// refuse_idle_flag for each of a program's "flag X only matters when Y" rows that does not matter.
inline void refuse_idle_flags(const cxxopts::ParseResult& args, const std::vector<FlagUse>& uses) {
  for (const auto& u : uses)
    if (!u.matters) refuse_idle_flag(args, u.flag, "--" + u.flag + ": " + u.why);
}

// Flags that name a file or folder (the inputs, the outputs, --config): given empty, each is
// refused by name (an empty --data would otherwise read as "no file" in one program and fail
// without the flag's name in another).
inline const std::vector<std::string>& path_flags() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> all = input_flags();
    all.insert(all.end(), {"out", "to", "codes", "config"});
    return all;
  }();
  return names;
}

namespace detail {

// Whether cxxopts accepts `value` for `flag` (as typed: "--name" or "-k").
inline bool accepts(cxxopts::Options& options, const std::string& flag, const std::string& value) {
  const char* argv[] = {"probe", flag.c_str(), value.c_str()};
  try {
    options.parse(3, argv);
    return true;
  } catch (const cxxopts::exceptions::exception&) {
    return false;
  }
}

// What a flag takes, in words, found by asking cxxopts to parse probe values for it.
inline std::string expected_value(cxxopts::Options& options, const std::string& flag) {
  if (accepts(options, flag, "x")) return "text";  // a string flag, or a switch (which takes no value)
  // cxxopts reads a scalar number loosely ("1,2" as 1) but a list strictly.
  const bool list = accepts(options, flag, "1,2") && !accepts(options, flag, "1,x");
  const std::string what = accepts(options, flag, "0.5") ? "number" : accepts(options, flag, "-1") ? "integer" : "non-negative integer";
  return list ? "a comma-separated list of " + what + "s" : (what == "integer" ? "an " : "a ") + what;
}

// The flag (as typed) given `value` (or a list holding it) that refuses it, and the whole text
// it was given; an empty flag when none does.
inline std::pair<std::string, std::string> flag_refusing(cxxopts::Options& options, int argc, char** argv,
                                                         const std::string& value) {
  const auto holds = [&](const std::string& given) {
    if (given == value) return true;
    std::istringstream items(given);
    for (std::string item; std::getline(items, item, ',');)
      if (item == value) return true;
    return false;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string token = argv[i];
    if (token.size() < 2 || token[0] != '-') continue;
    std::string flag = token, given;
    bool has_value = false;
    if (const auto eq = token.find('='); token.rfind("--", 0) == 0 && eq != std::string::npos) {
      flag = token.substr(0, eq), given = token.substr(eq + 1), has_value = true;
    } else if (token.rfind("--", 0) != 0 && token.size() > 2) {
      flag = token.substr(0, 2), given = token.substr(2), has_value = true;  // -k5
    } else if (i + 1 < argc) {
      given = argv[i + 1], has_value = true;
    }
    if (has_value && holds(given) && !accepts(options, flag, given)) return {flag, given};
  }
  return {};
}

}  // namespace detail

// Parses the command line, with the flags of --config FILE under it (config_file.hpp); prints help
// and returns nothing for --help. A value cxxopts cannot parse is reported with its flag and what
// the flag takes; positional leftovers, which cxxopts would otherwise ignore, are an error.
inline std::optional<cxxopts::ParseResult> parse_args(cxxopts::Options& options, int given_argc, char** given_argv) {
  options.add_options()("h,help", "show this help")(
      "config", "a JSON file of flag values by long name (the command line overrides it; every run writes its own as "
                "resolved_config.json)", cxxopts::value<std::string>());
  const std::vector<std::string> given(given_argv + 1, given_argv + given_argc);
  // cxxopts takes "--switch=false" as the switch given (on): a switch takes no value.
  for (const auto& o : config_file_detail::declared_options(options))
    for (const auto& t : given)
      if (o.is_boolean && t.rfind("--" + o.l.front() + "=", 0) == 0)
        throw sae::invalid_argument("--" + o.l.front() + ": a switch takes no value, got '" + t + "' (leave it out to turn it off)");
  std::vector<std::string> tokens = apply_config_file(options, given);
  tokens.insert(tokens.begin(), given_argv[0]);
  std::vector<char*> pointers;
  for (auto& t : tokens) pointers.push_back(t.data());
  const int argc = static_cast<int>(pointers.size());
  char** argv = pointers.data();
  std::optional<cxxopts::ParseResult> args;
  try {
    args = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::incorrect_argument_type& e) {
    // cxxopts says only "Argument 'abc' failed to parse"; find whose value it was.
    // cxxopts quotes the value with U+2018/U+2019 (or ASCII quotes in some builds).
    const std::string what = e.what();
    std::string value;
    for (const auto& [open, close] : {std::pair<std::string, std::string>{"\u2018", "\u2019"}, {"'", "'"}}) {
      const auto a = what.find(open), b = what.rfind(close);
      if (a != std::string::npos && b != std::string::npos && b > a) {
        value = what.substr(a + open.size(), b - a - open.size());
        break;
      }
    }
    const auto [flag, given] = detail::flag_refusing(options, argc, argv, value);
    if (flag.empty()) throw;
    const bool digits = !value.empty() && value.find_first_not_of("0123456789-+") == std::string::npos;
    throw sae::invalid_argument(flag + ": expected " + detail::expected_value(options, flag) + ", got '" + given + "'" +
                                (digits ? " (out of range)" : ""));
  }
  // cxxopts reads numbers through a stream, so "1e-3x" would pass as 1e-3 and "1,2" as 1:
  // every number flag's text is checked whole here.
  for (const auto& kv : args->arguments()) {
    const std::string flag = (kv.key().size() == 1 ? "-" : "--") + kv.key();
    const std::string expected = detail::expected_value(options, flag);
    if (expected != "a number" && expected != "a comma-separated list of numbers") continue;
    std::istringstream items(kv.value());
    for (std::string item; std::getline(items, item, expected == "a number" ? '\0' : ',');) {
      char* end = nullptr;
      const double v = std::strtod(item.c_str(), &end);
      if (item.empty() || *end != '\0' || !std::isfinite(v))
        throw sae::invalid_argument(flag + ": expected " + expected + ", got '" + kv.value() + "'");
    }
  }
  if (args->count("help")) {
    std::cout << options.help() << "\n";
    return std::nullopt;
  }
  if (!args->unmatched().empty()) throw sae::invalid_argument("unexpected argument '" + args->unmatched().front() + "'");
  for (const auto& name : path_flags())
    check_flag(args->count(name) == 0 || !(*args)[name].as<std::string>().empty(), "--" + name + ": empty path");
  return args;
}

namespace detail {
template <class T>
std::string range_words(T lo, T hi) {
  const auto str = [](T v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  if (hi == std::numeric_limits<T>::max()) return ">= " + str(lo);
  return "in [" + str(lo) + ", " + str(hi) + "]";
}
}  // namespace detail

// An integer flag, checked to lie in [lo, hi]; the error names the flag, the value and the range.
inline long int_flag(const cxxopts::ParseResult& args, const std::string& flag, long lo,
                     long hi = std::numeric_limits<long>::max()) {
  const long v = args[flag].as<long>();
  check_flag(v >= lo && v <= hi, "--" + flag + ": expected an integer " + detail::range_words(lo, hi) + ", got " + std::to_string(v));
  return v;
}

// A number flag, checked to be finite and to lie in [lo, hi] (or (lo, hi] when `lo_open`).
inline double number_flag(const cxxopts::ParseResult& args, const std::string& flag, double lo, double hi,
                          bool lo_open = false) {
  const double v = args[flag].as<double>();
  std::ostringstream got;
  got << v;
  std::ostringstream range;
  range << (lo_open ? "(" : "[") << lo << ", " << hi << "]";
  check_flag(std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi,
             "--" + flag + ": expected a number in " + range.str() + ", got " + got.str());
  return v;
}

// A list of integers, each in [lo, hi].
inline std::vector<long> int_list_flag(const cxxopts::ParseResult& args, const std::string& flag, long lo,
                                       long hi = std::numeric_limits<long>::max()) {
  const auto v = args[flag].as<std::vector<long>>();
  check_flag(!v.empty(), "--" + flag + ": expected at least one value");
  for (long x : v)
    check_flag(x >= lo && x <= hi, "--" + flag + ": expected integers " + detail::range_words(lo, hi) + ", got " + std::to_string(x));
  return v;
}


// Sets the OpenMP/Eigen thread count when the user asked for one (0 = leave the default).
inline void set_threads(long threads) {
#if SAE_USE_OPENMP
  if (threads > 0) omp_set_num_threads(static_cast<int>(threads));
#else
  (void)threads;
#endif
}

// The data flags (data::DataOptions' field list) with this program's --data default: by default
// those of a file read whole (--data, --layer, --position, --val-fraction); `keys` empty: every one
// (targets and --stream too).
inline void add_data_options(FieldFlags& flags, const std::string& default_data,
                             const std::vector<std::string>& keys = {"data", "layer", "position", "val_fraction"}) {
  data::DataOptions defaults;
  defaults.data = default_data;
  flags.declare("data", defaults, keys);
}

inline data::DataOptions data_flags(const cxxopts::ParseResult& args, const FieldFlags& flags) {
  data::DataOptions d;
  d.data = args["data"].as<std::string>();
  flags.read(args, d);
  return d;
}

// "samples.jsonl beside the data file, or in the shard set's folder" unless --samples says otherwise.
inline std::string samples_path_for(const cxxopts::ParseResult& args, const std::string& data_path) {
  if (args.count("samples")) return args["samples"].as<std::string>();
  std::error_code ec;
  const std::filesystem::path p(data_path);
  return ((std::filesystem::is_directory(p, ec) ? p : p.parent_path()) / "samples.jsonl").string();
}

// Progress goes to stdout, redrawn in place on a terminal (sae::progress_line).
inline SweepOutput progress_output() {
  static const bool tty = ::isatty(::fileno(stdout)) != 0;
  return {std::cout, tty};
}

// Every K must fit every dictionary size of a grid.
inline void check_k_within_latents(const std::vector<index_t>& ks, const std::vector<index_t>& latents) {
  check_flag(!ks.empty() && !latents.empty(), "--ks and --latents need at least one value each");
  for (index_t k : ks)
    for (index_t d : latents)
      check_flag(k >= 1 && k <= d, "every K must be in [1, latent_dim]: K=" + std::to_string(k) +
                                       " with latent_dim=" + std::to_string(d));
}

// Options against dead latents (model/auxk.hpp; all off by default, the reports' model): --recipe
// and TopKConfig's fields.
inline void add_dead_latent_options(cxxopts::Options& options, FieldFlags& flags, const std::string& group) {
  options.add_options(group)(
      "recipe", "'reports' (the reports' TopK, default) or 'modern': a decoder bias started at the geometric median, "
                "--tied-init for K <= D/16, --aux-k 4 with a two-epoch --dead-window (other flags of this group then refused)",
      cxxopts::value<std::string>()->default_value("reports"));
  flags.declare(group, TopKConfig{},
                {"tied_init", "aux_k", "aux_alpha", "dead_window", "resample_every", "project_decoder_gradient"});
}

// The learning-rate schedule and AdamW's weight decay (optim/schedule.hpp, optim/adam.hpp; off
// by default): LrSchedule's fields and AdamConfig's weight_decay.
inline void add_schedule_options(FieldFlags& flags, const std::string& group) {
  flags.declare(group, AdamConfig{}, {"weight_decay"});
  flags.declare(group, LrSchedule{});
}

inline Recipe recipe_flag(const cxxopts::ParseResult& args) {
  try {
    return parse_recipe(args["recipe"].as<std::string>());
  } catch (const invalid_argument& e) {
    throw invalid_argument(std::string("--recipe: ") + e.what());
  }
}

// `base` with every TopKConfig flag the program declared read into it (the add_dead_latent_options
// ones, checked against --recipe, and any others: sae-train's --latents, -k, --selection, ...);
// dead_window 0 stands for one epoch until with_dead_window() knows the training rows.
inline TopKConfig dead_latent_flags(const cxxopts::ParseResult& args, const FieldFlags& flags, TopKConfig base = {}) {
  if (recipe_flag(args) == Recipe::modern)
    for (const char* f : {"tied-init", "aux-k", "aux-alpha", "dead-window", "resample-every", "project-decoder-grad"})
      check_flag(args[f].count() == 0, std::string("--recipe modern sets the dead-latent options itself; drop --") + f);
  flags.read(args, base);
  refuse_idle_flags(args, {{"aux-alpha", base.aux_k > 0, "does nothing without --aux-k (AuxK is off)"},
                           {"dead-window", base.tracks_dead_latents(), "does nothing without --aux-k or --resample-every (no latent is "
                                                                       "tracked as dead)"}});
  return base;
}

// The schedule flags that do nothing whatever the data: a final fraction without a decay.
inline void refuse_idle_schedule_flags(const cxxopts::ParseResult& args, const LrSchedule& s) {
  refuse_idle_flags(args, {{"final-lr-fraction", s.decay != LrDecay::none, "does nothing without --lr-decay (the rate is not decayed)"}});
}

// The step-count flags that do nothing in a run of `train_rows` training rows: a warmup as long
// as the run (the rate never leaves it), a decay with no step after the warmup, an early stop or
// a checkpoint period that cannot come before the last epoch. Checked once the rows are known.
inline void refuse_idle_step_flags(const cxxopts::ParseResult& args, const TrainConfig& t, index_t train_rows,
                                   long early_stop = 0, long checkpoint_every = 0) {
  const std::int64_t batches = (static_cast<std::int64_t>(train_rows) + t.batch_size - 1) / t.batch_size;
  const std::int64_t steps = static_cast<std::int64_t>(t.epochs) * batches;
  const std::string run = "in a run of " + std::to_string(steps) + " steps (" + std::to_string(t.epochs) + " epochs x " +
                          std::to_string(batches) + " batches)";
  refuse_idle_flags(args, {{"warmup-steps", t.schedule.warmup_steps < steps,
                            "expected fewer steps than the run has (" + run + "), got " +
                                std::to_string(t.schedule.warmup_steps) + ": the rate would never reach --lr"},
                           {"lr-decay", t.schedule.decay == LrDecay::none || t.schedule.warmup_steps + 1 < steps,
                            "does nothing " + run + ": no step is left after --warmup-steps to decay"},
                           {"early-stop", early_stop == 0 || early_stop + 1 < t.epochs,
                            "does nothing with --epochs " + std::to_string(t.epochs) +
                                ": it could stop at the last epoch at the earliest"},
                           {"checkpoint-every", checkpoint_every == 0 || checkpoint_every < t.epochs,
                            "does nothing with --epochs " + std::to_string(t.epochs) +
                                ": no epoch before the last is a multiple of it"}});
}

// refuse_idle_step_flags before the run folder is made (a usage error leaves nothing behind), the
// training rows counted from the data's header (`planted_rows` without --data). Data that cannot
// be opened is left for the load, which names the problem.
inline void refuse_idle_step_flags_early(const cxxopts::ParseResult& args, const TrainConfig& t, const data::DataOptions& d,
                                         index_t planted_rows = 0, long early_stop = 0, long checkpoint_every = 0) {
  index_t train_rows = 0;
  try {
    index_t rows = planted_rows;
    if (!d.data.empty()) {
      const std::vector<index_t> shape = data::ArraySet(d.data).shape();
      if (shape.empty()) return;
      rows = shape.front();
    }
    train_rows = static_cast<index_t>(data::choose_split(rows, d.split(t.seed)).train.size());
  } catch (const std::exception&) {
    return;  // the load says what is wrong (a missing file, too few rows, ...)
  }
  refuse_idle_step_flags(args, t, train_rows, early_stop, checkpoint_every);
}

// The bundled early layer (--early-data's default) matches only the bundled --data, and the late
// layer only the bundled early one: a user's file for either needs the other given too, rather
// than a silent mix of their data and ours. --early-layer takes the early layer from --data.
inline void require_own_layers(const cxxopts::ParseResult& args) {
  check_flag(!(args.count("early-data") && args.count("early-layer")),
             "--early-data: does nothing with --early-layer (the early layer is then read from --data)");
  check_flag(!args.count("data") || args.count("early-data") || args.count("early-layer"),
             "--early-data: required with --data (its default is the bundled layer-1 file, which does not match your "
             "data); give your early layer's file, or --early-layer L to read it from --data");
  check_flag(!args.count("early-data") || args.count("data"),
             "--data: required with --early-data (its default is the bundled late layer, which does not match your early "
             "layer); give your late layer's file");
}

// samples.jsonl for `data_path`: --samples, or the one beside the user's --data, which must exist.
inline std::string require_samples(const cxxopts::ParseResult& args, const std::string& data_path) {
  const std::string path = samples_path_for(args, data_path);
  std::error_code ec;
  check_flag(args.count("samples") || std::filesystem::exists(path, ec),
             "--samples: required: no samples.jsonl beside --data (" + path + ")");
  return path;
}

// `options` (from dead_latent_flags) for `train_rows` training rows: the window resolved, and with
// AuxK and resampling off the reports' config exactly.
inline TopKConfig with_dead_window(TopKConfig options, index_t train_rows) {
  if (options.dead_window == 0) options.dead_window = train_rows;
  if (options.aux_k == 0) options.aux_alpha = TopKConfig{}.aux_alpha;
  if (!options.tracks_dead_latents()) options.dead_window = 0;
  return options;
}

// The flags of a K x latent_dim grid trained with the reports' setup (sae-grid, sae-sweep).
// The defaults are the report-001 grid unless given. `resumable`: results are cached per config
// (and --force retrains them).
inline void add_grid_options(cxxopts::Options& options, FieldFlags& flags, const std::string& ks = "5,10,20,100",
                             const std::string& latents = "512,1024,2048", bool resumable = true) {
  // clang-format off
  options.add_options("grid")
    ("ks", "K values", cxxopts::value<std::vector<long>>()->default_value(ks))
    ("latents", "latent_dim values (dictionary sizes)", cxxopts::value<std::vector<long>>()->default_value(latents));
  flags.declare("grid", TrainConfig{}, {"epochs", "batch_size"}).declare("grid", AdamConfig{}, {"lr"})
       .declare("grid", TrainConfig{}, {"seed"});
  options.add_options("grid")
    ("threads", "OpenMP threads (0 = default)", cxxopts::value<long>()->default_value("0"))
    ("no-plots", "write figure data and scripts but do not run gnuplot");
  add_dead_latent_options(options, flags, "grid");
  add_schedule_options(flags, "grid");
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
  TopKConfig dead_latents;  // dead_latent_flags: the options every SAE gets
  Recipe recipe = Recipe::reports;
  // The dead-latent options for `train_rows` training rows.
  TopKConfig model_options(index_t train_rows) const { return with_dead_window(dead_latents, train_rows); }
};

// Reads and checks the add_grid_options flags; also applies --threads.
inline GridFlags read_grid_flags(const cxxopts::ParseResult& args, const FieldFlags& flags) {
  set_threads(int_flag(args, "threads", 0, 4096));
  GridFlags g;
  g.ks = sorted_unique(int_list_flag(args, "ks", 1));
  g.latents = sorted_unique(int_list_flag(args, "latents", 1));
  check_k_within_latents(g.ks, g.latents);
  flags.read(args, g.train);
  flags.read(args, g.adam);
  g.dead_latents = dead_latent_flags(args, flags);
  refuse_idle_schedule_flags(args, g.train.schedule);
  g.recipe = recipe_flag(args);
  check_flag(g.dead_latents.aux_k <= g.latents.front(), "--aux-k: expected at most the smallest --latents (" +
                                                            std::to_string(g.latents.front()) + "), got " +
                                                            std::to_string(g.dead_latents.aux_k));
  return g;
}

// The keys of a config's field list.
template <class Config>
std::vector<std::string> field_keys() {
  std::vector<std::string> keys;
  Config c{};
  for_each_field(c, [&](const auto&, const FieldInfo& f) { keys.emplace_back(f.key); });
  return keys;
}

// Refuses each given flag of `configs`' fields that the config of --arch `arch` lacks (the flag
// would change nothing), naming the architectures that have the field; from the field lists and the
// registry, so a new field or architecture needs no list here. `mapped`: keys the program carries
// over itself (sae-train starts JumpReLU at K's L0).
template <class... Configs>
void refuse_flags_of_other_architectures(const cxxopts::ParseResult& args, const FieldFlags& flags, const std::string& arch,
                                         const std::vector<std::string>& mapped, const Configs&... configs) {
  const auto has = [](const std::vector<std::string>& keys, const std::string& key) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
  };
  const auto arch_keys = with_architecture<float>(arch, [](auto tag) { return field_keys<typename decltype(tag)::type::Config>(); });
  const auto check = [&](const std::string& flag, const std::string& key) {
    if (has(arch_keys, key) || has(mapped, key)) return;
    std::vector<std::string> owners;
    for_each_architecture([&](auto tag) {
      using Model = typename decltype(tag)::type;
      if (has(field_keys<typename Model::Config>(), key)) owners.emplace_back(Model::architecture);
    });
    std::string names;
    for (std::size_t i = 0; i < owners.size(); ++i) names += (i == 0 ? "" : i + 1 == owners.size() ? " or " : ", ") + owners[i];
    refuse_idle_flag(args, flag, "--" + flag + " is for --arch " + names + " only");
  };
  (flags.for_each_given(args, configs, check), ...);
}

// Refuses a model that cannot be trained in this machine's memory, before allocating it.
inline void require_training_memory(const TopKConfig& c, index_t batch_size) {
  require_memory(training_memory_bytes<float>(c, batch_size),
                 "an SAE with " + std::to_string(c.num_latents) + " latents over " + std::to_string(c.input_dim) +
                     " inputs, trained with Adam at batch " + std::to_string(batch_size) + ",");
}

}  // namespace sae::examples
