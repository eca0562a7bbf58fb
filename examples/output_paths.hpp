// The programs' outputs kept apart from their inputs: an output flag may not name, hold or lie
// inside any path the command line reads.
#pragma once

#include <sae/io/run_directory.hpp>

#include <cxxopts.hpp>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace sae::examples {

// The flags whose values the programs read as files or folders (a `file.safetensors:tensor` names
// its file). A --config file is not among them: it is read whole before anything is written, so
// rerunning a folder's resolved_config.json into it is safe.
inline const std::vector<std::string>& input_flags() {
  static const std::vector<std::string> flags = {"data", "target-data", "samples", "early-data", "from", "encode", "sae"};
  return flags;
}

// The run's inputs: each input flag given or defaulted, as the path it reads.
inline std::vector<std::pair<std::string, std::filesystem::path>> input_paths(const cxxopts::ParseResult& args) {
  std::vector<std::pair<std::string, std::filesystem::path>> inputs;
  std::error_code ec;
  for (const auto& flag : input_flags()) {
    std::string value;
    try {
      if (!args.count(flag) && !args[flag].has_default()) continue;
      value = args[flag].as<std::string>();
    } catch (const cxxopts::exceptions::exception&) {
      continue;  // a program without this flag
    }
    if (value.empty()) continue;
    if (!std::filesystem::exists(value, ec))
      if (const auto colon = value.rfind(':'); colon != std::string::npos) value.resize(colon);
    inputs.emplace_back("--" + flag, value);
  }
  return inputs;
}

// Refuses each output flag given (or defaulted) whose path is, holds or lies inside an input or
// another output.
inline void require_outputs_apart(const cxxopts::ParseResult& args, const std::vector<std::string>& output_flags) {
  const auto inputs = input_paths(args);
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
