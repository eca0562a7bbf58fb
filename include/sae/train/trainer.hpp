// The training loop: seeded mini-batches, forward + hand-written backward, an optimizer step,
// decoder renormalisation, and optional callbacks (ensmallen style: every hook is optional and a
// hook returning true stops training).
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/data/batches.hpp>
#include <sae/data/row_source.hpp>
#include <sae/data/row_statistics.hpp>
#include <sae/data/split.hpp>
#include <sae/model/model_concept.hpp>
#include <sae/optim/schedule.hpp>
#include <sae/train/exchange.hpp>

#include <algorithm>
#include <chrono>
#include <limits>
#include <future>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace sae {

struct TrainConfig {
  index_t epochs = 25;
  index_t batch_size = 256;
  std::uint64_t seed = 0;  // batch order
  bool shuffle = true;
  // 0: every row shuffled each epoch (the reports'). N: blocks of N consecutive rows in a seeded
  // order, the rows of each `shuffle_window` blocks mixed (data/batches.hpp), for mapped sets
  // larger than the page cache.
  index_t shuffle_block = 0;
  index_t shuffle_window = 64;
  // Score the validation set every this many epochs and after the last (0: never during training;
  // evaluate the model afterwards instead). Scoring costs a forward pass over the validation rows.
  index_t validate_every = 1;
  LrSchedule schedule{};  // the learning rate over the steps (constant by default)

  // Every field but validate_every changes the weights (it is compute-only: it costs time).
  template <class Self, class Visitor>
  static void fields(Self& c, Visitor&& v) {
    v(c.epochs, field("epochs", "training epochs").at_least(1).at_most(1e6));
    v(c.batch_size, field("batch_size", "mini-batch size").at_least(1).at_most(1 << 24));
    v(c.shuffle, field("shuffle", "shuffle the rows each epoch").no_flag());
    v(c.seed, field("seed", "seed for initialisation, split and batch order"));
    v(c.shuffle_block, field("shuffle_block", "shuffle blocks of this many consecutive rows, then rows within a window of "
                                              "blocks (0: every row; for sets read from disk)")
                           .at_least(0).at_most(1 << 24).written_when(c.shuffle_block > 0));
    v(c.shuffle_window, field("shuffle_window", "blocks whose rows are shuffled together (with --shuffle-block)")
                            .at_least(1).at_most(1 << 20).written_when(c.shuffle_block > 0));
    v(c.validate_every, field("validate_every", "score the validation set every N epochs (0 = only after training)")
                            .at_least(0).compute_only());
    v(c.schedule, field("lr_schedule", "the learning rate over the steps").written_when(!c.schedule.constant()));
  }

  void validate() const {
    schedule.validate();
    detail::require(epochs > 0, "TrainConfig", "epochs must be positive, got " + std::to_string(epochs));
    detail::require(batch_size > 0, "TrainConfig", "batch_size must be positive, got " + std::to_string(batch_size));
    detail::require(validate_every >= 0, "TrainConfig",
                    "validate_every must be >= 0, got " + std::to_string(validate_every));
  }
};

struct TrainInfo {
  index_t epochs = 0;
  index_t batches_per_epoch = 0;
  index_t train_rows = 0;
  index_t validation_rows = 0;
};

struct EpochStats {
  index_t epoch = 0;  // 1-based
  index_t epochs = 0;
  index_t steps = 0;  // optimizer steps so far
  double train_loss = 0;  // reconstruction MSE over the epoch's batches, weighted by rows
  double train_ev = 0;    // 1 - epoch SSE / SST of the training set (weights change during the epoch)
  std::optional<double> validation_loss;  // MSE on the validation set after the epoch
  std::optional<double> validation_ev;    // explained variance, same formula as train_ev
  double seconds = 0;                     // since training began
};

struct TrainSummary {
  std::vector<EpochStats> history;
  bool stopped_early = false;
  double seconds = 0;
};

