// A small JSON value with a writer and a strict parser: enough for configs, metrics and
// `samples.jsonl`, without adding a dependency to the headers. Objects keep insertion order so
// written files are stable and diffable; a key given twice in one object is refused when parsed.
// What it writes is valid UTF-8 whatever the strings hold (io/utf8.hpp).
#pragma once

#include <sae/core/error.hpp>
#include <sae/io/input_file.hpp>
#include <sae/io/utf8.hpp>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace sae::io {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : v_(b) {}
  // Integers are kept exactly (every 64-bit value, signed or not); other numbers are doubles.
  Json(int x) : v_(static_cast<std::int64_t>(x)) {}
  Json(long x) : v_(static_cast<std::int64_t>(x)) {}
  Json(long long x) : v_(static_cast<std::int64_t>(x)) {}
  Json(unsigned x) : v_(static_cast<std::int64_t>(x)) {}
  Json(unsigned long x) { set_unsigned(x); }
  Json(unsigned long long x) { set_unsigned(x); }
  Json(double x) : v_(x) {}
  Json(float x) : v_(static_cast<double>(x)) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(Array a) : v_(std::move(a)) {}
  Json(Object o) : v_(std::move(o)) {}

  static Json object() { return Json(Object{}); }
  static Json array() { return Json(Array{}); }

  bool is_null() const { return std::holds_alternative<std::monostate>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_number() const { return is_integer() || std::holds_alternative<double>(v_); }
  // A number written (or built) as an integer, held exactly.
  bool is_integer() const { return std::holds_alternative<std::int64_t>(v_) || std::holds_alternative<std::uint64_t>(v_); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_array() const { return std::holds_alternative<Array>(v_); }
  bool is_object() const { return std::holds_alternative<Object>(v_); }

  bool as_bool() const { return get<bool>("a boolean"); }
  double as_number() const {
    if (const auto* i = std::get_if<std::int64_t>(&v_)) return static_cast<double>(*i);
    if (const auto* u = std::get_if<std::uint64_t>(&v_)) return static_cast<double>(*u);
    return get<double>("a number");
  }
  const std::string& as_string() const { return get<std::string>("a string"); }
  const Array& as_array() const { return get<Array>("an array"); }
  Array& as_array() { return get<Array>("an array"); }
  const Object& as_object() const { return get<Object>("an object"); }

  // Integer value; throws if the number is not integral or out of range.
  long long as_int() const {
    if (const auto* i = std::get_if<std::int64_t>(&v_)) return *i;
    if (std::holds_alternative<std::uint64_t>(v_)) throw error("json: integer out of range: " + dump(-1));
    const double d = as_number();
    if (d != std::floor(d)) throw error("json: expected an integer but found " + std::to_string(d));
    // Integers JSON can carry exactly (|d| <= 2^53); larger ones would not convert safely.
    if (std::abs(d) > 9007199254740992.0) throw error("json: integer out of range: " + std::to_string(d));
    return static_cast<long long>(d);
  }
  // A non-negative integer up to 2^64 - 1, exactly; throws otherwise.
  std::uint64_t as_uint64() const {
    if (const auto* u = std::get_if<std::uint64_t>(&v_)) return *u;
    const long long i = as_int();
    if (i < 0) throw error("json: expected a non-negative integer but found " + std::to_string(i));
    return static_cast<std::uint64_t>(i);
  }

  const Json* find(const std::string& key) const {
    for (const auto& [k, v] : as_object())
      if (k == key) return &v;
    return nullptr;
  }
  const Json& at(const std::string& key) const {
    if (const Json* v = find(key)) return *v;
    throw error("json: missing key '" + key + "'");
  }
  // Inserts or replaces a key.
  Json& operator[](const std::string& key) {
    if (is_null()) v_ = Object{};
    auto& o = get<Object>("an object");
    for (auto& [k, v] : o)
      if (k == key) return v;
    o.emplace_back(key, Json());
    return o.back().second;
  }
  void push_back(Json v) {
    if (is_null()) v_ = Array{};
    get<Array>("an array").push_back(std::move(v));
  }

  // indent < 0: one line. Non-finite numbers are written as null, since JSON has no NaN.
  std::string dump(int indent = 2) const {
    std::string out;
    write(out, indent, 0);
    return out;
  }

  static Json parse(const std::string& text, const std::string& source = "json") {
    Parser p{text, source};
    Json v = p.value();
    p.space();
    if (p.pos != text.size()) p.fail("trailing characters");
    return v;
  }

 private:
  template <class T>
  const T& get(const char* what) const {
    if (const T* p = std::get_if<T>(&v_)) return *p;
    throw error(std::string("json: expected ") + what);
  }
  template <class T>
  T& get(const char* what) {
    if (T* p = std::get_if<T>(&v_)) return *p;
    throw error(std::string("json: expected ") + what);
  }

  // Always valid UTF-8 JSON: control characters escaped, bytes that are not UTF-8 (text copied
  // from inputs in other encodings) replaced by U+FFFD.
  static void write_string(std::string& out, const std::string& s) {
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
      const char c = s[i];
      switch (c) {
        case '"': out += "\\\""; ++i; continue;
        case '\\': out += "\\\\"; ++i; continue;
        case '\n': out += "\\n"; ++i; continue;
        case '\r': out += "\\r"; ++i; continue;
        case '\t': out += "\\t"; ++i; continue;
        default: break;
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
        out += buf;
        ++i;
        continue;
      }
      const std::size_t n = utf8_sequence_length(s, i);
      if (n == 0) {
        out += kReplacementCharacter;
        ++i;
      } else {
        out.append(s, i, n);
        i += n;
      }
    }
    out += '"';
  }

  void write(std::string& out, int indent, int depth) const {
    const auto newline = [&](int d) {
      if (indent >= 0) out += '\n' + std::string(static_cast<std::size_t>(indent * d), ' ');
    };
    if (is_null()) {
      out += "null";
    } else if (is_bool()) {
      out += as_bool() ? "true" : "false";
    } else if (const auto* i = std::get_if<std::int64_t>(&v_)) {
      out += std::to_string(*i);
    } else if (const auto* u = std::get_if<std::uint64_t>(&v_)) {
      out += std::to_string(*u);
    } else if (is_number()) {
      const double d = as_number();
      if (!std::isfinite(d)) {
        out += "null";
      } else if (d == std::floor(d) && std::fabs(d) < 1e15) {
        out += std::to_string(static_cast<long long>(d));
      } else {
        // The shortest of 15 or 17 significant digits that reads back exactly.
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.15g", d);
        if (std::strtod(buf, nullptr) != d) std::snprintf(buf, sizeof buf, "%.17g", d);
        out += buf;
      }
    } else if (is_string()) {
      write_string(out, as_string());
    } else if (is_array()) {
      const auto& a = as_array();
      out += '[';
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (i) out += ',';
        newline(depth + 1);
        a[i].write(out, indent, depth + 1);
      }
      if (!a.empty()) newline(depth);
      out += ']';
    } else {
      const auto& o = as_object();
      out += '{';
      for (std::size_t i = 0; i < o.size(); ++i) {
        if (i) out += ',';
        newline(depth + 1);
        write_string(out, o[i].first);
        out += indent >= 0 ? ": " : ":";
        o[i].second.write(out, indent, depth + 1);
      }
      if (!o.empty()) newline(depth);
      out += '}';
    }
  }

  struct Parser {
    const std::string& s;
    const std::string& source;
    std::size_t pos = 0;
    int depth = 0;
    static constexpr int kMaxDepth = 256;  // deeper nesting is refused, not a stack overflow

    [[noreturn]] void fail(const std::string& what) const {
      throw io_error(source, "invalid JSON at offset " + std::to_string(pos) + ": " + what);
    }
    [[noreturn]] void duplicate(const std::string& key, std::size_t at) const {
      std::string shown = Json(key.size() > 80 ? key.substr(0, 80) + "..." : key).dump(-1);  // escaped, one line
      shown = shown.substr(1, shown.size() - 2);
      throw io_error(source, "duplicate key '" + shown + "' in one object (at offset " + std::to_string(at) + ")");
    }
    void space() {
      while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\n' || s[pos] == '\r' || s[pos] == '\t')) ++pos;
    }
    bool literal(const char* word) {
      const std::size_t n = std::char_traits<char>::length(word);
      if (s.compare(pos, n, word) != 0) return false;
      pos += n;
      return true;
    }
    Json value() {
      space();
      if (pos >= s.size()) fail("unexpected end");
      const char c = s[pos];
      if (c == '{' || c == '[') {
        if (++depth > kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
        Json v = c == '{' ? object_value() : array_value();
        --depth;
        return v;
      }
      if (c == '"') return Json(string_value());
      if (literal("true")) return Json(true);
      if (literal("false")) return Json(false);
      if (literal("null")) return Json();
      if (c == '-' || (c >= '0' && c <= '9')) return number_value();
      fail(std::string("unexpected character '") + c + "'");
    }
    // The JSON number grammar exactly (no hex, inf, nan, leading '+' or zeros); finite only.
    Json number_value() {
      const std::size_t begin = pos;
      const auto digits = [&] {
        const std::size_t from = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
        return pos > from;
      };
      if (s[pos] == '-') ++pos;
      if (pos < s.size() && s[pos] == '0') ++pos;
      else if (!digits()) fail("bad number");
      if (pos < s.size() && s[pos] == '.' && (++pos, !digits())) fail("bad number: digits must follow '.'");
      if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
        ++pos;
        if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) ++pos;
        if (!digits()) fail("bad number: digits must follow the exponent");
      }
      const std::string text = s.substr(begin, pos - begin);
      // An integer literal that fits 64 bits is kept exactly (seeds, row counts past 2^53).
      if (text.find_first_of(".eE") == std::string::npos) {
        errno = 0;
        char* end = nullptr;
        if (text[0] == '-') {
          const long long v = std::strtoll(text.c_str(), &end, 10);
          if (errno == 0 && *end == '\0') return Json(v);
        } else {
          const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
          if (errno == 0 && *end == '\0') return Json(v);
        }
      }
      const double d = std::strtod(text.c_str(), nullptr);
      if (!std::isfinite(d)) fail("number out of range");
      return Json(d);
    }
    static void append_utf8(std::string& out, unsigned cp) {
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
      } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
      }
    }
    unsigned hex4() {
      if (pos + 4 > s.size()) fail("short \\u escape");
      unsigned v = 0;
      for (int i = 0; i < 4; ++i) {
        const char h = s[pos++];
        v <<= 4;
        if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
        else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
        else fail("bad \\u escape");
      }
      return v;
    }
    std::string string_value() {
      ++pos;  // opening quote
      std::string out;
      while (true) {
        if (pos >= s.size()) fail("unterminated string");
        const char c = s[pos++];
        if (c == '"') return out;
        if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string (must be escaped)");
        if (c != '\\') {
          out += c;
          continue;
        }
        if (pos >= s.size()) fail("unterminated escape");
        const char e = s[pos++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            unsigned cp = hex4();
            if (cp >= 0xd800 && cp < 0xdc00 && s.compare(pos, 2, "\\u") == 0) {  // surrogate pair
              const std::size_t at = pos;
              pos += 2;
              const unsigned lo = hex4();
              if (lo >= 0xdc00 && lo < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
              else pos = at;  // not a pair: the high half alone is replaced below
            }
            append_utf8(out, cp >= 0xd800 && cp < 0xe000 ? 0xfffd : cp);  // a lone surrogate is not text
            break;
          }
          default: fail(std::string("bad escape '\\") + e + "'");
        }
      }
    }
    Json array_value() {
      ++pos;
      Array a;
      space();
      if (pos < s.size() && s[pos] == ']') return ++pos, Json(std::move(a));
      while (true) {
        a.push_back(value());
        space();
        if (pos < s.size() && s[pos] == ',') {
          ++pos;
          continue;
        }
        if (pos < s.size() && s[pos] == ']') return ++pos, Json(std::move(a));
        fail("expected ',' or ']'");
      }
    }
    // A key given twice in one object is refused by name: readers disagree on which value counts
    // (Python's json, and so SAELens, takes the last; a first-match lookup the first).
    Json object_value() {
      ++pos;
      Object o;
      std::unordered_set<std::string> keys;  // as they would be written (invalid bytes as U+FFFD)
      space();
      if (pos < s.size() && s[pos] == '}') return ++pos, Json(std::move(o));
      while (true) {
        space();
        if (pos >= s.size() || s[pos] != '"') fail("expected a key");
        const std::size_t key_at = pos;
        std::string key = string_value();
        if (!keys.insert(valid_utf8(key)).second) duplicate(key, key_at);
        space();
        if (pos >= s.size() || s[pos] != ':') fail("expected ':'");
        ++pos;
        o.emplace_back(std::move(key), value());
        space();
        if (pos < s.size() && s[pos] == ',') {
          ++pos;
          continue;
        }
        if (pos < s.size() && s[pos] == '}') return ++pos, Json(std::move(o));
        fail("expected ',' or '}'");
      }
    }
  };

  void set_unsigned(unsigned long long x) {
    if (x <= static_cast<unsigned long long>(INT64_MAX)) v_ = static_cast<std::int64_t>(x);
    else v_ = static_cast<std::uint64_t>(x);
  }

  std::variant<std::monostate, bool, double, std::int64_t, std::uint64_t, std::string, Array, Object> v_;
};

// Reads and parses a whole JSON file.
inline Json read_json_file(const std::string& path) {
  require_readable_file(path, "JSON file");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw io_error(path, "cannot open");
  std::string text;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return Json::parse(text, path);
}

}  // namespace sae::io
