// Version, feature switches and the language floor for every public header.
#pragma once

#if defined(_MSVC_LANG)
#define SAE_CPLUSPLUS _MSVC_LANG
#else
#define SAE_CPLUSPLUS __cplusplus
#endif
#if SAE_CPLUSPLUS < 201703L
#error "sae needs C++17 or newer (compile with -std=c++17)"
#endif

#define SAE_VERSION_MAJOR 0
#define SAE_VERSION_MINOR 1
#define SAE_VERSION_PATCH 0
#define SAE_VERSION_STRING "0.1.0"

// OpenMP is optional: without it every kernel runs on one thread and stays correct.
#if defined(_OPENMP)
#define SAE_USE_OPENMP 1
#include <omp.h>
#else
#define SAE_USE_OPENMP 0
#endif

namespace sae {

inline int max_threads() {
#if SAE_USE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace sae