namespace detail {
template <class, class = void>
struct has_on_train_begin : std::false_type {};
template <class C>
struct has_on_train_begin<C, std::void_t<decltype(std::declval<C&>().on_train_begin(std::declval<const TrainInfo&>()))>>
    : std::true_type {};
template <class, class, class = void>
struct has_on_epoch_end : std::false_type {};
template <class C, class M>
struct has_on_epoch_end<C, M, std::void_t<decltype(std::declval<C&>().on_epoch_end(std::declval<const EpochStats&>(),
                                                                                   std::declval<const M&>()))>>
    : std::true_type {};
template <class, class, class = void>
struct has_on_train_end : std::false_type {};
template <class C, class M>
struct has_on_train_end<C, M, std::void_t<decltype(std::declval<C&>().on_train_end(std::declval<const TrainSummary&>(),
                                                                                   std::declval<const M&>()))>>
    : std::true_type {};

// Whether an optimizer's step takes a learning-rate factor (what a schedule needs).
template <class, class, class = void>
struct steps_with_lr_factor : std::false_type {};
template <class O, class M>
struct steps_with_lr_factor<O, M, std::void_t<decltype(std::declval<O&>().step(std::declval<M&>(),
                                                                               std::declval<const typename M::Gradients&>(), 1.0))>>
    : std::true_type {};

// Whether a model has data-dependent initialisation (TopK's median decoder bias).
template <class, class = void>
struct initializes_from_data : std::false_type {};
template <class M>
struct initializes_from_data<M, std::void_t<decltype(std::declval<M&>().initialize_from_data(
                                    std::declval<const data::RowSource<typename M::scalar_type>&>(),
                                    std::declval<const data::RowStatistics&>()))>> : std::true_type {};

// Whether a model's step takes distinct targets (the Dictionary skeleton's do).
template <class, class = void>
struct steps_with_targets : std::false_type {};
template <class M>
struct steps_with_targets<M, std::void_t<decltype(std::declval<M&>().loss_and_gradient(
                                 std::declval<const Matrix<typename M::scalar_type>&>(),
                                 std::declval<const Matrix<typename M::scalar_type>*>(), std::declval<typename M::Gradients&>(),
                                 std::declval<typename M::Workspace&>()))>> : std::true_type {};

// Calls c.on_epoch_end if it exists; true means "stop".
template <class C, class M>
bool epoch_end_hook(C& c, const EpochStats& s, const M& model) {
  if constexpr (has_on_epoch_end<C, M>::value) {
    using R = decltype(c.on_epoch_end(s, model));
    if constexpr (std::is_same_v<R, bool>) return c.on_epoch_end(s, model);
    else c.on_epoch_end(s, model);
  }
  return false;
}
}  // namespace detail

// `Exchange` (train/exchange.hpp) shares each step between data-parallel ranks; the default is
// one process.
template <class Model, class Optimizer, class Exchange = LocalExchange>
class Trainer {
  static_assert(require_trainable_model<Model>());

 public:
  using Scalar = typename Model::scalar_type;

  Trainer(const TrainConfig& config, Optimizer optimizer, Exchange exchange = {})
      : config_(config), optimizer_(std::move(optimizer)), exchange_(std::move(exchange)) {
    config_.validate();
  }

  const Exchange& exchange() const { return exchange_; }

  const Optimizer& optimizer() const { return optimizer_; }

  // Trains on the rows of `train` (data/row_source.hpp: in memory, mapped, sharded, paired with
  // targets, or a split's view of any of them); `validation` (may be null) is scored after every
  // epoch, against its targets when it has them.
  template <class... Callbacks>
  TrainSummary fit(Model& model, const data::RowSource<Scalar>& train, const data::RowSource<Scalar>* validation,
                   Callbacks&&... callbacks) {
    std::vector<Model*> models{&model};
    std::vector<Optimizer*> optimizers{&optimizer_};
    return std::move(run(models, optimizers, train, validation, callbacks...).front());
  }
  // The same on rows in memory ([N, D]; the inputs are the targets).
  template <class... Callbacks>
  TrainSummary fit(Model& model, const Matrix<Scalar>& train, const Matrix<Scalar>* validation, Callbacks&&... callbacks) {
    const data::MatrixRows<Scalar> t(train);
    const std::optional<data::MatrixRows<Scalar>> v = validation ? std::optional<data::MatrixRows<Scalar>>(*validation) : std::nullopt;
    return fit(model, t, v ? &*v : nullptr, callbacks...);
  }

