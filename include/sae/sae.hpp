// Umbrella header for CPU users. Never includes CUDA headers (see <sae/cuda.hpp>).
#pragma once

#include <sae/config.hpp>
#include <sae/analysis/pareto.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/error.hpp>
#include <sae/core/rng.hpp>
#include <sae/core/types.hpp>
#include <sae/data/activations.hpp>
#include <sae/data/batches.hpp>
#include <sae/data/cot_steps.hpp>
#include <sae/data/planted.hpp>
#include <sae/data/samples.hpp>
#include <sae/data/split.hpp>
#include <sae/io/json.hpp>
#include <sae/io/jsonl.hpp>
#include <sae/io/npy.hpp>
#include <sae/io/npy_mmap.hpp>
#include <sae/metrics/evaluate.hpp>
#include <sae/metrics/reconstruction.hpp>
#include <sae/metrics/sparsity.hpp>
#include <sae/model/checkpoint.hpp>
#include <sae/model/matryoshka_autoencoder.hpp>
#include <sae/model/topk_autoencoder.hpp>
#include <sae/optim/adam.hpp>
#include <sae/train/callbacks.hpp>
#include <sae/train/trainer.hpp>
