// Where the CPU backend keeps a model's data: host Eigen matrices, row-sparse weight gradients and
// host sparse codes (core/backend.hpp lists the members). The models take and return host data on
// every backend; here staging and returning it is free.
#pragma once

#include <sae/backend/cpu/encoder_gemm.hpp>
#include <sae/backend/cpu/sparse.hpp>
#include <sae/core/backend.hpp>
#include <sae/core/encoder_precision.hpp>
#include <sae/core/error.hpp>
#include <sae/core/row_sparse.hpp>
#include <sae/core/sparse_codes.hpp>
#include <sae/core/types.hpp>

#include <type_traits>
#include <utility>
#include <vector>

namespace sae {

template <class Scalar>
struct storage<cpu, Scalar> {
  using matrix = Matrix<Scalar>;
  using vector = Vector<Scalar>;
  using row_gradient = RowSparse<Scalar>;
  using vector_gradient = Vector<Scalar>;
  using codes = SparseCodes<Scalar>;
  using latent_groups = ops::LatentMajor;
  using code_gradients = std::vector<Scalar>;
  using encoder_scratch = ops::EncoderGemmScratch;
  using packed_encoder = ops::PackedEncoder;
  static constexpr bool host_memory = true;
  static constexpr bool decoder_bias = true;
  static constexpr bool packs_encoder = ops::packs_encoder<Scalar>;
};

namespace ops {

// Host data where the backend computes: the CPU reads the caller's matrix or codes in place.
template <class Scalar>
const Matrix<Scalar>& stage(cpu, const Matrix<Scalar>& host, Matrix<Scalar>& /*unused*/) {
  return host;
}
template <class Scalar>
const SparseCodes<Scalar>& stage(cpu, const SparseCodes<Scalar>& host, SparseCodes<Scalar>& /*unused*/) {
  return host;
}

// Copies between host data and the backend's storage: on the CPU, plain copies.
template <class Host, class Stored>
void upload(cpu, const Host& host, Stored& stored) {
  stored = host;
}
template <class Stored, class Host>
void download(cpu, const Stored& stored, Host& host) {
  host = stored;
}

// The backend's result as host data: on the CPU, the result itself.
template <class Scalar>
Matrix<Scalar> to_host(cpu, Matrix<Scalar>&& m) {
  return std::move(m);
}
template <class Scalar>
SparseCodes<Scalar> to_host(cpu, SparseCodes<Scalar>&& codes) {
  return std::move(codes);
}

// Refuses, naming `caller`, a model these kernels cannot compute (every k and the decoder bias are
// fine; the encoder arithmetic depends on the scalar type and the build).
template <class Scalar>
void require_supported(cpu, Scalar, index_t /*k*/, bool /*decoder_bias*/, EncoderPrecision precision, const char* caller) {
  sae::detail::require(precision != EncoderPrecision::tf32, caller,
                       "encoder_precision tf32 is a CUDA tensor-core mode; the CPU encoder computes fp32 or bf16");
  sae::detail::require(precision == EncoderPrecision::fp32 || std::is_same_v<Scalar, float>, caller,
                       "encoder_precision bf16 needs Scalar = float");
  sae::detail::require(precision == EncoderPrecision::fp32 || bf16_encoder_available, caller,
                       "encoder_precision bf16 needs a build with AVX512-BF16 (-march=native on a CPU that has it)");
}

// A sum a kernel returned, as a number (a device backend waits for it here); the CPU's is one.
inline double resolve(cpu, double sum) { return sum; }

}  // namespace ops
}  // namespace sae
