// Text for the reports: numbers through printf formats, Markdown cells and tables, and the one
// way report text reaches a file (write_text_file: valid UTF-8 whatever the inputs held).
#pragma once

#include <sae/io/atomic_file.hpp>
#include <sae/io/utf8.hpp>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace sae::report {

// One number through a printf format, for tables and messages.
inline std::string fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

// A Markdown-safe table cell: pipes escaped, newlines flattened.
inline std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out;
}

// Writes a Markdown, CSV or figure file: text copied from inputs (sample text, paths, metadata)
// may hold bytes that are not UTF-8, and each becomes U+FFFD, as the JSON writer does.
inline void write_text_file(const std::filesystem::path& path, const std::string& text) {
  io::write_text_atomically(path, io::valid_utf8(text));
}

inline std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// A Markdown table: a header row, the separator, then one line per row ("| a | b |").
class MarkdownTable {
 public:
  explicit MarkdownTable(std::vector<std::string> header) : header_(std::move(header)) {}

  MarkdownTable& row(std::vector<std::string> cells) {
    rows_.push_back(std::move(cells));
    return *this;
  }

  std::string str() const {
    std::ostringstream t;
    line(t, header_);
    t << '|';
    for (std::size_t i = 0; i < header_.size(); ++i) t << "---|";
    t << '\n';
    for (const auto& r : rows_) line(t, r);
    return t.str();
  }

 private:
  static void line(std::ostringstream& t, const std::vector<std::string>& cells) {
    t << '|';
    for (const auto& c : cells) t << ' ' << c << " |";
    t << '\n';
  }

  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace sae::report
