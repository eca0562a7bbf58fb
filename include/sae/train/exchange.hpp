// How the trainer shares a step between processes. A data-parallel run splits each global batch
// over `size()` ranks: rank r trains on its contiguous share, scales its gradient by its share of
// the rows and the exchange sums the scaled gradients, so every rank applies the global batch's
// gradient (sae/mpi/gradient_exchange.hpp does this over MPI). LocalExchange is the single
// process: one rank, nothing to exchange, and the trainer's arithmetic is exactly what it was.
//
//   int rank() const, int size() const
//   void sum_gradients(Gradients&, double weight)  // weight = this rank's rows / the batch's rows
//   double sum(double) const                       // a statistic summed over ranks
//   void sum(std::vector<double>&) const           // statistics summed over ranks, in place
#pragma once

#include <sae/core/types.hpp>

#include <utility>
#include <vector>

namespace sae {

struct LocalExchange {
  int rank() const { return 0; }
  int size() const { return 1; }
  template <class Gradients>
  void sum_gradients(Gradients&, double) {}
  double sum(double x) const { return x; }
  void sum(std::vector<double>&) const {}
};

// Rows [begin, end) of a batch split over `size` ranks: rank r takes the r-th contiguous share.
inline std::pair<index_t, index_t> rank_share(index_t begin, index_t end, int rank, int size) {
  const index_t n = end - begin;
  return {begin + n * rank / size, begin + n * (rank + 1) / size};
}

}  // namespace sae
