// The training loop: seeded mini-batches, forward + hand-written backward, an optimizer step,
// decoder renormalisation, and optional callbacks (ensmallen style: every hook is optional and a
// hook returning true stops training).
#pragma once

#include <sae/core/error.hpp>
#include <sae/core/types.hpp>
#include <sae/data/batches.hpp>
#include <sae/data/split.hpp>
#include <sae/model/model_concept.hpp>
#include <sae/optim/schedule.hpp>
#include <sae/train/exchange.hpp>

#include <algorithm>
#include <chrono>
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
                                    std::declval<const Matrix<typename M::scalar_type>&>()))>> : std::true_type {};

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

// sum ||x_i - mean(x)||^2 in double: the denominator of explained variance.
template <class Scalar>
double total_sum_of_squares(const Matrix<Scalar>& x) {
  const Eigen::RowVectorXd mean = x.template cast<double>().colwise().mean();
  double sst = 0;
  for (index_t i = 0; i < x.rows(); ++i) sst += (x.row(i).template cast<double>() - mean).squaredNorm();
  return sst;
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

  // Trains on `train` ([N, D]); `validation` (may be null) is scored after every epoch.
  template <class... Callbacks>
  TrainSummary fit(Model& model, const Matrix<Scalar>& train, const Matrix<Scalar>* validation, Callbacks&&... callbacks) {
    std::vector<Model*> models{&model};
    std::vector<Optimizer*> optimizers{&optimizer_};
    return std::move(run(models, optimizers, train, validation, callbacks...).front());
  }

  // Trains several models in one pass over the data: each batch is gathered once and fed to every
  // model, each with its own copy of the optimizer. With the same TrainConfig every model ends
  // bitwise identical to training it alone with fit(). Callbacks see each model's epochs; one
  // returning true stops that model only.
  template <class... Callbacks>
  std::vector<TrainSummary> fit_shared(std::vector<Model>& models, const Matrix<Scalar>& train,
                                       const Matrix<Scalar>* validation, Callbacks&&... callbacks) {
    std::vector<Optimizer> copies(models.size(), optimizer_);
    std::vector<Model*> model_ptrs;
    std::vector<Optimizer*> optimizer_ptrs;
    for (std::size_t m = 0; m < models.size(); ++m) {
      model_ptrs.push_back(&models[m]);
      optimizer_ptrs.push_back(&copies[m]);
    }
    return run(model_ptrs, optimizer_ptrs, train, validation, callbacks...);
  }

 private:
  template <class... Callbacks>
  std::vector<TrainSummary> run(const std::vector<Model*>& models, const std::vector<Optimizer*>& optimizers,
                                const Matrix<Scalar>& train, const Matrix<Scalar>* validation, Callbacks&... callbacks) {
    for (const Model* model : models) {
      detail::require(train.cols() == model->input_dim(), "Trainer::fit()",
                      "training data has " + std::to_string(train.cols()) + " columns, model expects " +
                          std::to_string(model->input_dim()));
      detail::require(!validation || validation->cols() == model->input_dim(), "Trainer::fit()",
                      "validation data has " + std::to_string(validation ? validation->cols() : 0) +
                          " columns, model expects " + std::to_string(model->input_dim()));
    }
    const data::BatchSchedule schedule(train.rows(), config_.batch_size, config_.seed, config_.shuffle);
    const int rank = exchange_.rank(), ranks = exchange_.size();
    const index_t smallest_batch = train.rows() - (schedule.num_batches() - 1) * config_.batch_size;
    detail::require(smallest_batch >= ranks, "Trainer::fit()",
                    "a batch of " + std::to_string(smallest_batch) + " rows cannot be split over " +
                        std::to_string(ranks) + " ranks; use fewer ranks or a batch size that leaves a larger last batch");
    [[maybe_unused]] const TrainInfo info{config_.epochs, schedule.num_batches(), train.rows(), validation ? validation->rows() : 0};
    (call_train_begin(callbacks, info), ...);

    if constexpr (detail::initializes_from_data<Model>::value)
      for (Model* model : models) model->initialize_from_data(train);
    const std::int64_t total_steps = static_cast<std::int64_t>(config_.epochs) * schedule.num_batches();
    const double train_sst = detail::total_sum_of_squares(train);
    const double val_sst = validation ? detail::total_sum_of_squares(*validation) : 0.0;
    const auto start = std::chrono::steady_clock::now();
    const std::size_t count = models.size();
    std::vector<typename Model::Gradients> grads(count);
    std::vector<typename Model::Workspace> workspaces(count);
    std::vector<TrainSummary> summaries(count);
    std::vector<bool> active(count, true);
    Matrix<Scalar> batch;

    for (index_t epoch = 0; epoch < config_.epochs; ++epoch) {
      const std::vector<index_t> order = schedule.epoch_order(epoch);
      std::vector<double> sse(count, 0.0);
      for (index_t b = 0; b < schedule.num_batches(); ++b) {
        const index_t begin = schedule.batch_begin(b), end = schedule.batch_end(b);
        const auto [first, last] = rank_share(begin, end, rank, ranks);  // this rank's rows of the batch
        data::gather_rows(train, order.data() + first, last - first, batch);
        for (std::size_t m = 0; m < count; ++m) {
          if (!active[m]) continue;
          Model& model = *models[m];
          const StepLoss step = model.loss_and_gradient(batch, grads[m], workspaces[m]);
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
        s.train_loss = sse[m] / static_cast<double>(train.size());
        s.train_ev = train_sst > 0 ? 1.0 - sse[m] / train_sst : 0.0;
        const bool score = validation && config_.validate_every > 0 &&
                           ((epoch + 1) % config_.validate_every == 0 || epoch + 1 == config_.epochs);
        if (score) {
          const double val_sse = validation_sse(model, *validation);
          s.validation_loss = val_sse / static_cast<double>(validation->size());
          s.validation_ev = val_sst > 0 ? 1.0 - val_sse / val_sst : 0.0;
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

  // Squared error over the validation rows; data-parallel ranks score a share each.
  double validation_sse(const Model& model, const Matrix<Scalar>& validation) {
    if (exchange_.size() == 1) return (model.forward(validation) - validation).template cast<double>().squaredNorm();
    const auto [first, last] = rank_share(0, validation.rows(), exchange_.rank(), exchange_.size());
    const Matrix<Scalar> share = validation.middleRows(first, last - first);
    return exchange_.sum(first < last ? (model.forward(share) - share).template cast<double>().squaredNorm() : 0.0);
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
