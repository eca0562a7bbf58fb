// Ready-made training callbacks. Each implements some of the optional hooks
//   on_train_begin(const TrainInfo&), on_epoch_end(const EpochStats&, const Model&) -> bool,
//   on_train_end(const TrainSummary&, const Model&).
// Loggers take a std::ostream& (so tests can capture them) or a path (rewritten atomically).
#pragma once

#include <sae/io/atomic_file.hpp>
#include <sae/io/json.hpp>
#include <sae/model/checkpoint.hpp>
#include <sae/train/trainer.hpp>

#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>

namespace sae {

inline io::Json to_json(const EpochStats& s) {
  io::Json j = io::Json::object();
  j["epoch"] = s.epoch;
  j["steps"] = s.steps;
  j["train_loss"] = s.train_loss;
  j["train_ev"] = s.train_ev;
  j["validation_loss"] = s.validation_loss ? io::Json(*s.validation_loss) : io::Json();
  j["validation_ev"] = s.validation_ev ? io::Json(*s.validation_ev) : io::Json();
  j["seconds"] = s.seconds;
  return j;
}

// Where a run prints its progress: `redraw` (a terminal) rewrites one line in place; otherwise
// only finished units are printed, one line each.
struct SweepOutput {
  std::ostream& log;
  bool redraw = false;
};

// One progress line to `out`: rewritten in place (padded to 110 columns) when redrawing, else
// printed only when `final`, so logs keep one line per finished unit.
inline void progress_line(SweepOutput out, const std::string& text, bool final) {
  if (out.redraw) {
    out.log << '\r' << text << std::string(text.size() < 110 ? 110 - text.size() : 0, ' ') << (final ? "\n" : "");
  } else if (final) {
    out.log << text << '\n';
  }
  out.log.flush();
}

// The one per-model progress printer, a line per epoch: "<label> epoch 3/25  loss 0.0123  EV 0.871
// val EV 0.866  4.2s  ETA 30s" (a run of many models adds its own ETA with SweepProgress).
class ProgressPrinter {
 public:
  // Every epoch on its own line of `out`.
  explicit ProgressPrinter(std::ostream& out, std::string label = {}) : out_{out, false}, every_line_(true), label_(std::move(label)) {}
  // Through progress_line: one line redrawn in place on a terminal, kept at the last epoch.
  explicit ProgressPrinter(SweepOutput out, std::string label = {}) : out_(out), every_line_(false), label_(std::move(label)) {}

  template <class Model>
  void on_epoch_end(const EpochStats& s, const Model&) {
    char buf[256];
    const double eta = s.seconds / static_cast<double>(s.epoch) * static_cast<double>(s.epochs - s.epoch);
    std::string line = label_.empty() ? "" : label_ + " ";
    std::snprintf(buf, sizeof buf, "epoch %lld/%lld  loss %.6g  EV %.4f", static_cast<long long>(s.epoch),
                  static_cast<long long>(s.epochs), s.train_loss, s.train_ev);
    line += buf;
    if (s.validation_ev) {
      std::snprintf(buf, sizeof buf, "  val EV %.4f", *s.validation_ev);
      line += buf;
    }
    std::snprintf(buf, sizeof buf, "  %.1fs  ETA %.0fs", s.seconds, eta);
    line += buf;
    if (every_line_) out_.log << line << std::endl;
    else progress_line(out_, line, s.epoch == s.epochs);
  }

 private:
  SweepOutput out_;
  bool every_line_;
  std::string label_;
};

// CSV with a header row: epoch,steps,train_loss,train_ev,validation_loss,validation_ev,seconds.
class CsvLogger {
 public:
  explicit CsvLogger(std::ostream& out) : stream_(&out) {}
  explicit CsvLogger(std::filesystem::path path) : path_(std::move(path)) {}

  void on_train_begin(const TrainInfo&) {
    buffer_.str({});
    emit("epoch,steps,train_loss,train_ev,validation_loss,validation_ev,seconds\n");
  }

  template <class Model>
  void on_epoch_end(const EpochStats& s, const Model&) {
    std::ostringstream line;
    line << std::setprecision(9) << s.epoch << ',' << s.steps << ',' << s.train_loss << ',' << s.train_ev << ',';
    if (s.validation_loss) line << *s.validation_loss;
    line << ',';
    if (s.validation_ev) line << *s.validation_ev;
    line << ',' << s.seconds << '\n';
    emit(line.str());
  }

 private:
  void emit(const std::string& text) {
    if (stream_) {
      *stream_ << text << std::flush;
    } else {
      buffer_ << text;
      io::write_text_atomically(path_, buffer_.str());
    }
  }
  std::ostream* stream_ = nullptr;
  std::filesystem::path path_;
  std::ostringstream buffer_;
};

// {"epochs": [ {epoch, steps, train_loss, ...}, ... ], "stopped_early": bool, "seconds": s}
class JsonLogger {
 public:
  explicit JsonLogger(std::filesystem::path path) : path_(std::move(path)) {}

  void on_train_begin(const TrainInfo&) { doc_ = io::Json::object(); doc_["epochs"] = io::Json::array(); }

  template <class Model>
  void on_epoch_end(const EpochStats& s, const Model&) {
    doc_["epochs"].push_back(to_json(s));
    io::write_text_atomically(path_, doc_.dump() + "\n");
  }

  template <class Model>
  void on_train_end(const TrainSummary& summary, const Model&) {
    doc_["stopped_early"] = summary.stopped_early;
    doc_["seconds"] = summary.seconds;
    io::write_text_atomically(path_, doc_.dump() + "\n");
  }

 private:
  std::filesystem::path path_;
  io::Json doc_;
};

// Saves the model every `every_epochs` epochs and after the last one.
class Checkpointer {
 public:
  explicit Checkpointer(std::filesystem::path dir, index_t every_epochs = 1)
      : dir_(std::move(dir)), every_(every_epochs) {
    detail::require(every_epochs > 0, "Checkpointer", "every_epochs must be positive");
  }

  template <class Model>
  void on_epoch_end(const EpochStats& s, const Model& model) {
    if (s.epoch % every_ == 0 || s.epoch == s.epochs) save_checkpoint(dir_, model);
  }
  template <class Model>
  void on_train_end(const TrainSummary& summary, const Model& model) {
    if (summary.stopped_early) save_checkpoint(dir_, model);
  }

 private:
  std::filesystem::path dir_;
  index_t every_;
};

// Stops when the monitored loss (validation if scored, else training) has not improved by more
// than min_delta for `patience` epochs. patience = 0 disables it (handy for CLI flags).
class EarlyStop {
 public:
  explicit EarlyStop(index_t patience = 5, double min_delta = 0.0) : patience_(patience), min_delta_(min_delta) {
    detail::require(patience >= 0, "EarlyStop", "patience must be >= 0");
  }

  template <class Model>
  bool on_epoch_end(const EpochStats& s, const Model&) {
    const double loss = s.validation_loss.value_or(s.train_loss);
    if (loss < best_ - min_delta_) {
      best_ = loss;
      stale_ = 0;
      return false;
    }
    return ++stale_ >= patience_ && patience_ > 0;
  }

  double best() const { return best_; }

 private:
  index_t patience_;
  double min_delta_;
  double best_ = std::numeric_limits<double>::infinity();
  index_t stale_ = 0;
};

}  // namespace sae
