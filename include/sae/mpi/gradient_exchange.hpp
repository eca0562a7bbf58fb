// Data-parallel training over MPI: the trainer's Exchange (train/exchange.hpp) for CPU models, any
// whose gradients list their slots (for_each_gradient: every registered architecture). Each rank's
// gradient, scaled by its share of the batch's rows, is summed over the ranks:
//
// - the dense biases (and JumpReLU's log thresholds) with MPI_Allreduce;
// - a row-sparse weight gradient sparsely when that moves fewer bytes: every rank's touched rows
//   and their values are all-gathered and merged in rank order; otherwise densely, as an
//   allreduce of the [F, D] matrix plus a mask of the touched rows, so the result lists the union
//   of the ranks' rows either way (what one process with the whole batch would touch).
//
// Every rank ends with the same sum, so the replicas stay identical (tests/mpi_test.cpp checks it
// bitwise). The sum equals one process's gradient over the whole batch up to the order of the
// floating-point additions (and one rounding of the scale): a relative difference of order 1e-6
// per step in float, which training then carries forward.
#pragma once

#include <sae/core/row_sparse.hpp>
#include <sae/io/json.hpp>
#include <sae/mpi/communicator.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace sae::mpi {

class GradientExchange {
 public:
  explicit GradientExchange(Communicator comm = Communicator()) : comm_(comm) {}

  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }
  double sum(double x) const { return comm_.sum(x); }
  void sum(std::vector<double>& v) const { comm_.reduce_in_place(v.data(), v.size()); }

  // Sums every slot the gradients list (for_each_gradient): row-sparse weights and dense vectors
  // alike, so a new architecture's slots are exchanged without an overload of their own.
  template <class Gradients>
  void sum_gradients(Gradients& g, double weight) {
    static_assert(has_gradient_slots<Gradients>::value,
                  "mpi::GradientExchange: the model's Gradients must list their slots with for_each_gradient(f)");
    const auto start = std::chrono::steady_clock::now();
    g.for_each_gradient([&](auto& slot) {
      using Slot = std::decay_t<decltype(slot)>;
      if constexpr (is_row_sparse<Slot>::value) {
        sum_rows(slot, static_cast<typename decltype(slot.values)::Scalar>(weight));
      } else {
        // An empty slot (b_dec without a decoder bias) is empty on every rank: they train one model.
        if (slot.size() > 0) sum_dense(slot, static_cast<typename Slot::Scalar>(weight));
      }
    });
    ++steps_;
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  // What this rank has received so far, counting an allreduce of n bytes as 2 (P-1)/P n (the ring
  // algorithm's traffic per rank) and an all-gather as everything the other ranks contributed.
  double bytes_received() const { return bytes_; }
  std::uint64_t exchanges() const { return steps_; }
  double seconds() const { return seconds_; }  // spent in sum_gradients (waiting for slower ranks included)
  std::uint64_t sparse_exchanges() const { return sparse_; }
  std::uint64_t dense_exchanges() const { return dense_; }

 private:
  struct slot_probe {
    template <class T>
    void operator()(T&) const {}
  };
  template <class, class = void>
  struct has_gradient_slots : std::false_type {};
  template <class G>
  struct has_gradient_slots<G, std::void_t<decltype(std::declval<G&>().for_each_gradient(slot_probe{}))>> : std::true_type {};
  template <class>
  struct is_row_sparse : std::false_type {};
  template <class S>
  struct is_row_sparse<RowSparse<S>> : std::true_type {};

  double ring(double bytes) const { return 2.0 * (size() - 1) / size() * bytes; }

  template <class Scalar>
  void sum_dense(Vector<Scalar>& v, Scalar w) {
    v *= w;
    comm_.reduce_in_place(v.data(), static_cast<std::size_t>(v.size()));
    bytes_ += ring(static_cast<double>(v.size()) * sizeof(Scalar));
  }

  template <class Scalar>
  void sum_rows(RowSparse<Scalar>& g, Scalar w) {
    const index_t cols = g.cols(), total = g.total_rows;
    const int mine = static_cast<int>(g.rows.size());
    g.values.topRows(mine) *= w;
    // Every rank's row count and width in one call (a rank without rows may have no width yet).
    const int mine_and_width[2] = {mine, static_cast<int>(cols)};
    const auto gathered = comm_.gather_all(mine_and_width, 2);
    std::vector<int> counts(static_cast<std::size_t>(size()));
    int width = 0;
    std::int64_t all_rows = 0;
    for (std::size_t r = 0; r < counts.size(); ++r) {
      counts[r] = gathered[2 * r], width = std::max(width, gathered[2 * r + 1]);
      all_rows += counts[r];
    }
    const double row_bytes = static_cast<double>(width) * sizeof(Scalar);
    const double sparse_bytes = static_cast<double>(all_rows - mine) * (row_bytes + 4.0);
    const double dense_bytes = ring(static_cast<double>(total) * (row_bytes + 1.0));
    // The same choice on every rank: it depends on the row counts only.
    if (static_cast<double>(all_rows) * (row_bytes + 4.0) <= 2.0 * static_cast<double>(total) * (row_bytes + 1.0)) {
      gather_rows(g, counts, width);
      bytes_ += sparse_bytes, ++sparse_;
    } else {
      reduce_dense(g, width);
      bytes_ += dense_bytes, ++dense_;
    }
  }

  // Every rank's rows and values, merged in rank order.
  template <class Scalar>
  void gather_rows(RowSparse<Scalar>& g, const std::vector<int>& counts, int width) {
    std::vector<int> row_offsets(counts.size()), value_counts(counts.size()), value_offsets(counts.size());
    int at = 0;
    for (std::size_t r = 0; r < counts.size(); ++r) {
      row_offsets[r] = at, value_counts[r] = counts[r] * width, value_offsets[r] = at * width;
      at += counts[r];
    }
    std::vector<std::int32_t> rows(static_cast<std::size_t>(at));
    Matrix<Scalar> values(at, width);  // row-major: each rank's rows are one contiguous block
    MPI_Allgatherv(g.rows.data(), static_cast<int>(g.rows.size()), MPI_INT32_T, rows.data(), counts.data(),
                   row_offsets.data(), MPI_INT32_T, comm_.get());
    MPI_Allgatherv(g.values.data(), static_cast<int>(g.rows.size()) * width, datatype<Scalar>(), values.data(),
                   value_counts.data(), value_offsets.data(), datatype<Scalar>(), comm_.get());
    auto& [part, scratch] = std::get<Buffers<Scalar>>(buffers_);
    g.rows.clear();
    for (std::size_t r = 0; r < counts.size(); ++r) {
      part.total_rows = g.total_rows;
      part.rows.assign(rows.begin() + row_offsets[r], rows.begin() + row_offsets[r] + counts[r]);
      part.reserve_rows(counts[r], width);
      part.values.topRows(counts[r]) = values.middleRows(row_offsets[r], counts[r]);
      if (r == 0) std::swap(g, part);
      else g.add(part, scratch);
    }
  }

  // The dense sum, then the union of the touched rows.
  template <class Scalar>
  void reduce_dense(RowSparse<Scalar>& g, int width) {
    Matrix<Scalar> dense = Matrix<Scalar>::Zero(g.total_rows, width);
    std::vector<std::uint8_t> touched(static_cast<std::size_t>(g.total_rows), 0);
    for (std::size_t s = 0; s < g.rows.size(); ++s) {
      dense.row(g.rows[s]) = g.values.row(static_cast<index_t>(s));
      touched[static_cast<std::size_t>(g.rows[s])] = 1;
    }
    comm_.reduce_in_place(dense.data(), static_cast<std::size_t>(dense.size()));
    comm_.reduce_in_place(touched.data(), touched.size(), MPI_MAX);
    g.rows.clear();
    g.reserve_rows(g.total_rows, width);
    for (index_t r = 0; r < g.total_rows; ++r)
      if (touched[static_cast<std::size_t>(r)]) {
        g.values.row(static_cast<index_t>(g.rows.size())) = dense.row(r);
        g.rows.push_back(static_cast<std::int32_t>(r));
      }
  }

  template <class Scalar>
  struct Buffers {
    RowSparse<Scalar> part, scratch;
  };

  Communicator comm_;
  std::tuple<Buffers<float>, Buffers<double>> buffers_;  // reused across steps
  double bytes_ = 0, seconds_ = 0;
  std::uint64_t steps_ = 0, sparse_ = 0, dense_ = 0;
};

// A run record's account of the exchange: ranks, bytes rank 0 received per step, and how many
// exchanges sent the weight gradients sparsely (sae-train's metrics.json "data_parallel").
inline io::Json exchange_statistics(const GradientExchange& x, int ranks) {
  io::Json j = io::Json::object();
  j["ranks"] = ranks;
  j["bytes_received_per_step"] = x.bytes_received() / static_cast<double>(std::max<std::uint64_t>(x.exchanges(), 1));
  j["sparse_exchanges"] = static_cast<double>(x.sparse_exchanges());
  j["dense_exchanges"] = static_cast<double>(x.dense_exchanges());
  return j;
}

// exchange_statistics as one line.
inline std::string describe_exchange(const io::Json& stats) {
  char buf[200];
  const double sparse = stats.at("sparse_exchanges").as_number(), dense = stats.at("dense_exchanges").as_number();
  std::snprintf(buf, sizeof buf,
                "data parallel: %d ranks, %.3g MB received per step by rank 0 (weight gradients sent sparsely in %.0f of %.0f exchanges)",
                static_cast<int>(stats.at("ranks").as_int()), stats.at("bytes_received_per_step").as_number() / 1e6, sparse,
                sparse + dense);
  return buf;
}

}  // namespace sae::mpi
