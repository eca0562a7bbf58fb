// Compiled by missing_op_test, which expects it to fail: a backend ("bare") that has every op TopK
// needs (forwarded to the CPU's) but not BatchTopK's. TopK on it must compile; BatchTopK must fail
// with the static_assert naming the op it lacks, not with a page of overload candidates.
#include <sae/sae.hpp>

#include <utility>

struct bare : sae::ops::backend_tag {};
namespace sae {
template <class Scalar>
struct storage<bare, Scalar> : storage<cpu, Scalar> {};
template <>
struct backend_available<bare> : std::true_type {};
}  // namespace sae

#define SAE_FORWARD_TO_CPU(op)                                                         \
  template <class... A>                                                                \
  auto op(bare, A&&... a)->decltype(sae::ops::op(sae::cpu{}, std::forward<A>(a)...)) { \
    return sae::ops::op(sae::cpu{}, std::forward<A>(a)...);                            \
  }
SAE_FORWARD_TO_CPU(encoder_preactivations)
SAE_FORWARD_TO_CPU(sparse_decode)
SAE_FORWARD_TO_CPU(decode_with_code_gradients)
SAE_FORWARD_TO_CPU(sparse_weight_gradients)
SAE_FORWARD_TO_CPU(normalize_rows)
SAE_FORWARD_TO_CPU(topk_rows)
SAE_FORWARD_TO_CPU(require_supported)

sae::index_t topk_latents(const sae::TopKConfig& c) { return sae::TopKAutoencoder<float, bare>(c).num_latents(); }
sae::index_t batch_topk_latents(const sae::BatchTopKConfig& c) { return sae::BatchTopKAutoencoder<float, bare>(c).num_latents(); }
