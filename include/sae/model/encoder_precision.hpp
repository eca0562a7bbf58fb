// The arithmetic of the encoder GEMM, the one dense product of a TopK training step.
#pragma once

namespace sae {

enum class EncoderPrecision {
  fp32,  // float inputs, float FMA (default; what the reports' PyTorch code computes)
  bf16,  // inputs rounded to bfloat16, float accumulation, at twice the FLOP rate; the selection and
         // code values come from these pre-activations (see README, "The model, exactly")
};

}  // namespace sae
