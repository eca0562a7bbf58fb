// One field list per config: each config struct names its fields once, with key, help, range and
// flags, in a static `fields(config, visitor)`; JSON in and out, fingerprints, config files and
// command-line flags all follow from that one list (io/config_json.hpp, examples/field_flags.hpp),
// as mlpack's `serialize` or NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE do.
//
//   struct AdamConfig {
//     double lr = 1e-3;
//     template <class Self, class Visitor>
//     static void fields(Self& c, Visitor&& v) {
//       v(c.lr, field("lr", "learning rate").above(0));
//     }
//   };
//
// A field's value type is an integer, double, bool, std::string, an optional of one (unset: the
// program's default applies), an enum with `enum_names(E{})`
// found by ADL, a std::vector of integers, or a nested config that has `fields` of its own.
#pragma once

#include <sae/core/error.hpp>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace sae {

// What a config field is: its key, help text and the checks every reader applies.
struct FieldInfo {
  const char* key = "";
  const char* help = "";
  std::string flag;       // command-line name ("latents", or "k,topk" with a short form); empty = key with '-'
  bool has_flag = true;   // false: set by the program or the data, never by a flag (input_dim)
  bool required = false;  // JSON readers refuse a config without it (no meaningful default)
  bool runtime = false;   // how to compute, not what the model is: left out of model JSON and checkpoints
  bool written = true;    // false: left out of this config's JSON (a setting that is off; see written_when)
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;

  FieldInfo& at_least(double v) { lo = v, lo_open = false; return *this; }
  FieldInfo& above(double v) { lo = v, lo_open = true; return *this; }
  FieldInfo& at_most(double v) { hi = v, hi_open = false; return *this; }
  FieldInfo& below(double v) { hi = v, hi_open = true; return *this; }
  FieldInfo& flag_name(std::string f) { flag = std::move(f); return *this; }
  FieldInfo& no_flag() { has_flag = false; return *this; }
  FieldInfo& needed() { required = true; return *this; }
  FieldInfo& compute_only() { runtime = true; return *this; }
  // Written to JSON only while `on` (e.g. AuxK's weight only with AuxK), so configs without the
  // feature, and their fingerprints, stay as they were before it existed.
  FieldInfo& written_when(bool on) { written = on; return *this; }

  bool has_range() const { return std::isfinite(lo) || std::isfinite(hi); }
  bool in_range(double v) const {
    return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
  // "in (0, 1e+06]", ">= 1", "in [1, 1000000]": the range in words, for messages and help
  // (integer fields' bounds written as integers).
  std::string range_words(bool integer = false) const {
    const auto str = [integer](double v) {
      std::ostringstream s;
      if (integer && std::abs(v) < 1e18) s << static_cast<long long>(v);
      else s << v;
      return s.str();
    };
    if (std::isfinite(lo) && std::isfinite(hi))
      return std::string("in ") + (lo_open ? "(" : "[") + str(lo) + ", " + str(hi) + (hi_open ? ")" : "]");
    if (std::isfinite(lo)) return (lo_open ? "> " : ">= ") + str(lo);
    if (std::isfinite(hi)) return (hi_open ? "< " : "<= ") + str(hi);
    return "";
  }
  // The command-line flag's long name.
  std::string long_flag() const {
    std::string f = flag.empty() ? std::string(key) : flag;
    if (const auto comma = f.find(','); comma != std::string::npos) f = f.substr(comma + 1);
    for (char& c : f)
      if (c == '_') c = '-';
    return f;
  }
};

inline FieldInfo field(const char* key, const char* help) {
  FieldInfo f;
  f.key = key;
  f.help = help;
  return f;
}

namespace fields_detail {
struct probe_visitor {
  template <class T>
  void operator()(T&, const FieldInfo&) {}
};
template <class, class = void>
struct has_fields : std::false_type {};
template <class T>
struct has_fields<T, std::void_t<decltype(T::fields(std::declval<T&>(), std::declval<probe_visitor&>()))>> : std::true_type {};
template <class>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};
template <class>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
// Integers, or lists of them: their bounds are written as integers.
template <class T>
struct integer_valued : std::is_integral<T> {};
template <class T>
struct integer_valued<std::vector<T>> : std::is_integral<T> {};
template <class T>
struct integer_valued<std::optional<T>> : std::is_integral<T> {};
}  // namespace fields_detail

// True for a config that lists its fields.
template <class T>
inline constexpr bool has_fields_v = fields_detail::has_fields<T>::value;

// Visits every field of `config` (const or not): visitor(value&, const FieldInfo&).
template <class Config, class Visitor>
void for_each_field(Config& config, Visitor&& visitor) {
  std::decay_t<Config>::fields(config, visitor);
}

// An enum's name, through its `enum_names` table.
template <class E, std::enable_if_t<std::is_enum_v<E>, int> = 0>
std::string enum_name(E value) {
  for (const auto& [v, n] : enum_names(E{}))
    if (v == value) return n;
  return std::to_string(static_cast<long long>(value));
}

