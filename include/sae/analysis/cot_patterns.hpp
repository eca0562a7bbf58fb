// What a GSM8K sample's chain of thought contains, for the reports' pattern heuristics: which
// arithmetic operations its `<<a+b=c>>` steps use, which operand values appear, whether a round
// number (100, 200, 500, 1000) appears, and which question keywords it has.
#pragma once

#include <sae/data/samples.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <vector>

namespace sae::analysis {

enum class Operation { add = 0, subtract, multiply, divide };
inline constexpr std::array<Operation, 4> kOperations{Operation::add, Operation::subtract, Operation::multiply,
                                                      Operation::divide};
inline const char* name(Operation op) {
  static const char* names[] = {"addition", "subtraction", "multiplication", "division"};
  return names[static_cast<int>(op)];
}

// The report's keyword list, matched as whole words in the question, case-insensitively.
inline const std::vector<std::string>& cot_keywords() {
  static const std::vector<std::string> k{"how many", "total", "sum", "difference", "product"};
  return k;
}

inline const std::vector<std::string>& round_numbers() {
  static const std::vector<std::string> r{"100", "200", "500", "1000"};
  return r;
}

struct CotFeatures {
  std::array<bool, 4> uses{};         // indexed by Operation
  std::vector<std::string> operands;  // distinct operand values, normalised ("1,000.50" -> "1000.5")
  bool round_number = false;          // an operand or result is 100, 200, 500 or 1000
  std::vector<std::string> keywords;  // cot_keywords() found in the question

  bool has(Operation op) const { return uses[static_cast<std::size_t>(op)]; }
  bool has_operand(const std::string& v) const { return std::find(operands.begin(), operands.end(), v) != operands.end(); }
  bool has_keyword(const std::string& k) const { return std::find(keywords.begin(), keywords.end(), k) != keywords.end(); }
};

namespace detail {
// "1,000.50" -> "1000.5", "3.0" -> "3", "007" -> "7"; commas inside numbers are thousands separators.
inline std::string normalize_number(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), ','), s.end());
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  const auto first = s.find_first_not_of('0');
  if (first == std::string::npos) return "0";
  if (s[first] == '.') return "0" + s.substr(first);
  return s.substr(first);
}

// The numbers in an expression, in order (a leading '.' as in ".5" counts).
inline std::vector<std::string> numbers_in(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < text.size();) {
    const bool starts = std::isdigit(static_cast<unsigned char>(text[i])) ||
                        (text[i] == '.' && i + 1 < text.size() && std::isdigit(static_cast<unsigned char>(text[i + 1])));
    if (!starts) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.' ||
                               (text[j] == ',' && j + 1 < text.size() && std::isdigit(static_cast<unsigned char>(text[j + 1])))))
      ++j;
    std::string token = text.substr(i, j - i);
    while (!token.empty() && token.back() == '.') token.pop_back();  // sentence full stop
    out.push_back(normalize_number(token));
    i = j;
  }
  return out;
}

// A '-' is subtraction when an operand ends right before it (a digit, ')' or '%'), not a sign.
inline bool is_binary_minus(const std::string& e, std::size_t pos) {
  std::size_t p = pos;
  while (p > 0 && e[p - 1] == ' ') --p;
  if (p == 0) return false;
  const char c = e[p - 1];
  return std::isdigit(static_cast<unsigned char>(c)) || c == ')' || c == '%' || c == '.';
}

inline std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

inline bool contains_word(const std::string& text, const std::string& word) {
  for (std::size_t pos = text.find(word); pos != std::string::npos; pos = text.find(word, pos + 1)) {
    const bool left = pos == 0 || !std::isalnum(static_cast<unsigned char>(text[pos - 1]));
    const std::size_t end = pos + word.size();
    const bool right = end == text.size() || !std::isalnum(static_cast<unsigned char>(text[end]));
    if (left && right) return true;
  }
  return false;
}
}  // namespace detail

inline CotFeatures cot_features(const data::Sample& sample) {
  CotFeatures f;
  for (const auto& step : sample.cot_steps) {
    const std::string& e = step.expression;
    for (std::size_t i = 0; i < e.size(); ++i) {
      if (e[i] == '+') f.uses[0] = true;
      if (e[i] == '-' && detail::is_binary_minus(e, i)) f.uses[1] = true;
      if (e[i] == '*') f.uses[2] = true;
      if (e[i] == '/') f.uses[3] = true;
    }
    auto numbers = detail::numbers_in(e);
    for (const auto& n : numbers)
      if (!f.has_operand(n)) f.operands.push_back(n);
    for (const auto& n : detail::numbers_in(step.result)) numbers.push_back(n);
    for (const auto& n : numbers)
      f.round_number = f.round_number || std::find(round_numbers().begin(), round_numbers().end(), n) != round_numbers().end();
  }
  const std::string question = detail::lower(sample.question);
  for (const auto& k : cot_keywords())
    if (detail::contains_word(question, k)) f.keywords.push_back(k);
  return f;
}

}  // namespace sae::analysis
