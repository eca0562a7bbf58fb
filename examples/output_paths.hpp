// The programs' outputs kept apart from their inputs: an output flag may not name, hold or lie
// inside any path the command line reads.
#pragma once

#include <sae/io/run_directory.hpp>

#include <cxxopts.hpp>

#include <filesystem>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace sae::examples {

// Every existing path the command line names, given or by default, except under `outputs`
// (flag names without dashes): the run's inputs. A --config file is not one: it is read whole
// before anything is written, so rerunning a folder's resolved_config.json into it is safe.
inline std::vector<std::pair<std::string, std::filesystem::path>> input_paths(const cxxopts::ParseResult& args,
                                                                              const std::set<std::string>& outputs) {
  std::vector<std::pair<std::string, std::filesystem::path>> inputs;
  std::error_code ec;
  const auto add = [&](const std::vector<cxxopts::KeyValue>& values) {
    for (const auto& kv : values)
      if (!outputs.count(kv.key()) && kv.key() != "config" && !kv.value().empty() && std::filesystem::exists(kv.value(), ec))
        inputs.emplace_back("--" + kv.key(), kv.value());
  };
  add(args.arguments());
  add(args.defaults());
  return inputs;
}

// Refuses each output flag given (or defaulted) whose path is, holds or lies inside an input or
// another output.
inline void require_outputs_apart(const cxxopts::ParseResult& args, const std::vector<std::string>& output_flags) {
  const std::set<std::string> outputs(output_flags.begin(), output_flags.end());
  const auto inputs = input_paths(args, outputs);
  std::vector<std::pair<std::string, std::filesystem::path>> earlier;
  for (const auto& flag : output_flags) {
    if (!args.count(flag) && !args[flag].has_default()) continue;
    const std::string path = args[flag].as<std::string>();
    if (path.empty()) continue;  // the program names an empty path itself
    io::require_apart_from_inputs(path, "--" + flag, inputs);
    io::require_apart_from_inputs(path, "--" + flag, earlier, "output");
    earlier.emplace_back("--" + flag, path);
  }
}

}  // namespace sae::examples
