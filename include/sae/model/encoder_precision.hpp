// The arithmetic of the encoder GEMM, the one dense product of a TopK training step.
#pragma once

namespace sae {

enum class EncoderPrecision {
  fp32,  // float inputs, float FMA (default; what the reports' PyTorch code computes)
  bf16,  // inputs rounded to bfloat16, float accumulation: ranks candidates at twice the FLOP rate,
         // then the kept latents are rescored in fp32 (see TopKConfig::encoder_precision)
};

}  // namespace sae
