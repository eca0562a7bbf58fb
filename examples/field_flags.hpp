// Command-line flags made from config field lists (core/fields.hpp): each field with a flag becomes
// one cxxopts option (its name, help, the program's default and the range in the help), and its
// given text is parsed by the field's own strict parser, so every error names the flag and what it
// takes. cxxopts only carries the declarations; it never converts these values.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/fields.hpp>

#include <cxxopts.hpp>

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

namespace sae::examples {

class FieldFlags {
 public:
  explicit FieldFlags(cxxopts::Options& options) : options_(options) {}

  // Declares in `group` the flags of the fields of `defaults` named in `keys` (every field with a
  // flag when `keys` is empty), each with the value in `defaults` as its default. A flag another
  // config declared already (seed, lr) is declared once and read into both.
  template <class Config>
  FieldFlags& declare(const std::string& group, const Config& defaults, const std::vector<std::string>& keys = {}) {
    for_each_flagged(defaults, keys, [&](const auto& value, const FieldInfo& f) {
      using T = std::decay_t<decltype(value)>;
      const std::string name = f.long_flag();
      if (declared(name)) return;
      declared_.push_back(name);
      std::string spec = f.flag.empty() ? name : f.flag;
      for (char& c : spec)
        if (c == '_') c = '-';
      std::string help = f.help;
      if constexpr (std::is_same_v<T, bool>) {
        options_.add_options(group)(spec, help);
      } else {
        if (f.has_range()) help += " (" + f.range_words(fields_detail::integer_valued<T>::value) + ")";
        if (field_text(value).empty() && !std::is_same_v<T, std::string>)  // an unset optional: no default shown
          options_.add_options(group)(spec, help, cxxopts::value<std::string>());
        else
          options_.add_options(group)(spec, help, cxxopts::value<std::string>()->default_value(field_text(value)));
      }
    });
    return *this;
  }

  // Sets every field of `config` whose flag this program declared and the command line (or
  // --config) gave; returns whether any was given. Errors name the flag.
  template <class Config>
  bool read(const cxxopts::ParseResult& args, Config& config) const {
    bool any = false;
    for_each_flagged(config, {}, [&](auto& value, const FieldInfo& f) {
      using T = std::decay_t<decltype(value)>;
      const std::string name = f.long_flag();
      if (!declared(name) || args.count(name) == 0) return;
      any = true;
      if constexpr (std::is_same_v<T, bool>) {
        value = true;
      } else {
        try {
          value = parse_field_text<T>(args[name].as<std::string>(), f);
        } catch (const invalid_argument& e) {
          // "-k/--topk" where the flag has a short form, since either may have been typed.
          const auto comma = f.flag.find(',');
          const std::string shown = comma == std::string::npos ? "--" + name : "-" + f.flag.substr(0, comma) + "/--" + name;
          throw invalid_argument(shown + ": " + e.what());
        }
      }
    });
    return any;
  }

  // Calls f(flag, key) for each field of `config` whose flag this program declared and the command
  // line (or --config) gave.
  template <class Config, class F>
  void for_each_given(const cxxopts::ParseResult& args, const Config& config, F&& f) const {
    for_each_flagged(config, {}, [&](const auto&, const FieldInfo& info) {
      const std::string name = info.long_flag();
      if (declared(name) && args.count(name) > 0) f(name, std::string(info.key));
    });
  }

  bool declared(const std::string& name) const { return std::find(declared_.begin(), declared_.end(), name) != declared_.end(); }

 private:
  // Visits the fields with a flag (those of nested configs too), in `keys` when it is not empty.
  template <class Config, class F>
  static void for_each_flagged(Config& config, const std::vector<std::string>& keys, F&& f) {
    for_each_field(config, [&](auto& value, const FieldInfo& info) {
      using T = std::decay_t<decltype(value)>;
      if constexpr (has_fields_v<T>) {
        for_each_flagged(value, keys, f);
      } else {
        if (!info.has_flag) return;
        if (!keys.empty() && std::find(keys.begin(), keys.end(), std::string(info.key)) == keys.end()) return;
        f(value, info);
      }
    });
  }

  cxxopts::Options& options_;
  std::vector<std::string> declared_;
};

}  // namespace sae::examples
