// Fingerprints: what decided a result (data identity and content, slice, every setting, seed,
// library version), stored beside it, so a later run reuses the result only when everything
// that decided it is the same, and otherwise says exactly what differs.
//
// A fingerprint is a JSON object of scalars (nested objects allowed). Data is identified by
// content, not by path: the same file moved or copied still matches, a changed file does not.
#pragma once

#include <sae/config.hpp>
#include <sae/core/error.hpp>
#include <sae/io/json.hpp>
#include <sae/io/array_file.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace sae::io {

namespace detail {

// A 64-bit content hash over 8-byte words in four independent lanes (the xxHash64 round
// structure), so it runs at memory speed; not cryptographic, only a change detector.
class ContentHasher {
 public:
  void update(const unsigned char* p, std::size_t n) {
    total_ += n;
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32)
      for (int l = 0; l < 4; ++l) lane_[l] = round(lane_[l], load(p + i + 8 * l));
    for (; i < n; ++i) tail_ = (tail_ ^ p[i]) * kP1 + 0x9e37u;
  }
  std::uint64_t digest() const {
    std::uint64_t h = rotl(lane_[0], 1) + rotl(lane_[1], 7) + rotl(lane_[2], 12) + rotl(lane_[3], 18);
    for (int l = 0; l < 4; ++l) h = (h ^ round(0, lane_[l])) * kP1 + kP4;
    h ^= tail_ + total_;
    h ^= h >> 33;
    h *= kP2;
    h ^= h >> 29;
    h *= kP3;
    return h ^ (h >> 32);
  }

 private:
  static constexpr std::uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full,
                                 kP3 = 0x165667B19E3779F9ull, kP4 = 0x85EBCA77C2B2AE63ull;
  static std::uint64_t rotl(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
  static std::uint64_t load(const unsigned char* p) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  }
  static std::uint64_t round(std::uint64_t acc, std::uint64_t w) { return rotl(acc + w * kP2, 31) * kP1; }

  std::uint64_t lane_[4] = {kP1 + kP2, kP2, 0, 0 - kP1};
  std::uint64_t tail_ = 0, total_ = 0;
};

inline std::string hex64(std::uint64_t h) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Files up to this size are hashed whole; larger ones (multi-GB sweeps) by an even sample of
// 64 KiB blocks totalling this much, plus their size and header, so a check stays seconds long.
constexpr std::size_t kWholeHashBytes = std::size_t{1} << 30;
constexpr std::size_t kSampleBlock = std::size_t{1} << 16;

}  // namespace detail

// Content hash of a mapped file: whole when at most `budget` bytes (1 GiB), else evenly spaced
// 64 KiB blocks totalling `budget` (at least 64 blocks), and the last block.
inline std::string content_hash(const unsigned char* bytes, std::size_t size, std::size_t budget = detail::kWholeHashBytes) {
  detail::ContentHasher h;
  if (size <= budget) {
    h.update(bytes, size);
    return detail::hex64(h.digest());
  }
  const std::size_t blocks = std::max<std::size_t>(64, budget / detail::kSampleBlock);
  const std::size_t step = (size - detail::kSampleBlock) / (blocks - 1);
  for (std::size_t b = 0; b < blocks; ++b) h.update(bytes + b * step, detail::kSampleBlock);
  h.update(bytes + size - detail::kSampleBlock, detail::kSampleBlock);
  return "sampled-" + detail::hex64(h.digest());
}

// The data part of a fingerprint: dtype, shape, byte size and content hash of an array file (and
// the tensor, for a .safetensors file). A shard set shares one hashing budget among its shards.
inline Json data_fingerprint(const ArrayFile& view, std::size_t hash_budget = detail::kWholeHashBytes) {
  Json j = Json::object();
  j["dtype"] = view.dtype();
  j["shape"] = view.shape_string();
  j["bytes"] = static_cast<unsigned long long>(view.file_size());
  j["content_hash"] = content_hash(view.file_bytes(), view.file_size(), hash_budget);
  if (!view.tensor_name().empty()) j["tensor"] = view.tensor_name();  // one of a .safetensors file's
  return j;
}

// The library version, the field every fingerprint carries.
inline Json library_fingerprint() { return Json(SAE_VERSION_STRING); }

namespace detail {
inline std::string brief(const Json& v) {
  if (v.is_string()) return "'" + v.as_string() + "'";
  return v.dump(-1);
}
inline void diff(const Json& stored, const Json& expected, const std::string& prefix, std::vector<std::string>& out) {
  if (expected.is_object() && stored.is_object()) {
    for (const auto& [key, value] : expected.as_object()) {
      const std::string name = prefix.empty() ? key : prefix + "." + key;
      const Json* there = nullptr;
      for (const auto& [k, v] : stored.as_object())
        if (k == key) there = &v;
      if (!there) out.push_back(name + ": not recorded there, " + brief(value) + " now");
      else diff(*there, value, name, out);
    }
    for (const auto& [key, value] : stored.as_object()) {
      bool known = false;
      for (const auto& [k, v] : expected.as_object()) known |= k == key;
      if (!known) out.push_back((prefix.empty() ? key : prefix + "." + key) + ": " + brief(value) + " there, not a setting now");
    }
    return;
  }
  // Runs before the field lists wrote seeds as decimal text: the same integer matches.
  const bool text_integer = stored.is_string() && expected.is_integer() && stored.as_string() == expected.dump(-1);
  if (!text_integer && stored.dump(-1) != expected.dump(-1))
    out.push_back(prefix + ": " + brief(stored) + " there, " + brief(expected) + " now");
}
}  // namespace detail

// What differs between a stored fingerprint and this run's, one "field: there vs now" line each;
// empty when they match.
inline std::vector<std::string> fingerprint_differences(const Json& stored, const Json& expected) {
  std::vector<std::string> out;
  detail::diff(stored, expected, "", out);
  return out;
}

// The differences joined for a message, at most `max` of them named.
inline std::string describe_differences(const std::vector<std::string>& diffs, std::size_t max = 6) {
  std::string s;
  for (std::size_t i = 0; i < diffs.size() && i < max; ++i) s += (i ? "; " : "") + diffs[i];
  if (diffs.size() > max) s += "; and " + std::to_string(diffs.size() - max) + " more";
  return s;
}

}  // namespace sae::io
