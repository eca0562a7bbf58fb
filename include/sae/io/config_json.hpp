// JSON in and out for every config with a field list (core/fields.hpp): one writer and one strict
// reader instead of a hand-written pair per config. The reader refuses unknown keys by name, checks
// each value's type and range, keeps integers exact to 64 bits, fills a missing field with its
// default (unless the field is required), and names the key path of any problem.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/fields.hpp>
#include <sae/io/json.hpp>

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

namespace sae::io {

struct FieldJsonOptions {
  // Every field, the compute-only ones and those a written_when leaves out too (copies between
  // configs); by default a config's JSON is what checkpoints and fingerprints hold.
  bool all_fields = false;
};

namespace config_json_detail {

template <class T>
Json value_to_json(const T& v, FieldJsonOptions opt);

template <class Config>
Json fields_object(const Config& c, FieldJsonOptions opt) {
  Json j = Json::object();
  for_each_field(c, [&](const auto& value, const FieldInfo& f) {
    if (opt.all_fields || (!f.runtime && f.written)) j[f.key] = value_to_json(value, opt);
  });
  return j;
}

template <class T>
Json value_to_json(const T& v, FieldJsonOptions opt) {
  if constexpr (fields_detail::is_optional<T>::value) return v ? value_to_json(*v, opt) : Json();  // unset: null
  else if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::string>) return Json(v);
  else if constexpr (std::is_enum_v<T>) return Json(enum_name(v));
  else if constexpr (std::is_integral_v<T> || std::is_floating_point_v<T>) return Json(v);
  else if constexpr (fields_detail::is_vector<T>::value) {
    Json a = Json::array();
    for (const auto& x : v) a.push_back(value_to_json(x, opt));
    return a;
  } else {
    static_assert(has_fields_v<T>, "config_json: a field's type needs a JSON form or fields of its own");
    return fields_object(v, opt);
  }
}

template <class T>
void read_fields(const Json& j, T& c, const std::string& path, FieldJsonOptions opt);

template <class T>
T value_from_json(const Json& j, const FieldInfo& f, const std::string& path, FieldJsonOptions opt) {
  const auto fail = [&](const std::string& got) {
    return invalid_argument(path + ": expected " + field_expectation<T>(f) + ", got " + got);
  };
  const std::string got = j.is_string() ? "'" + j.as_string() + "'" : j.dump(-1);
  if constexpr (fields_detail::is_optional<T>::value) {
    if (j.is_null()) return T();
    return T(value_from_json<typename T::value_type>(j, f, path, opt));
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_bool()) throw fail(got);
    return j.as_bool();
  } else if constexpr (std::is_enum_v<T> || std::is_same_v<T, std::string>) {
    if (!j.is_string()) throw fail(got);
    try {
      return parse_field_text<T>(j.as_string(), f);
    } catch (const invalid_argument&) {
      throw fail(got);
    }
  } else if constexpr (std::is_integral_v<T>) {
    // Older checkpoints wrote seeds as decimal text (JSON numbers were doubles then).
    if (j.is_string() && std::is_unsigned_v<T>) {
      try {
        return parse_field_text<T>(j.as_string(), f);
      } catch (const invalid_argument&) {
        throw fail(got);
      }
    }
    if (!j.is_number()) throw fail(got);
    T v;
    try {
      if constexpr (std::is_unsigned_v<T>) {
        const std::uint64_t u = j.as_uint64();
        if (u > std::numeric_limits<T>::max()) throw fail(got);
        v = static_cast<T>(u);
      } else {
        const long long s = j.as_int();
        if (s < std::numeric_limits<T>::min() || s > std::numeric_limits<T>::max()) throw fail(got);
        v = static_cast<T>(s);
      }
    } catch (const invalid_argument&) {
      throw;
    } catch (const error&) {
      throw fail(got);
    }
    if (!f.in_range(static_cast<double>(v))) throw fail(got);
    return v;
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!j.is_number() || !std::isfinite(j.as_number()) || !f.in_range(j.as_number())) throw fail(got);
    return static_cast<T>(j.as_number());
  } else if constexpr (fields_detail::is_vector<T>::value) {
    if (!j.is_array()) throw fail(got);
    T out;
    std::size_t i = 0;
    for (const auto& x : j.as_array())
      out.push_back(value_from_json<typename T::value_type>(x, f, path + "[" + std::to_string(i++) + "]", opt));
    return out;
  } else {
    if (!j.is_object()) throw fail(got);
    T c{};
    read_fields(j, c, path + ".", opt);
    return c;
  }
}