  // Trains several models in one pass over the data: each batch is gathered once and fed to every
  // model, each with its own copy of the optimizer. With the same TrainConfig every model ends
  // bitwise identical to training it alone with fit(). Callbacks see each model's epochs; one
  // returning true stops that model only.
  template <class... Callbacks>
  std::vector<TrainSummary> fit_shared(std::vector<Model>& models, const data::RowSource<Scalar>& train,
                                       const data::RowSource<Scalar>* validation, Callbacks&&... callbacks) {
    std::vector<Optimizer> copies(models.size(), optimizer_);
    std::vector<Model*> model_ptrs;
    std::vector<Optimizer*> optimizer_ptrs;
    for (std::size_t m = 0; m < models.size(); ++m) {
      model_ptrs.push_back(&models[m]);
      optimizer_ptrs.push_back(&copies[m]);
    }
    return run(model_ptrs, optimizer_ptrs, train, validation, callbacks...);
  }
  template <class... Callbacks>
  std::vector<TrainSummary> fit_shared(std::vector<Model>& models, const Matrix<Scalar>& train,
                                       const Matrix<Scalar>* validation, Callbacks&&... callbacks) {
    const data::MatrixRows<Scalar> t(train);
    const std::optional<data::MatrixRows<Scalar>> v = validation ? std::optional<data::MatrixRows<Scalar>>(*validation) : std::nullopt;
    return fit_shared(models, t, v ? &*v : nullptr, callbacks...);
  }

