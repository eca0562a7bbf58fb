// The CUDA backend: include this (instead of <sae/sae.hpp>) in a .cu file compiled by nvcc and
// link sae::cuda (CUDA runtime + cuBLAS). Then TopKAutoencoder<float, sae::cuda> — the same model
// as the CPU one, its kernels the ops declared here — trains with the same Trainer, callbacks,
// metrics and checkpoints, and Adam<float, sae::cuda>.
#pragma once

#ifndef __CUDACC__
#error "<sae/cuda.hpp> must be compiled by nvcc (a .cu file); CPU code includes <sae/sae.hpp> only"
#endif
// The models find the CUDA ops by argument-dependent lookup where they are instantiated
// (core/backend.hpp), so this header may come before or after any other sae header.

#include <sae/core/backend.hpp>

namespace sae {
template <>
struct backend_available<cuda> : std::true_type {};
}  // namespace sae

#include <sae/backend/cuda/adam.cuh>
#include <sae/backend/cuda/device_matrix.cuh>
#include <sae/backend/cuda/encoder.cuh>
#include <sae/backend/cuda/error.cuh>
#include <sae/backend/cuda/kernels.cuh>
#include <sae/backend/cuda/sparse.cuh>
#include <sae/backend/cuda/storage.cuh>
#include <sae/sae.hpp>
