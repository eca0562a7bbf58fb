// Text for the reports: numbers through printf formats and Markdown tables.
#pragma once

#include <cstdio>
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
