// Backend tags. Kernels are free functions overloaded on these empty types (Thrust-style tag
// dispatch), so models call `ops::topk_rows(Backend{}, ...)` and contain no #ifdef.
#pragma once

#include <type_traits>

namespace sae {

struct cpu {};   // Eigen + OpenMP kernels, include/sae/backend/cpu/
struct cuda {};  // CUDA kernels, include/sae/backend/cuda/ (only through <sae/cuda.hpp>)

// Whether a backend's kernels are compiled into this translation unit. <sae/cuda.hpp> turns the
// cuda one on; models static_assert on it so a missing include fails with a readable message.
template <class Backend>
struct backend_available : std::false_type {};
template <>
struct backend_available<cpu> : std::true_type {};

}  // namespace sae
