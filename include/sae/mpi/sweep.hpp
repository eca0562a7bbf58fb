// A sweep across the ranks of an MPI job (mpirun ... sae-sweep --mpi). Rank 0 owns the run folder
// (lock, staging, commit) and hands out the plan's SAEs one at a time, largest first, to whichever
// rank asks next; every rank, rank 0 included, trains what it is handed and writes the result file
// itself into rank 0's staging folder (so the ranks need a shared filesystem), exactly as a
// single-process run writes it. A killed job's finished SAEs are therefore reused by the next run
// whatever its number of ranks, and a single-process run can finish what an MPI job started.
#pragma once

#include <sae/mpi/communicator.hpp>
#include <sae/train/sweep.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

namespace sae::mpi {

namespace detail {
constexpr int kRequestTag = 7301;  // rank -> 0: the finished result's JSON ("" for none), and "next?"
constexpr int kTaskTag = 7302;     // 0 -> rank: the next task's index, or -1 when none is left
}  // namespace detail

// Runs (or resumes) `plan` on `data` across `comm`. `run` is rank 0's run folder (null on the other
// ranks); the caller commits it. Returns, on rank 0, every result of the plan in plan order (as
// sae::run_sweep does); on the other ranks, nothing. Each rank trains one SAE at a time with its
// own threads (OMP_NUM_THREADS). plan.shared_pass and plan.max_slices do not apply here.
inline std::vector<SweepResult> run_sweep(const data::ArraySet& data, const SweepPlan& plan, io::RunDirectory* run,
                                          SweepOutput out, const Communicator& comm = Communicator()) {
  const SweepJob job(data, plan);
  const bool root = comm.rank() == 0;
  sae::detail::require(!root || run, "mpi::run_sweep()", "rank 0 needs the run folder");
  const auto tasks = sweep_tasks_largest_first(plan);
  const auto key = [](const SweepTask& t) { return std::make_tuple(t.slice, t.variant, t.k, t.latents); };

  std::map<std::tuple<std::size_t, std::size_t, index_t, index_t>, SweepResult> results;  // rank 0
  std::vector<std::size_t> pending;                                           // rank 0: indices into tasks
  if (root) {
    auto found = job.reusable_all(*run, tasks, out);
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      if (found[i]) results[key(tasks[i])] = std::move(*found[i]);
      else pending.push_back(i);
    }
  }
  const std::filesystem::path staging = comm.broadcast(root ? run->staging().string() : std::string());

  // The slice a rank trained last stays loaded (consecutive tasks often share it).
  std::size_t loaded = plan.slices.size();
  Matrix<float> train, validation;
  const auto train_task = [&](const SweepTask& t) {
    if (t.slice != loaded) std::tie(train, validation) = job.slice_data(t.slice), loaded = t.slice;
    return job.train(t, train, validation, staging);
  };

  if (!root) {
    std::string finished;
    for (;;) {
      MPI_Send(finished.data(), static_cast<int>(finished.size()), MPI_CHAR, 0, detail::kRequestTag, comm.get());
      int next = -1;
      MPI_Recv(&next, 1, MPI_INT, 0, detail::kTaskTag, comm.get(), MPI_STATUS_IGNORE);
      if (next < 0) return {};
      finished = to_json(train_task(tasks[static_cast<std::size_t>(next)])).dump(-1);
    }
  }

  // Rank 0: a dispatcher thread answers the other ranks while this thread trains too.
  std::mutex mutex;  // guards next, results, the progress counts and `out`
  std::size_t next = 0, done = 0;
  double units_left = 0, units_done = 0;
  for (std::size_t i : pending) units_left += sweep_task_units(plan, tasks[i]);
  const auto start = std::chrono::steady_clock::now();
  const auto take = [&]() -> int {
    std::lock_guard<std::mutex> lock(mutex);
    return next < pending.size() ? static_cast<int>(pending[next++]) : -1;
  };
  const auto record = [&](SweepResult r, const SweepTask& t, int rank) {
    std::lock_guard<std::mutex> lock(mutex);
    units_left -= sweep_task_units(plan, t), units_done += sweep_task_units(plan, t);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char buf[200];
    std::snprintf(buf, sizeof buf, "[%zu/%zu] %s on rank %d: EV %.4f, %.1f%% dead, %.1f s | ETA %s", ++done,
                  pending.size(), job.name(t).c_str(), rank, r.val.explained_variance, 100 * r.val.dead_fraction,
                  r.seconds, sae::detail::eta_text(elapsed / units_done * units_left).c_str());
    progress_line(out, buf, true);
    results[key(t)] = std::move(r);
  };
  if (pending.empty()) progress_line(out, "every SAE of the plan is already finished", true);
  else
    progress_line(out, std::to_string(pending.size()) + " SAEs to train on " + std::to_string(comm.size()) + " ranks (" +
                           std::to_string(tasks.size() - pending.size()) + " reused)", true);

  std::thread dispatcher([&] {
    int serving = comm.size() - 1;
    std::vector<int> given(static_cast<std::size_t>(comm.size()), -1);  // the task each rank is training
    std::string payload;
    while (serving > 0) {
      int ready = 0;
      MPI_Status status;
      MPI_Iprobe(MPI_ANY_SOURCE, detail::kRequestTag, comm.get(), &ready, &status);
      if (!ready) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a blocking receive would spin a core
        continue;
      }
      int length = 0;
      MPI_Get_count(&status, MPI_CHAR, &length);
      payload.resize(static_cast<std::size_t>(length));
      MPI_Recv(payload.data(), length, MPI_CHAR, status.MPI_SOURCE, detail::kRequestTag, comm.get(), MPI_STATUS_IGNORE);
      const auto source = static_cast<std::size_t>(status.MPI_SOURCE);
      if (!payload.empty())
        record(sweep_result_from_json(io::Json::parse(payload), "rank " + std::to_string(source) + "'s result"),
               tasks[static_cast<std::size_t>(given[source])], status.MPI_SOURCE);
      const int task = given[source] = take();
      MPI_Send(&task, 1, MPI_INT, status.MPI_SOURCE, detail::kTaskTag, comm.get());
      serving -= task < 0;
    }
  });
  try {
    for (int i = take(); i >= 0; i = take()) {
      const SweepTask& t = tasks[static_cast<std::size_t>(i)];
      record(train_task(t), t, 0);
    }
  } catch (const std::exception& e) {
    // The dispatcher cannot be stopped cleanly while other ranks wait on it: end the job here
    // (what is finished stays in the staging folder for the next run).
    std::cerr << "rank 0: error: " << e.what() << "\n";
    MPI_Abort(comm.get(), 1);
  }
  dispatcher.join();

  std::vector<SweepResult> ordered;
  for (const SweepTask& t : sweep_tasks(plan)) ordered.push_back(results.at(key(t)));
  return ordered;
}

}  // namespace sae::mpi
