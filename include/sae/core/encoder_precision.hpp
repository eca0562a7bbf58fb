// The arithmetic of the encoder GEMM, the one dense product of a TopK training step; one choice
// for every backend (a backend refuses the ones it lacks, by name).
#pragma once

#include <array>
#include <utility>

namespace sae {

enum class EncoderPrecision {
  fp32,  // float inputs, float FMA (default; what the reports' PyTorch code computes)
  tf32,  // CUDA only: TF32 tensor cores (inputs rounded to 10-bit mantissas), float accumulation
  bf16,  // inputs rounded to bfloat16, float accumulation, at twice the FLOP rate; the selection and
         // code values come from these pre-activations (see README, "The model, exactly")
};

inline std::array<std::pair<EncoderPrecision, const char*>, 3> enum_names(EncoderPrecision) {
  return {{{EncoderPrecision::fp32, "fp32"}, {EncoderPrecision::tf32, "tf32"}, {EncoderPrecision::bf16, "bf16"}}};
}

inline const char* name(EncoderPrecision p) {
  return p == EncoderPrecision::fp32 ? "fp32" : p == EncoderPrecision::tf32 ? "tf32" : "bf16";
}

}  // namespace sae
