// UTF-8 checks for everything we write: text copied from inputs (sample text, metadata strings,
// file names, paths) may be in any encoding, but every JSON, Markdown and CSV file we write is
// valid UTF-8, with each byte that is not part of a valid sequence replaced by U+FFFD.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sae::io {

// Length of the valid UTF-8 sequence starting at s[i] (1-4), or 0 when it is not valid: stray
// continuation bytes, truncated sequences, overlong forms, encoded surrogates (U+D800-DFFF) and code
// points past U+10FFFF (RFC 3629, table 3-7 of the Unicode standard).
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n;
  unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c >= 0xe0 && c <= 0xef) n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
  else if (c >= 0xf0 && c <= 0xf4) n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
  else return 0;
  if (i + n > s.size() || b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if ((b(i + k) & 0xc0) != 0x80) return 0;
  return n;
}

inline bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// The replacement character U+FFFD, for each byte that does not start a valid sequence.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// `s` with every invalid byte replaced by U+FFFD (valid text is returned unchanged).
inline std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += kReplacementCharacter;
      ++i;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  return out;
}

}  // namespace sae::io
