// The programs' --mpi flag: MPI is started only when asked for, and a program built without MPI
// says how to get it instead of failing obscurely. Rank 0 prints and writes; the others train.
#pragma once

#include "common.hpp"

#if SAE_HAVE_MPI
#include <sae/mpi/communicator.hpp>
#include <sae/mpi/gradient_exchange.hpp>
#include <sae/mpi/sweep.hpp>
#endif

#include <optional>

namespace sae::examples {

class MpiMode {
 public:
  MpiMode(int& argc, char**& argv) : argc_(argc), argv_(argv) {}

  // Starts MPI when `wanted` (the program's --mpi).
  void start(bool wanted, const std::string& program) {
    if (!wanted) return;
#if SAE_HAVE_MPI
    (void)program;
    session_.emplace(argc_, argv_);
    comm_.emplace();
#else
    check_flag(false, "--mpi: this " + program +
                          " was built without MPI; install it (apt-get install libopenmpi-dev openmpi-bin, or "
                          "bash cmake/install-deps.sh) and rebuild");
#endif
  }
  bool on() const { return rank_count() > 0; }
  int rank() const {
#if SAE_HAVE_MPI
    if (comm_) return comm_->rank();
#endif
    return 0;
  }
  bool root() const { return rank() == 0; }
  int size() const { return on() ? rank_count() : 1; }
  // The exit status to return from main (a failing rank ends the whole job).
  int finish(int status) const {
#if SAE_HAVE_MPI
    if (session_) return session_->finish(status);
#endif
    return status;
  }
#if SAE_HAVE_MPI
  const sae::mpi::Communicator& comm() const { return *comm_; }
#endif

 private:
  int rank_count() const {
#if SAE_HAVE_MPI
    if (comm_) return comm_->size();
#endif
    return 0;
  }

  int& argc_;
  char**& argv_;
#if SAE_HAVE_MPI
  std::optional<sae::mpi::Session> session_;
  std::optional<sae::mpi::Communicator> comm_;
#endif
};

}  // namespace sae::examples
