// The CUDA backend: include this (instead of, or after, <sae/sae.hpp>) in a .cu file compiled by
// nvcc and link sae::cuda (CUDA runtime + cuBLAS). Then TopKAutoencoder<float, sae::cuda> trains
// with the same Trainer, Adam, callbacks, metrics and checkpoints as the CPU model.
#pragma once

#ifndef __CUDACC__
#error "<sae/cuda.hpp> must be compiled by nvcc (a .cu file); CPU code includes <sae/sae.hpp> only"
#endif

#include <sae/core/backend.hpp>

namespace sae {
template <>
struct backend_available<cuda> : std::true_type {};
}  // namespace sae

#include <sae/backend/cuda/device_matrix.cuh>
#include <sae/backend/cuda/error.cuh>
#include <sae/backend/cuda/kernels.cuh>
#include <sae/backend/cuda/topk_autoencoder.cuh>
#include <sae/sae.hpp>