 private:
  template <class... Callbacks>
  std::vector<TrainSummary> run(const std::vector<Model*>& models, const std::vector<Optimizer*>& optimizers,
                                const data::RowSource<Scalar>& train, const data::RowSource<Scalar>* validation,
                                Callbacks&... callbacks) {
    for (const data::RowSource<Scalar>* rows : {&train, validation}) {
      if (!rows) continue;
      const std::string what = rows == &train ? "training data " : "validation data ";
      for (const Model* model : models)
        detail::require(rows->input_dim() == model->input_dim() && rows->target_dim() == model->input_dim(),
                        "Trainer::fit()",
                        what + rows->describe() + " has " + std::to_string(rows->input_dim()) + " columns" +
                            (rows->has_targets() ? " and " + std::to_string(rows->target_dim()) + " target columns" : "") +
                            ", model expects " + std::to_string(model->input_dim()));
      if constexpr (!detail::steps_with_targets<Model>::value)
        detail::require(!rows->has_targets(), "Trainer::fit()", what + rows->describe() + " has distinct targets, but this model trains only as an autoencoder");
    }
    const data::BatchSchedule schedule(train.rows(), config_.batch_size, config_.seed, config_.shuffle,
                                       data::BlockShuffle{config_.shuffle_block, config_.shuffle_window});
    const bool targets = train.has_targets();
    const int rank = exchange_.rank(), ranks = exchange_.size();
    const index_t smallest_batch = train.rows() - (schedule.num_batches() - 1) * config_.batch_size;
    detail::require(smallest_batch >= ranks, "Trainer::fit()",
                    "a batch of " + std::to_string(smallest_batch) + " rows cannot be split over " +
                        std::to_string(ranks) + " ranks; use fewer ranks or a batch size that leaves a larger last batch");
    [[maybe_unused]] const TrainInfo info{config_.epochs, schedule.num_batches(), train.rows(), validation ? validation->rows() : 0};
    (call_train_begin(callbacks, info), ...);

    // One streaming pass over each set, shared by the ranks: the EV denominators (of the targets), the data scale.
    const auto sum_over_ranks = [this](std::vector<double>& v) { exchange_.sum(v); };
    const data::RowStatistics train_stats = data::stream_statistics(train, 0, rank, ranks, sum_over_ranks);
    if constexpr (detail::initializes_from_data<Model>::value)
      for (Model* model : models) model->initialize_from_data(train, train_stats);
    const std::int64_t total_steps = static_cast<std::int64_t>(config_.epochs) * schedule.num_batches();
    const double train_sst = train_stats.targets.sst;
    const double val_sst = validation ? data::stream_statistics(*validation, 0, rank, ranks, sum_over_ranks).targets.sst : 0.0;
    const double train_values = static_cast<double>(train.rows()) * static_cast<double>(train.target_dim());
    const auto start = std::chrono::steady_clock::now();
    const std::size_t count = models.size();
    std::vector<typename Model::Gradients> grads(count);
    std::vector<typename Model::Workspace> workspaces(count);
    std::vector<TrainSummary> summaries(count);
    std::vector<bool> active(count, true);
    // Rows read from a file's map are read one batch ahead on another thread, overlapping the step.
    struct Batch {
      Matrix<Scalar> inputs, targets;
    };
    std::vector<index_t> order;
    Batch current, ahead;
    const auto read_batch = [&](index_t b, Batch& out) {
      const auto [first, last] = rank_share(schedule.batch_begin(b), schedule.batch_end(b), rank, ranks);  // this rank's rows
      train.read_inputs(order.data() + first, last - first, out.inputs);
      if (targets) train.read_targets(order.data() + first, last - first, out.targets);
      train.release_rows(order.data() + first, last - first);
    };
    const bool prefetch = !train.in_memory();
    std::future<void> pending;  // declared after what it reads, so it finishes before they go

    for (index_t epoch = 0; epoch < config_.epochs; ++epoch) {
      order = schedule.epoch_order(epoch);
      std::vector<double> sse(count, 0.0);
      if (prefetch) pending = std::async(std::launch::async, [&] { read_batch(0, ahead); });
      for (index_t b = 0; b < schedule.num_batches(); ++b) {
        const index_t begin = schedule.batch_begin(b), end = schedule.batch_end(b);
        const auto [first, last] = rank_share(begin, end, rank, ranks);
        if (prefetch) {
          pending.get();  // rethrows a read error (a bad value names its file)
          std::swap(current, ahead);
          if (b + 1 < schedule.num_batches()) pending = std::async(std::launch::async, [&, b] { read_batch(b + 1, ahead); });
        } else {
          read_batch(b, current);
        }
        const Matrix<Scalar>& batch = current.inputs;
        const Matrix<Scalar>& target_batch = current.targets;
        for (std::size_t m = 0; m < count; ++m) {
          if (!active[m]) continue;
          Model& model = *models[m];
          const StepLoss step = step_loss(model, batch, targets ? &target_batch : nullptr, grads[m], workspaces[m]);
          if (!std::isfinite(step.loss))
            throw numeric_error("Trainer::fit(): loss became " + std::to_string(step.loss) + " at epoch " +
                                std::to_string(epoch + 1) + ", batch " + std::to_string(b + 1) +
                                "; lower the learning rate or check the data scale");
          sse[m] += step.reconstruction_mse * static_cast<double>(batch.size());
          if (ranks > 1) exchange_.sum_gradients(grads[m], static_cast<double>(last - first) / static_cast<double>(end - begin));
          if (config_.schedule.constant()) {
            optimizers[m]->step(model, grads[m]);
          } else if constexpr (detail::steps_with_lr_factor<Optimizer, Model>::value) {
            optimizers[m]->step(model, grads[m], config_.schedule.factor(epoch * schedule.num_batches() + b + 1, total_steps));
          } else {
            throw invalid_argument("Trainer::fit(): a learning-rate schedule needs an optimizer whose step takes a factor");
          }
          model.normalize_decoder();
        }
      }
      for (std::size_t m = 0; m < count; ++m) {
        if (!active[m]) continue;
        const Model& model = *models[m];
        if (ranks > 1) sse[m] = exchange_.sum(sse[m]);
        EpochStats s;
        s.epoch = epoch + 1;
        s.epochs = config_.epochs;
        s.steps = (epoch + 1) * schedule.num_batches();
        s.train_loss = sse[m] / train_values;
        // EV is undefined (NaN, shown as such) when the targets do not vary, never a made-up 0.
        s.train_ev = train_sst > 0 ? 1.0 - sse[m] / train_sst : std::numeric_limits<double>::quiet_NaN();
        const bool score = validation && config_.validate_every > 0 &&
                           ((epoch + 1) % config_.validate_every == 0 || epoch + 1 == config_.epochs);
        if (score) {
          const double val_sse = validation_sse(model, *validation);
          s.validation_loss = val_sse / (static_cast<double>(validation->rows()) * static_cast<double>(validation->target_dim()));
          s.validation_ev = val_sst > 0 ? 1.0 - val_sse / val_sst : std::numeric_limits<double>::quiet_NaN();
        }
        s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        summaries[m].history.push_back(s);
        bool stop = false;
        ((stop = detail::epoch_end_hook(callbacks, s, model) || stop), ...);
        if (stop) {
          summaries[m].stopped_early = epoch + 1 < config_.epochs;
          active[m] = false;
        }
      }
      if (std::none_of(active.begin(), active.end(), [](bool a) { return a; })) break;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (std::size_t m = 0; m < count; ++m) {
      summaries[m].seconds = seconds;
      (call_train_end(callbacks, summaries[m], *models[m]), ...);
    }
    return summaries;
  }

  static StepLoss step_loss(Model& model, const Matrix<Scalar>& batch, const Matrix<Scalar>* target,
                            typename Model::Gradients& grad, typename Model::Workspace& ws) {
    if constexpr (detail::steps_with_targets<Model>::value) return model.loss_and_gradient(batch, target, grad, ws);
    else return model.loss_and_gradient(batch, grad, ws);
  }

  // Squared error against the targets over the validation rows, in blocks of at most 8,192 rows (a
  // forward pass holds a block's pre-activations); data-parallel ranks score a share each.
  double validation_sse(const Model& model, const data::RowSource<Scalar>& validation) {
    const auto [first, last] = exchange_.size() == 1 ? std::pair<index_t, index_t>{0, validation.rows()}
                                                     : rank_share(0, validation.rows(), exchange_.rank(), exchange_.size());
    constexpr index_t block = 8192;
    double sse = 0;
    Matrix<Scalar> x, y;
    for (index_t begin = first; begin < last; begin += block) {
      const index_t n = std::min(block, last - begin);
      const auto rows = data::row_range(begin, n);
      validation.read_inputs(rows.data(), n, x);
      if (validation.has_targets()) validation.read_targets(rows.data(), n, y);
      validation.release_rows(rows.data(), n);
      sse += (model.forward(x) - (validation.has_targets() ? y : x)).template cast<double>().squaredNorm();
    }
    return exchange_.size() == 1 ? sse : exchange_.sum(sse);
  }

  template <class C>
  static void call_train_begin(C& c, const TrainInfo& info) {
    if constexpr (detail::has_on_train_begin<C>::value) c.on_train_begin(info);
  }
  template <class C>
  static void call_train_end(C& c, const TrainSummary& s, const Model& m) {
    if constexpr (detail::has_on_train_end<C, Model>::value) c.on_train_end(s, m);
  }

  TrainConfig config_;
  Optimizer optimizer_;
  Exchange exchange_;
};

// Deduction helper: `auto trainer = make_trainer<Model>(config, Adam<float>{...});`, plus an
// exchange for data-parallel training.
template <class Model, class Optimizer, class Exchange = LocalExchange>
Trainer<Model, Optimizer, Exchange> make_trainer(const TrainConfig& config, Optimizer optimizer, Exchange exchange = {}) {
  return Trainer<Model, Optimizer, Exchange>(config, std::move(optimizer), std::move(exchange));
}

}  // namespace sae
