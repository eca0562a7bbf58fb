// Mini-batch order: a seeded shuffle per epoch, reproducible from (seed, epoch) alone so a
// resumed run sees the same batches.
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/rng.hpp>
#include <sae/core/types.hpp>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace sae::data {

class BatchSchedule {
 public:
  BatchSchedule(index_t num_rows, index_t batch_size, std::uint64_t seed, bool shuffle = true)
      : num_rows_(num_rows), batch_size_(batch_size), seed_(seed), shuffle_(shuffle) {
    if (num_rows <= 0) throw invalid_argument("BatchSchedule: no rows to train on");
    if (batch_size <= 0) throw invalid_argument("BatchSchedule: batch_size must be positive, got " + std::to_string(batch_size));
  }

  index_t num_batches() const { return (num_rows_ + batch_size_ - 1) / batch_size_; }
  index_t batch_size() const { return batch_size_; }
  index_t num_rows() const { return num_rows_; }

  // Row order for one epoch; batch b is rows [b * batch_size, min(N, (b + 1) * batch_size)).
  std::vector<index_t> epoch_order(index_t epoch) const {
    if (!shuffle_) {
      std::vector<index_t> order(static_cast<std::size_t>(num_rows_));
      std::iota(order.begin(), order.end(), index_t{0});
      return order;
    }
    Rng rng(seed_ * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(epoch) + 1);
    return rng.permutation<index_t>(static_cast<std::size_t>(num_rows_));
  }

  index_t batch_begin(index_t b) const { return b * batch_size_; }
  index_t batch_end(index_t b) const { return std::min(num_rows_, (b + 1) * batch_size_); }

 private:
  index_t num_rows_;
  index_t batch_size_;
  std::uint64_t seed_;
  bool shuffle_;
};

}  // namespace sae::data
