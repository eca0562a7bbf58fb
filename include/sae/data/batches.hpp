// Mini-batch order: a seeded shuffle per epoch, reproducible from (seed, epoch) alone so a
// resumed run sees the same batches. Two shuffles: every row permuted (the reports'; right for
// rows in memory), or blocks of consecutive rows permuted and then the rows of each window of
// blocks mixed (for memory-mapped sets larger than the page cache: reads come in runs).
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/rng.hpp>
#include <sae/core/types.hpp>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace sae::data {

// The block shuffle: 0 rows per block is the per-row permutation.
struct BlockShuffle {
  index_t block_rows = 0;  // consecutive rows read together
  index_t window = 64;     // blocks whose rows are mixed together (the shuffle buffer)
};

class BatchSchedule {
 public:
  BatchSchedule(index_t num_rows, index_t batch_size, std::uint64_t seed, bool shuffle = true, BlockShuffle blocks = {})
      : num_rows_(num_rows), batch_size_(batch_size), seed_(seed), shuffle_(shuffle), blocks_(blocks) {
    if (num_rows <= 0) throw invalid_argument("BatchSchedule: no rows to train on");
    if (batch_size <= 0) throw invalid_argument("BatchSchedule: batch_size must be positive, got " + std::to_string(batch_size));
    if (blocks.block_rows < 0 || (blocks.block_rows > 0 && blocks.window < 1))
      throw invalid_argument("BatchSchedule: block_rows must be >= 0 and window >= 1");
  }

  index_t num_batches() const { return (num_rows_ + batch_size_ - 1) / batch_size_; }
  index_t batch_size() const { return batch_size_; }
  index_t num_rows() const { return num_rows_; }

  // Row order for one epoch; batch b is rows [b * batch_size, min(N, (b + 1) * batch_size)). Every
  // row appears once. With blocks: the blocks in a seeded random order, taken `window` at a time,
  // the rows of those blocks shuffled together; so a batch holds rows from up to `window` blocks
  // anywhere in the set, and an epoch reads each block within one window's span of batches.
  std::vector<index_t> epoch_order(index_t epoch) const {
    if (!shuffle_) {
      std::vector<index_t> order(static_cast<std::size_t>(num_rows_));
      std::iota(order.begin(), order.end(), index_t{0});
      return order;
    }
    Rng rng(seed_ * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(epoch) + 1);
    if (blocks_.block_rows == 0) return rng.permutation<index_t>(static_cast<std::size_t>(num_rows_));
    const index_t size = blocks_.block_rows, count = (num_rows_ + size - 1) / size;
    const auto block_order = rng.permutation<index_t>(static_cast<std::size_t>(count));
    std::vector<index_t> order, window;
    order.reserve(static_cast<std::size_t>(num_rows_));
    for (index_t w = 0; w < count; w += blocks_.window) {
      window.clear();
      for (index_t i = w; i < std::min(count, w + blocks_.window); ++i) {
        const index_t first = block_order[static_cast<std::size_t>(i)] * size;
        for (index_t r = first; r < std::min(num_rows_, first + size); ++r) window.push_back(r);
      }
      rng.shuffle(window);
      order.insert(order.end(), window.begin(), window.end());
    }
    return order;
  }

  index_t batch_begin(index_t b) const { return b * batch_size_; }
  index_t batch_end(index_t b) const { return std::min(num_rows_, (b + 1) * batch_size_); }

 private:
  index_t num_rows_;
  index_t batch_size_;
  std::uint64_t seed_;
  bool shuffle_;
  BlockShuffle blocks_;
};

}  // namespace sae::data
