// MPI for sae's distributed runs (link sae::mpi; the core never includes this): the process's MPI
// session and a communicator with the few collectives the sweep and data-parallel training use.
#pragma once

#include <sae/core/error.hpp>

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace sae::mpi {

template <class T>
MPI_Datatype datatype();
template <>
inline MPI_Datatype datatype<float>() { return MPI_FLOAT; }
template <>
inline MPI_Datatype datatype<double>() { return MPI_DOUBLE; }
template <>
inline MPI_Datatype datatype<int>() { return MPI_INT; }
template <>
inline MPI_Datatype datatype<std::uint8_t>() { return MPI_UINT8_T; }
template <>
inline MPI_Datatype datatype<unsigned long long>() { return MPI_UNSIGNED_LONG_LONG; }

// MPI's lifetime in one program: initialised on construction (unless already), finalised on
// destruction. Threads: the distributed sweep's rank 0 hands out work from a second thread while
// its main thread trains, so at least MPI_THREAD_SERIALIZED is required.
class Session {
 public:
  Session(int& argc, char**& argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
      owner_ = true;
      if (provided < MPI_THREAD_SERIALIZED) {
        MPI_Finalize();
        owner_ = false;
        throw error("this MPI library offers no MPI_THREAD_SERIALIZED support, which the distributed sweep needs");
      }
    }
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owner_ && !finalized) MPI_Finalize();
  }

  // A program's exit status, for returning from main: a failure on one rank of several aborts the
  // job (the other ranks may be waiting for it in a collective and would otherwise hang).
  int finish(int status) const {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (status != 0 && size > 1) MPI_Abort(MPI_COMM_WORLD, status);
    return status;
  }

 private:
  bool owner_ = false;
};

class Communicator {
 public:
  explicit Communicator(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }

  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }

  double sum(double x) const {
    MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, comm_);
    return x;
  }
  // In chunks, since MPI counts are ints.
  template <class T, class Op = decltype(MPI_SUM)>
  void reduce_in_place(T* values, std::size_t count, Op op = MPI_SUM) const {
    constexpr std::size_t chunk = std::size_t{1} << 30;
    for (std::size_t at = 0; at < count; at += chunk)
      MPI_Allreduce(MPI_IN_PLACE, values + at, static_cast<int>(std::min(chunk, count - at)), datatype<T>(), op, comm_);
  }
  // Every rank's `n` values, in rank order (rank r's at [r * n, (r + 1) * n)).
  template <class T>
  std::vector<T> gather_all(const T* values, int n) const {
    std::vector<T> all(static_cast<std::size_t>(size_) * static_cast<std::size_t>(n));
    MPI_Allgather(values, n, datatype<T>(), all.data(), n, datatype<T>(), comm_);
    return all;
  }
  template <class T>
  std::vector<T> gather_all(T value) const {
    return gather_all(&value, 1);
  }
  // `text` from `root` on every rank.
  std::string broadcast(std::string text, int root = 0) const {
    int n = static_cast<int>(text.size());
    MPI_Bcast(&n, 1, MPI_INT, root, comm_);
    text.resize(static_cast<std::size_t>(n));
    MPI_Bcast(text.data(), n, MPI_CHAR, root, comm_);
    return text;
  }
  void barrier() const { MPI_Barrier(comm_); }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace sae::mpi
