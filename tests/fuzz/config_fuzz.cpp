// libFuzzer target: the programs' `--config FILE` reader (examples/config_file.hpp). The input is
// the config file. Reading it and parsing the flags it yields may only fail with sae::error or a
// cxxopts exception; whatever parses must survive the round trip every run makes (its
// resolved_config.json, read back with --config, resolves to the same flags with the same
// values), and a flag given on the command line always wins over the file.
#include "fuzz_common.hpp"

#include "config_file.hpp"

#include <sae/io/utf8.hpp>

#include <cxxopts.hpp>

#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace {

// A representative program: each kind of flag the programs declare.
cxxopts::Options& options() {
  static cxxopts::Options o = [] {
    cxxopts::Options o("config_fuzz", "fuzz target");
    o.add_options()("h,help", "show this help")("config", "config file", cxxopts::value<std::string>())
        ("name", "a string without default", cxxopts::value<std::string>())
        ("lr-decay", "a string with a default", cxxopts::value<std::string>()->default_value("cosine"))
        ("latents", "a long", cxxopts::value<long>()->default_value("2048"))
        ("seed", "a long without default", cxxopts::value<long>())
        ("lr", "a double", cxxopts::value<double>()->default_value("0.001"))
        ("k,topk", "a long with a short form", cxxopts::value<long>()->default_value("20"))
        ("tied-init", "a switch")
        ("progress", "a switch that defaults to on", cxxopts::value<bool>()->default_value("true"))
        ("ks", "a list of longs", cxxopts::value<std::vector<long>>()->default_value("5,10"))
        ("fractions", "a list of doubles", cxxopts::value<std::vector<double>>());
    return o;
  }();
  return o;
}

// cxxopts' parse of argv[1..] = tokens; nullopt where cxxopts refuses them.
std::optional<cxxopts::ParseResult> parse(std::vector<std::string> tokens) {
  tokens.insert(tokens.begin(), "config_fuzz");
  std::vector<const char*> argv;
  for (const auto& t : tokens) argv.push_back(t.c_str());
  try {
    return options().parse(static_cast<int>(argv.size()), argv.data());
  } catch (const cxxopts::exceptions::exception&) {
    return std::nullopt;
  }
}

// apply_config_file then parse; nullopt where either refuses (as the programs would, by name).
std::optional<cxxopts::ParseResult> read(const std::vector<std::string>& command_line) {
  try {
    return parse(sae::examples::apply_config_file(options(), command_line));
  } catch (const sae::error&) {
    return std::nullopt;
  }
}

// Whether the flag is given in both or neither, and holds the same value in both.
template <class T>
bool same(const cxxopts::ParseResult& a, const cxxopts::ParseResult& b, const std::string& key, bool has_default = true) {
  if ((a.count(key) > 0) != (b.count(key) > 0)) return false;
  if (a.count(key) == 0 && !has_default) return true;  // an optional flag left out of both
  if constexpr (std::is_same_v<T, std::string>)  // JSON holds text only as UTF-8: the file's is repaired
    return sae::io::valid_utf8(a[key].as<T>()) == b[key].as<T>();
  else
    return a[key].as<T>() == b[key].as<T>();
}

// Every flag holds the same value after the round trip, not only the same resolved text.
bool same_values(const cxxopts::ParseResult& a, const cxxopts::ParseResult& b) {
  return same<std::string>(a, b, "name", false) && same<std::string>(a, b, "lr-decay") && same<long>(a, b, "latents") &&
         same<long>(a, b, "seed", false) && same<double>(a, b, "lr") && same<long>(a, b, "topk") &&
         same<bool>(a, b, "tied-init") && same<bool>(a, b, "progress") && same<std::vector<long>>(a, b, "ks") &&
         same<std::vector<double>>(a, b, "fractions", false);
}

// One flag given on the command line beside --config, and the value it must resolve to.
struct CommandLineFlag {
  std::vector<std::string> tokens;
  const char* key;
  const char* resolved;  // resolved_config's JSON for it
};

const CommandLineFlag kCommandLine[] = {
    {{"-k", "7"}, "topk", "7"},
    {{"-k7"}, "topk", "7"},
    {{"--topk=7"}, "topk", "7"},
    {{"--name", "cli"}, "name", "\"cli\""},
    {{"--lr=0.5"}, "lr", "0.5"},
    {{"--latents", "64"}, "latents", "64"},
    {{"--tied-init"}, "tied-init", "true"},
    {{"--tied-init=false"}, "tied-init", "false"},  // cxxopts takes a switch's value after '='
    {{"--ks", "3,4"}, "ks", "[3,4]"},
    {{"--fractions=0.25"}, "fractions", "[0.25]"},
    {{"--lr-decay=linear"}, "lr-decay", "\"linear\""},
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = sae_fuzz::scratch("config.json");
  sae_fuzz::write_file(path, reinterpret_cast<const char*>(data), size);
  const auto args = read({"--config", path.string()});

  // A flag on the command line wins over the file, before or after --config. A file that reads
  // without it reads with it too (the flag's own value is valid, and the file's is skipped).
  std::size_t h = size;
  for (std::size_t i = 0; i < size; ++i) h = h * 31 + data[i];
  const auto& flag = kCommandLine[h % (sizeof kCommandLine / sizeof kCommandLine[0])];
  std::vector<std::string> command_line = {"--config", path.string()};
  command_line.insert(h % 2 ? command_line.end() : command_line.begin(), flag.tokens.begin(), flag.tokens.end());
  const auto with_flag = read(command_line);
  if (args && !with_flag) __builtin_trap();
  if (with_flag) {
    const auto resolved = sae::examples::resolved_config(options(), *with_flag);
    const sae::io::Json* value = resolved.find(flag.key);
    if (!value || value->dump(-1) != flag.resolved) __builtin_trap();
  }

  if (!args) return 0;
  // The run's resolved_config.json, read back with --config, gives the same flags.
  const std::string once = sae::examples::resolved_config(options(), *args).dump();
  const auto resolved_path = sae_fuzz::scratch("resolved_config.json");
  sae_fuzz::write_file(resolved_path, once.data(), once.size());
  const auto again = read({"--config", resolved_path.string()});
  if (!again) __builtin_trap();
  if (sae::examples::resolved_config(options(), *again).dump() != once) __builtin_trap();
  if (!same_values(*args, *again)) __builtin_trap();
  return 0;
}
