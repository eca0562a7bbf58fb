// Refusing work that cannot fit in memory before allocating it: Linux overcommits, so a huge
// allocation "succeeds" and the process is killed later; or it fails as a bare std::bad_alloc.
// Either way the user learns nothing. Here the caller states what it needs and gets one line
// naming the bytes needed and the bytes available.
#pragma once

#include <sae/core/error.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

#include <unistd.h>

namespace sae {

// Memory cannot hold what was asked for.
struct resource_error : error {
  using error::error;
};

// Memory a new allocation can use: MemAvailable (Linux), else physical memory; nothing when
// neither can be read.
inline std::optional<double> available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024.0;
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGE_SIZE)
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) return static_cast<double>(pages) * static_cast<double>(page);
#endif
  return std::nullopt;
}

// "1.5 GiB", "12.0 MiB": bytes for messages.
inline std::string format_bytes(double bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 6) bytes /= 1024.0, ++u;
  char buf[48];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

// Throws resource_error unless `bytes` (a double, so products of sizes cannot overflow) fit in
// the memory available now. `what` names the thing being allocated.
inline void require_memory(double bytes, const std::string& what) {
  const auto available = available_memory_bytes();
  if (available && bytes > *available)
    throw resource_error(what + " needs " + format_bytes(bytes) + " of memory but only " + format_bytes(*available) +
                         " is available; choose smaller sizes");
}

}  // namespace sae
