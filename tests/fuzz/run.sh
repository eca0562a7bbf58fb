#!/usr/bin/env bash
# Builds the libFuzzer targets with clang under AddressSanitizer + UBSan and runs each for a given
# time, starting from the committed seed corpus (tests/fuzz/corpus/<target>, never modified; the
# growing corpus lives in the build folder). A crash, leak, sanitizer report, timeout or
# out-of-memory stops the run with a non-zero exit and leaves the input under
# <build>/artifacts/<target>/.
#
#   bash tests/fuzz/run.sh [seconds per target, default 60] [build folder, default build-fuzz]
set -euo pipefail
seconds="${1:-60}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${2:-$root/build-fuzz}"
targets=(npy_fuzz json_fuzz checkpoint_fuzz safetensors_fuzz interop_fuzz config_fuzz)

cxx="$(command -v clang++ || true)"
if [ -z "$cxx" ]; then
  echo "fuzz: clang++ not found (Debian: apt-get install clang)" >&2
  exit 2
fi
eigen="$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)"
# config_fuzz reads examples/config_file.hpp, which needs cxxopts (header-only; Debian's
# libcxxopts-dev puts it in /usr/include, found anyway; pkg-config knows other prefixes).
cxxopts="$(pkg-config --cflags cxxopts 2>/dev/null || true)"
if ! echo '#include <cxxopts.hpp>' | "$cxx" -std=c++17 $cxxopts -E -x c++ - >/dev/null 2>&1; then
  echo "fuzz: cxxopts.hpp not found (Debian: apt-get install libcxxopts-dev; or set PKG_CONFIG_PATH)" >&2
  exit 2
fi
mkdir -p "$build"
for t in "${targets[@]}"; do
  if [ ! "$build/$t" -nt "$root/tests/fuzz/$t.cpp" ] ||
     [ -n "$(find "$root/include" "$root/examples" "$root/tests/fuzz" -newer "$build/$t" -name '*.hpp' -print -quit)" ]; then
    echo "fuzz: building $t"
    # -fsanitize=fuzzer supplies main(); UBSan findings abort so libFuzzer records them.
    "$cxx" -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
      -DSAE_USE_OPENMP=0 -I"$root/include" -I"$root/examples" $eigen $cxxopts "$root/tests/fuzz/$t.cpp" -o "$build/$t"
  fi
done

status=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  artifacts="$build/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  echo "fuzz: $t for ${seconds}s"
  log="$build/$t.log"
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
     "$build/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 \
       -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "$root/tests/fuzz/corpus/${t%_fuzz}" >"$log" 2>&1; then
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    echo "fuzz: $t: $runs inputs, no findings; corpus $(ls "$corpus" | wc -l) files"
  else
    status=1
    echo "fuzz: $t FOUND A PROBLEM; input saved under $artifacts/:" >&2
    grep -E "ERROR|SUMMARY|runtime error|==[0-9]+==|Test unit written" "$log" | head -20 >&2
  fi
done
exit "$status"