// "'a', 'b' or 'c'": an enum's names for messages.
template <class E>
std::string enum_choices() {
  std::string s;
  const auto names = enum_names(E{});
  for (std::size_t i = 0; i < names.size(); ++i)
    s += std::string(i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + "'" + names[i].second + "'";
  return s;
}

// What a field of type T takes, in words ("an integer >= 1", "'value' or 'magnitude'").
template <class T>
std::string field_expectation(const FieldInfo& f) {
  constexpr bool integer = fields_detail::integer_valued<T>::value;
  const std::string range = f.has_range() ? " " + f.range_words(integer) : "";
  if constexpr (fields_detail::is_optional<T>::value) return field_expectation<typename T::value_type>(f);
  else if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_enum_v<T>) return enum_choices<T>();
  else if constexpr (std::is_same_v<T, std::string>) return "text";
  else if constexpr (std::is_unsigned_v<T>) return "a non-negative integer below 2^" + std::to_string(8 * sizeof(T)) + range;
  else if constexpr (std::is_integral_v<T>) return "an integer" + range;
  else if constexpr (std::is_floating_point_v<T>) return "a number" + range;
  else if constexpr (fields_detail::is_vector<T>::value) {
    using E = typename T::value_type;
    const char* noun = std::is_floating_point_v<E> ? "numbers" : std::is_unsigned_v<E> ? "non-negative integers" : "integers";
    return std::string("a comma-separated list of ") + noun + range;
  }
  else return "an object";
}

// Parses a field's text strictly (the whole text; no "1e-3x", no "1,2" for one number, integers
// exact to 64 bits) and checks its range. Throws invalid_argument("expected ..., got '...'", or
// "got 0" for a number out of range); the caller puts the flag or key in front.
template <class T>
T parse_field_text(const std::string& text, const FieldInfo& f) {
  const auto fail = [&] { return invalid_argument("expected " + field_expectation<T>(f) + ", got '" + text + "'"); };
  const auto out_of_range = [&] { return invalid_argument("expected " + field_expectation<T>(f) + ", got " + text); };
  if constexpr (fields_detail::is_optional<T>::value) {  // given text is a value; absence is the empty optional
    return T(parse_field_text<typename T::value_type>(text, f));
  } else if constexpr (std::is_same_v<T, bool>) {
    if (text == "true" || text == "1") return true;
    if (text == "false" || text == "0") return false;
    throw fail();
  } else if constexpr (std::is_enum_v<T>) {
    for (const auto& [v, n] : enum_names(T{}))
      if (text == n) return v;
    throw fail();
  } else if constexpr (std::is_same_v<T, std::string>) {
    return text;
  } else if constexpr (std::is_integral_v<T>) {
    if (text.empty() || text.find_first_not_of("0123456789-+") != std::string::npos || text[0] == '+') throw fail();
    errno = 0;
    char* end = nullptr;
    T v;
    // Digits that no T holds: said so, as a number past the range.
    const auto too_large = [&] { return invalid_argument("expected " + field_expectation<T>(f) + ", got '" + text + "' (out of range)"); };
    if constexpr (std::is_unsigned_v<T>) {
      if (text[0] == '-') throw fail();
      const unsigned long long u = std::strtoull(text.c_str(), &end, 10);
      if (*end != '\0') throw fail();
      if (errno == ERANGE || u > std::numeric_limits<T>::max()) throw too_large();
      v = static_cast<T>(u);
    } else {
      const long long s = std::strtoll(text.c_str(), &end, 10);
      if (*end != '\0' || end == text.c_str()) throw fail();
      if (errno == ERANGE || s < std::numeric_limits<T>::min() || s > std::numeric_limits<T>::max()) throw too_large();
      v = static_cast<T>(s);
    }
    if (!f.in_range(static_cast<double>(v))) throw out_of_range();
    return v;
  } else if constexpr (std::is_floating_point_v<T>) {
    char* end = nullptr;
    const double d = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(d) || std::isspace(static_cast<unsigned char>(text[0]))) throw fail();
    if (!f.in_range(d)) throw out_of_range();
    return static_cast<T>(d);
  } else if constexpr (fields_detail::is_vector<T>::value) {
    T out;
    std::istringstream items(text);
    for (std::string item; std::getline(items, item, ',');) {
      try {
        out.push_back(parse_field_text<typename T::value_type>(item, f));
      } catch (const invalid_argument&) {
        throw fail();
      }
    }
    if (out.empty() || text.back() == ',') throw fail();
    return out;
  } else {
    static_assert(sizeof(T) == 0, "parse_field_text: no text form for this field type");
  }
}

// A field's value as text (flags' defaults, help, messages).
template <class T>
std::string field_text(const T& v) {
  if constexpr (fields_detail::is_optional<T>::value) return v ? field_text(*v) : "";
  else if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
  else if constexpr (std::is_enum_v<T>) return enum_name(v);
  else if constexpr (std::is_same_v<T, std::string>) return v;
  else if constexpr (std::is_integral_v<T>) return std::to_string(v);
  else if constexpr (std::is_floating_point_v<T>) {
    std::ostringstream s;
    s << v;
    return s.str();
  } else if constexpr (fields_detail::is_vector<T>::value) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + field_text(v[i]);
    return s;
  } else {
    return "";
  }
}

}  // namespace sae
