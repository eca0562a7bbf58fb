// Config files for every program: `--config run.json` holds flag values under their long names
// ({"latents": 2048, "topk": 20, "lr-decay": "cosine", "tied-init": true, "ks": [5, 10]}); a flag
// given on the command line overrides the file. Unknown keys are refused by name, and each value
// goes through the same strict parsing as the flag itself; a value equal to the flag's default
// counts as not given. Every run folder gets the resolved flags, defaults included, as
// `resolved_config.json`, which `--config` reads back.
#pragma once

#include <sae/core/error.hpp>
#include <sae/io/json.hpp>
#include <sae/io/run_directory.hpp>

#include <cxxopts.hpp>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

namespace sae::examples {

inline constexpr const char* kResolvedConfigFile = "resolved_config.json";

namespace config_file_detail {

// Every declared option but --help and --config.
inline std::vector<cxxopts::HelpOptionDetails> declared_options(const cxxopts::Options& options) {
  std::vector<cxxopts::HelpOptionDetails> out;
  for (const auto& group : options.groups())
    for (const auto& o : options.group_help(group).options)
      if (!o.l.empty() && o.l.front() != "help" && o.l.front() != "config") out.push_back(o);
  return out;
}

// Whether the command line sets the option (long or short form, with or without '=').
inline bool given_on_command_line(const cxxopts::HelpOptionDetails& o, const std::vector<std::string>& tokens) {
  for (const auto& t : tokens) {
    if (t == "--" + o.l.front() || t.rfind("--" + o.l.front() + "=", 0) == 0) return true;
    if (!o.s.empty() && t.rfind("-" + o.s, 0) == 0 && t.rfind("--", 0) != 0) return true;
  }
  return false;
}

// Whether a file's text for a flag says what its default says ("0.001" and "1e-3" alike).
inline bool is_default(const cxxopts::HelpOptionDetails& o, const std::string& text) {
  if (!o.has_default) return false;
  if (text == o.default_value) return true;
  char *a = nullptr, *b = nullptr;
  const double x = std::strtod(text.c_str(), &a), y = std::strtod(o.default_value.c_str(), &b);
  return !text.empty() && !o.default_value.empty() && *a == '\0' && *b == '\0' && x == y;
}

inline std::string item_text(const io::Json& v, const std::string& where) {
  if (v.is_string()) return v.as_string();
  if (v.is_number()) return v.dump(-1);
  if (v.is_bool()) return v.as_bool() ? "true" : "false";
  throw invalid_argument(where + ": expected a string, number or boolean");
}

// A resolved flag's text as JSON: a number where the whole text is one, else the text.
inline io::Json typed(const std::string& text) {
  if (text.empty()) return io::Json(text);
  try {
    const io::Json v = io::Json::parse(text);
    if (v.is_number()) return v;
  } catch (const error&) {
  }
  return io::Json(text);
}

}  // namespace config_file_detail

// The flags (long names) whose values this process took from its --config file, and the file:
// a flag that does nothing in a combination is refused when the command line gave it, but only
// noted when it came from a config file (a saved run's resolved_config.json rerun with, say,
// another --optimizer keeps the old one's --momentum).
struct ConfigFileFlags {
  std::string path;
  std::vector<std::string> flags;
  bool has(const std::string& flag) const { return std::find(flags.begin(), flags.end(), flag) != flags.end(); }
};
inline ConfigFileFlags& flags_from_config_file() {
  static ConfigFileFlags given;
  return given;
}

// The command line with the values of `--config FILE` put in front of it, for the flags the
// command line does not set. `tokens` are argv[1..]; returns them with the file's flags added.
inline std::vector<std::string> apply_config_file(const cxxopts::Options& options, std::vector<std::string> tokens) {
  std::string path;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] == "--config" && i + 1 < tokens.size()) path = tokens[i + 1];
    else if (tokens[i].rfind("--config=", 0) == 0) path = tokens[i].substr(9);
  }
  flags_from_config_file() = {path, {}};
  if (path.empty()) return tokens;
  const io::Json doc = io::read_json_file(path);
  if (!doc.is_object()) throw invalid_argument(path + ": " + "a config file is a JSON object of flag values");
  const auto declared = config_file_detail::declared_options(options);
  std::vector<std::string> added;
  for (const auto& [key, value] : doc.as_object()) {
    const cxxopts::HelpOptionDetails* option = nullptr;
    for (const auto& o : declared)
      if (o.l.front() == key) option = &o;
    if (!option) throw invalid_argument(path + ": " + "unknown key '" + key + "': not a flag of this program (see --help)");
    if (config_file_detail::given_on_command_line(*option, tokens)) continue;  // the command line wins
    const std::string where = path + ": '" + key + "'";
    if (option->is_boolean) {
      if (!value.is_bool()) throw invalid_argument(path + ": " + "'" + key + "': expected true or false");
      // A switch that is on by default is restated as true (a default), and cannot be turned off.
      const bool default_on = option->has_default && option->default_value == "true";
      if (!value.as_bool() && default_on)
        throw invalid_argument(path + ": " + "'" + key + "': this switch cannot be turned off");
      if (value.as_bool() && !default_on) added.push_back("--" + key);
      continue;
    }
    std::string text;
    if (value.is_array()) {
      if (!option->is_container) throw invalid_argument(path + ": " + "'" + key + "': expected one value, not a list");
      for (const auto& item : value.as_array()) text += (text.empty() ? "" : ",") + config_file_detail::item_text(item, where);
    } else {
      text = config_file_detail::item_text(value, where);
    }
    // A default restated (as resolved_config.json does for every flag) is not a flag given: the
    // checks that refuse flags which do nothing in a combination see only what was set.
    if (config_file_detail::is_default(*option, text)) continue;
    added.push_back("--" + key + "=" + text);
  }
  for (const auto& a : added) flags_from_config_file().flags.push_back(a.substr(2, a.find('=') - 2));
  added.insert(added.end(), tokens.begin(), tokens.end());
  return added;
}

// Every flag's value for this run (given, from the config file, or its default) as a config file.
inline io::Json resolved_config(const cxxopts::Options& options, const cxxopts::ParseResult& args) {
  io::Json out = io::Json::object();
  for (const auto& o : config_file_detail::declared_options(options)) {
    const std::string& key = o.l.front();
    if (o.is_boolean) {
      out[key] = args[key].as<bool>();
      continue;
    }
    std::string text;
    bool set = false;
    for (const auto& kv : args.arguments())
      if (kv.key() == key) text = kv.value(), set = true;
    if (!set && !o.has_default) continue;  // an optional flag left out
    if (!set) text = o.default_value;
    if (o.is_container) {
      io::Json list = io::Json::array();
      std::size_t from = 0;
      while (!text.empty() && from <= text.size()) {
        const std::size_t comma = std::min(text.find(',', from), text.size());
        list.push_back(config_file_detail::typed(text.substr(from, comma - from)));
        from = comma + 1;
      }
      out[key] = list;
    } else {
      out[key] = config_file_detail::typed(text);
    }
  }
  return out;
}

// Writes resolved_config.json into the run's staging folder.
inline void write_resolved_config(io::RunDirectory& run, const cxxopts::Options& options, const cxxopts::ParseResult& args) {
  io::write_text_atomically(run.stage(kResolvedConfigFile), resolved_config(options, args).dump() + "\n");
}

}  // namespace sae::examples
