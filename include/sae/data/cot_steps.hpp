// GSM8K's chain-of-thought steps: the calculator annotations `<<48/2=24>>` inside an answer.
#pragma once

#include <string>
#include <vector>

namespace sae::data {

struct CotStep {
  std::string expression;  // left of '=', e.g. "48/2"
  std::string result;      // right of '=', e.g. "24"
  std::string text() const { return expression + "=" + result; }
};

// Every `<<lhs=rhs>>` annotation in order. A malformed one (no '=', or unclosed) is skipped, as
// GSM8K has a handful of those.
inline std::vector<CotStep> parse_cot_steps(const std::string& answer) {
  std::vector<CotStep> steps;
  std::size_t pos = 0;
  while ((pos = answer.find("<<", pos)) != std::string::npos) {
    const std::size_t close = answer.find(">>", pos + 2);
    if (close == std::string::npos) break;
    const std::string inner = answer.substr(pos + 2, close - pos - 2);
    const std::size_t eq = inner.rfind('=');
    if (eq != std::string::npos && inner.find("<<") == std::string::npos)
      steps.push_back({inner.substr(0, eq), inner.substr(eq + 1)});
    pos = close + 2;
  }
  return steps;
}

// The text after the last "####" marker, trimmed; empty if there is none.
inline std::string parse_final_answer(const std::string& answer) {
  const std::size_t marker = answer.rfind("####");
  if (marker == std::string::npos) return {};
  std::string s = answer.substr(marker + 4);
  const auto first = s.find_first_not_of(" \t\r\n");
  const auto last = s.find_last_not_of(" \t\r\n");
  return first == std::string::npos ? std::string() : s.substr(first, last - first + 1);
}

}  // namespace sae::data