template <class T>
void read_fields(const Json& j, T& c, const std::string& path, FieldJsonOptions opt) {
  if (!j.is_object()) throw invalid_argument((path.empty() ? std::string("config") : path) + ": expected an object");
  std::vector<std::string> known;
  for_each_field(c, [&](auto& value, const FieldInfo& f) {
    if (f.runtime && !opt.all_fields) return;
    known.emplace_back(f.key);
    const Json* v = j.find(f.key);
    if (!v) {
      if (f.required) throw invalid_argument(path + f.key + ": missing (required)");
      return;
    }
    value = value_from_json<std::decay_t<decltype(value)>>(*v, f, path + f.key, opt);
  });
  for (const auto& [key, value] : j.as_object()) {
    bool ok = false;
    for (const auto& k : known) ok |= k == key;
    if (!ok) {
      std::string list;
      for (std::size_t i = 0; i < known.size(); ++i) list += (i ? ", " : "") + known[i];
      throw invalid_argument(path + key + ": unknown key (known here: " + list + ")");
    }
  }
}

template <class, class = void>
struct has_validate_caller : std::false_type {};
template <class C>
struct has_validate_caller<C, std::void_t<decltype(std::declval<const C&>().validate(""))>> : std::true_type {};
template <class, class = void>
struct has_validate : std::false_type {};
template <class C>
struct has_validate<C, std::void_t<decltype(std::declval<const C&>().validate())>> : std::true_type {};

}  // namespace config_json_detail

// A config as JSON: its fields in list order, without the compute-only ones and those whose
// written_when is off (unless all_fields).
template <class Config>
Json fields_to_json(const Config& c, FieldJsonOptions opt = {}) {
  return config_json_detail::fields_object(c, opt);
}

// Reads the fields `j` holds into `c` (the others keep their values). Unknown keys, wrong types
// and values out of range throw invalid_argument naming the key path (prefixed by `path`).
template <class Config>
void read_fields(const io::Json& j, Config& c, FieldJsonOptions opt = {}, const std::string& path = "") {
  config_json_detail::read_fields(j, c, path, opt);
}

// Sets the fields `changes` names (an object of key: value; unknown keys, wrong types and values
// out of range are refused by key path, leaving `c` as it was); every other field keeps its value,
// required ones included.
template <class Config>
void assign_fields(const Json& changes, Config& c) {
  if (!changes.is_object()) throw invalid_argument("config changes: expected an object");
  Json all = fields_to_json(c, {true});
  for (const auto& [key, value] : changes.as_object()) all[key] = value;
  Config changed = c;
  read_fields(all, changed, {true});
  c = std::move(changed);
}

// Copies into `to` every field whose key `to` also lists (compute-only and unwritten ones included),
// e.g. the shape, seed and decoder options of one architecture's config into another's.
template <class From, class To>
void assign_shared_fields(const From& from, To& to) {
  const Json all = fields_to_json(from, {true});
  Json shared = Json::object();
  for_each_field(to, [&](const auto&, const FieldInfo& f) {
    if (const Json* v = all.find(f.key)) shared[f.key] = *v;
  });
  read_fields(shared, to, {true});
}

// A config from JSON, its cross-field checks (validate) included; any problem is an io_error
// naming `source`.
template <class Config>
Config config_from_json(const Json& j, const std::string& source, FieldJsonOptions opt = {}) {
  Config c{};
  try {
    read_fields(j, c, opt);
    if constexpr (config_json_detail::has_validate_caller<Config>::value) c.validate("config");
    else if constexpr (config_json_detail::has_validate<Config>::value) c.validate();
  } catch (const io_error&) {
    throw;
  } catch (const error& e) {
    throw io_error(source, e.what());
  }
  return c;
}

}  // namespace sae::io
