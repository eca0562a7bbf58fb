// sae-train: train one SAE — TopK (the reports'), BatchTopK or JumpReLU — on .npy activations (or
// on planted synthetic data when --data is empty, the default), print its metrics, and write
// metrics.json, history.csv and a checkpoint.
#include "common.hpp"
#include "mpi_mode.hpp"

#include <sae/model/interop.hpp>
#include <sae/model/registry.hpp>

#include <cstdio>
#include <optional>
#include <sstream>

namespace {

struct TrainData {
  sae::data::ActivationSplit split;
  sae::io::Json fingerprint;
};

// The --data file, or rows planted by `planted` when --data is empty (the default).
TrainData load_data(const cxxopts::ParseResult& args, sae::data::PlantedConfig planted, std::uint64_t seed) {
  sae::data::ActivationFile file;
  if (!args["data"].as<std::string>().empty()) {
    file = sae::examples::load_data_flag(args);
  } else {
    planted.seed = seed;
    file = sae::data::planted_activation_file(planted);
  }
  TrainData d{sae::data::split_activations(file.all, file.source, {sae::examples::val_fraction_flag(args), seed}),
              std::move(file.fingerprint)};
  d.fingerprint["split"] = d.split.split;
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  sae::examples::MpiMode mpi(argc, argv);
  const int status = sae::examples::run_main("sae-train", [&] {
    cxxopts::Options options("sae-train", "Train one sparse autoencoder (TopK, BatchTopK, JumpReLU or Matryoshka) and report its metrics.");
    // The model, training and optimizer flags come from the configs' field lists (core/fields.hpp),
    // with this program's defaults.
    sae::examples::FieldFlags field_flags(options);
    sae::TopKConfig model_defaults;
    model_defaults.num_latents = 512, model_defaults.k = 20;
    sae::JumpReluConfig jumprelu_defaults;  // a bandwidth for runs this short (the paper's 0.001 barely moves)
    jumprelu_defaults.sparsity_coefficient = 1, jumprelu_defaults.bandwidth = 0.1;
    const sae::TrainConfig train_defaults;
    options.add_options()("arch", "'topk' (the reports' model), 'batchtopk' (k x B per batch in training, a threshold at "
                                  "inference), 'jumprelu' (learnt thresholds, L0 penalty; started at K's L0) or 'matryoshka' "
                                  "(BatchTopK over nested groups, the default split)",
                          cxxopts::value<std::string>()->default_value("topk"));
    field_flags.declare("", model_defaults, {"k", "num_latents"})
        .declare("", jumprelu_defaults, {"sparsity_coefficient", "bandwidth"})
        .declare("", train_defaults, {"epochs", "batch_size"})
        .declare("", sae::AdamConfig{}, {"lr"})
        .declare("", model_defaults, {"selection", "decoder_bias", "median_decoder_bias"});
    options.add_options()("optimizer", "'adam' (AdamW with --weight-decay) or 'sgd' (with momentum; --weight-decay then "
                                       "adds to the gradient)", cxxopts::value<std::string>()->default_value("adam"));
    field_flags.declare("", sae::SgdConfig{}, {"momentum"})
        .declare("", model_defaults, {"encoder_precision"})
        .declare("", train_defaults, {"seed", "validate_every"});
    // clang-format off
    options.add_options()
      ("threads", "OpenMP threads (0 = default)", cxxopts::value<long>()->default_value("0"))
      ("early-stop", "stop after this many epochs without validation improvement (0 = off)", cxxopts::value<long>()->default_value("0"))
      ("checkpoint-every", "also checkpoint every N epochs during training (0 = only after training)", cxxopts::value<long>()->default_value("0"))
      ("out", "output directory", cxxopts::value<std::string>()->default_value("runs/sae-train"))
      ("export", "also write the SAE as <out>/saelens/ and/or <out>/sparsify/ (comma-separated formats)",
       cxxopts::value<std::vector<std::string>>())
      ("quiet", "no per-epoch progress")
      ("mpi", "data-parallel over the ranks of an MPI job (mpirun -np N sae-train --mpi ...): each batch split "
              "over the ranks, gradients summed");
    // clang-format on
    sae::data::PlantedConfig planted;  // without --data: the reports' row count, a 256-wide planted dictionary
    planted.num_samples = 7473, planted.input_dim = 256, planted.num_features = 512, planted.k_true = 8, planted.noise_std = 0.02;
    field_flags.declare("", planted);
    sae::examples::add_data_options(options, "");
    sae::examples::add_dead_latent_options(options, field_flags, "dead latents");
    sae::examples::add_schedule_options(field_flags, "optimizer");
    const auto parsed = sae::examples::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    using sae::examples::int_flag;
    sae::examples::set_threads(int_flag(args, "threads", 0, 4096));
    // K, F, selection, decoder bias, GEMM precision and the dead-latent options, checked before the data loads.
    const sae::TopKConfig model_flags = sae::examples::dead_latent_flags(args, field_flags, model_defaults);
    sae::JumpReluConfig jumprelu_flags = jumprelu_defaults;
    field_flags.read(args, jumprelu_flags);
    const long early_stop = int_flag(args, "early-stop", 0);
    sae::TrainConfig train_config = train_defaults;
    field_flags.read(args, train_config);
    const std::uint64_t seed = train_config.seed;
    const std::string precision = sae::name(model_flags.encoder_precision);
    const long checkpoint_every = int_flag(args, "checkpoint-every", 0);
    sae::examples::check_flag(early_stop == 0 || train_config.validate_every == 1,
                              "--early-stop watches the validation loss every epoch; it needs --validate-every 1");
    sae::AdamConfig adam;
    field_flags.read(args, adam);
    const std::string optimizer = args["optimizer"].as<std::string>();
    sae::examples::check_flag(optimizer == "adam" || optimizer == "sgd",
                              "--optimizer: expected 'adam' or 'sgd', got '" + optimizer + "'");
    const bool use_sgd = optimizer == "sgd";
    sae::SgdConfig sgd{adam.lr, 0.9, adam.weight_decay};
    field_flags.read(args, sgd);
    field_flags.read(args, planted);
    sae::examples::check_flag(planted.k_true <= planted.num_features,
                              "--planted-k: expected at most --planted-features (" + std::to_string(planted.num_features) +
                                  "), got " + std::to_string(planted.k_true));
    sae::examples::check_flag(!model_flags.median_decoder_bias || model_flags.decoder_bias,
                              "--median-decoder-bias initialises the decoder bias: it needs --decoder-bias");
    const long latents = model_flags.num_latents, k = model_flags.k;
    sae::examples::check_flag(k <= latents, "-k/--topk: expected at most --latents (" + std::to_string(latents) +
                                                "), got " + std::to_string(k));
    const std::string arch = args["arch"].as<std::string>();
    const auto architectures = sae::architecture_names();
    sae::examples::check_flag(std::find(architectures.begin(), architectures.end(), arch) != architectures.end(),
                              "--arch: expected " + sae::architecture_choices() + ", got '" + arch + "'");
    if (arch != "topk")  // what only the TopK model has
      for (const char* f : {"selection", "encoder-precision", "median-decoder-bias", "aux-k", "aux-alpha", "dead-window",
                            "resample-every", "project-decoder-grad"})
        sae::examples::check_flag(args[f].count() == 0, "--" + std::string(f) + " is for --arch topk only");
    sae::examples::check_flag(arch == "topk" || sae::examples::recipe_flag(args) == sae::Recipe::reports,
                              "--recipe modern is for --arch topk only");
    sae::examples::check_flag(arch == "jumprelu" || (args["l0-coefficient"].count() == 0 && args["jumprelu-bandwidth"].count() == 0),
                              "--l0-coefficient and --jumprelu-bandwidth are for --arch jumprelu only");
    sae::examples::check_flag(!(args.count("mpi") && (arch == "batchtopk" || arch == "matryoshka")),
                              "--mpi with --arch " + arch + ": BatchTopK would select over each rank's share of a batch, not "
                              "the whole batch; train it in one process");
    sae::examples::check_flag(model_flags.aux_k <= latents, "--aux-k: expected at most --latents (" +
                                                                std::to_string(latents) + "), got " +
                                                                std::to_string(model_flags.aux_k));

    std::vector<sae::ExternalFormat> exports;
    if (args.count("export"))
      for (const auto& f : args["export"].as<std::vector<std::string>>()) {
        try {
          exports.push_back(sae::parse_external_format(f));
        } catch (const sae::invalid_argument& e) {
          throw sae::invalid_argument(std::string("--export: ") + e.what());
        }
        sae::examples::check_flag(model_flags.selection == sae::Selection::value,
                                  "--export: magnitude selection has no SAELens/sparsify counterpart");
        sae::examples::check_flag(arch == "topk" || exports.back() == sae::ExternalFormat::saelens,
                                  "--export sparsify: sparsify has no threshold SAE (BatchTopK, JumpReLU and Matryoshka export to saelens)");
      }

    sae::examples::check_flag(!(args.count("mpi") && (model_flags.tracks_dead_latents() ||
                                                     sae::examples::recipe_flag(args) == sae::Recipe::modern)),
                              "--aux-k, --resample-every or --recipe modern with --mpi: dead latents are counted per process, so "
                              "data-parallel ranks would disagree; train it in one process");
    mpi.start(args.count("mpi") > 0, "sae-train");
    std::optional<sae::io::RunDirectory> run_folder;  // rank 0 writes; other ranks only train
    if (mpi.root()) run_folder.emplace(args["out"].as<std::string>(), "sae-train");
    const auto loaded = load_data(args, planted, seed);
    const auto& data = loaded.split;
    sae::TopKConfig config = sae::examples::with_dead_window(model_flags, data.train.rows());
    config.input_dim = data.train.cols();
    config.seed = seed;
    config = sae::apply_recipe(config, sae::examples::recipe_flag(args), data.train.rows());
    sae::examples::require_training_memory(config, train_config.batch_size);

    // Trains, scores and writes out `model`, whichever architecture it is.
    const auto run_model = [&](auto& model) -> int {
      using Model = std::decay_t<decltype(model)>;
      constexpr bool topk = std::is_same_v<Model, sae::TopKAutoencoder<float>>;
      // Intermediate checkpoints only when asked; the final one is written after timing stops.
      struct PeriodicCheckpoint {
        std::filesystem::path dir;
        long every;
        void on_epoch_end(const sae::EpochStats& s, const Model& m) const {
          if (every > 0 && s.epoch % every == 0 && s.epoch < s.epochs) sae::save_checkpoint(dir, m);
        }
      };
      std::ostringstream sink;
      sae::ProgressPrinter progress(args.count("quiet") ? static_cast<std::ostream&>(sink) : std::cout);
      const auto fit = [&](auto&& trainer) {
        if (!mpi.root()) return trainer.fit(model, data.train, &data.validation, sae::EarlyStop(early_stop));
        return trainer.fit(model, data.train, &data.validation, progress, sae::CsvLogger(run_folder->stage("history.csv")),
                           PeriodicCheckpoint{run_folder->stage("checkpoint"), checkpoint_every}, sae::EarlyStop(early_stop));
      };
      std::optional<sae::io::Json> data_parallel;
      // Trains with `optimizer`; data parallel under --mpi.
      const auto train_with = [&](auto optimizer) {
#if SAE_HAVE_MPI
        if (mpi.on()) {
          auto trainer = sae::make_trainer<Model>(train_config, std::move(optimizer), sae::mpi::GradientExchange(mpi.comm()));
          const auto summary = fit(trainer);
          const auto& x = trainer.exchange();
          data_parallel = sae::io::Json::object();
          (*data_parallel)["ranks"] = mpi.size();
          (*data_parallel)["bytes_received_per_step"] = x.bytes_received() / static_cast<double>(std::max<std::uint64_t>(x.exchanges(), 1));
          (*data_parallel)["sparse_exchanges"] = static_cast<double>(x.sparse_exchanges());
          (*data_parallel)["dense_exchanges"] = static_cast<double>(x.dense_exchanges());
          if (mpi.root())
            std::printf("data parallel: %d ranks, %.3g MB received per step by rank 0 (weight gradients sent sparsely in %llu of %llu exchanges)\n",
                        mpi.size(), (*data_parallel)["bytes_received_per_step"].as_number() / 1e6,
                        static_cast<unsigned long long>(x.sparse_exchanges()),
                        static_cast<unsigned long long>(x.sparse_exchanges() + x.dense_exchanges()));
          return summary;
        }
#endif
        return fit(sae::make_trainer<Model>(train_config, std::move(optimizer)));
      };
      const auto train_model = [&] {
        return use_sgd ? train_with(sae::Sgd<float>(sgd)) : train_with(sae::Adam<float>(adam));
      };
      if (!mpi.root()) {
        train_model();
        return 0;
      }
      auto& run = *run_folder;
      sae::examples::write_resolved_config(run, options, args);
      const std::filesystem::path out = run.out();

      std::cout << "data: " << data.source << "\n"
                << "split: " << data.split << " (" << data.train.rows() << " train, " << data.validation.rows()
                << " validation)\n"
                << "model: " << Model::architecture << ", D=" << data.train.cols() << " F=" << latents << " K=" << k
                << (topk ? ", encoder GEMM " + precision : std::string())
                << ", threads=" << sae::max_threads() << (mpi.on() ? " per rank, " + std::to_string(mpi.size()) + " ranks (data parallel)" : "")
                << "\n";
      const sae::TrainSummary summary = train_model();
      sae::save_checkpoint(run.stage("checkpoint"), model);

      const auto val = sae::metrics::evaluate(model, data.validation);
      const auto train = sae::metrics::evaluate(model, data.train);
      const sae::io::Json model_json = sae::io::fields_to_json(model.config());
      sae::io::Json doc = sae::io::Json::object();
      doc["data"] = data.source;
      sae::io::Json fingerprint = sae::io::Json::object();
      fingerprint["library"] = sae::io::library_fingerprint();
      fingerprint["data"] = loaded.fingerprint;
      fingerprint["model"] = model_json;
      if (!topk) fingerprint["architecture"] = Model::architecture;  // TopK's fingerprints stay as they were
      fingerprint["encoder_precision"] = precision;
      fingerprint["training"] = sae::training_fingerprint(train_config, adam);
      if (use_sgd) {
        fingerprint["training"]["optimizer"] = "sgd";
        fingerprint["training"]["momentum"] = sgd.momentum;
      }
      fingerprint["early_stop"] = early_stop;
      doc["fingerprint"] = fingerprint;
      doc["split"] = data.split;
      doc["architecture"] = Model::architecture;
      doc["model"] = model_json;
      doc["encoder_precision"] = precision;
      doc["epochs_run"] = static_cast<long>(summary.history.size());
      doc["stopped_early"] = summary.stopped_early;
      doc["batch_size"] = train_config.batch_size;
      doc["lr"] = adam.lr;
      doc["optimizer"] = optimizer;
      doc["threads"] = sae::max_threads();
      doc["train_seconds"] = summary.seconds;
      if (data_parallel) doc["data_parallel"] = *data_parallel;
      doc["validation"] = sae::metrics::to_json(val);
      doc["train"] = sae::metrics::to_json(train);
      // bf16's accuracy effect: the same weights scored with the fp32 encoder GEMM.
      std::optional<sae::metrics::Evaluation> val_fp32;
      double overlap = 1.0;
      if constexpr (topk) {
        if (model.config().encoder_precision == sae::EncoderPrecision::bf16) {
          sae::TopKConfig exact = model.config();
          exact.encoder_precision = sae::EncoderPrecision::fp32;
          const Model reference(exact, model.parameters());
          val_fp32 = sae::metrics::evaluate(reference, data.validation);
          overlap = sae::metrics::active_overlap(model.encode(data.validation), reference.encode(data.validation));
          doc["validation_fp32_encoder"] = sae::metrics::to_json(*val_fp32);
          doc["bf16_active_overlap"] = overlap;
        }
      }
      sae::io::write_text_atomically(run.stage("metrics.json"), doc.dump() + "\n");
      sae::io::save_npy(run.stage("activation_frequency.npy"),
                        Eigen::Map<const Eigen::VectorXd>(val.activation_frequency.data(),
                                                          static_cast<long>(val.activation_frequency.size())));
      std::string exported;
      for (auto format : exports) {
        sae::ExportOptions opt;
        opt.activation_frequency = &val.activation_frequency;  // SAELens's sparsity.safetensors
        if constexpr (topk) sae::export_model(format, run.stage(sae::name(format)), model, opt);
        else sae::export_saelens(run.stage(sae::name(format)), model, opt);
        exported += std::string(", ") + sae::name(format) + "/";
      }

      std::printf("\nvalidation metrics (%lld samples)\n", static_cast<long long>(data.validation.rows()));
      std::printf("  explained variance        %.4f   (reports' formula: %.4f)\n", val.explained_variance,
                  val.explained_variance_reports);
      std::printf("  MSE                       %.6g\n", val.mse);
      std::printf("  L0                        %.2f\n", val.l0);
      std::printf("  dead latents              %.1f%%  (%lld of %lld alive)\n", 100 * val.dead_fraction,
                  static_cast<long long>(val.alive_latents), static_cast<long long>(latents));
      std::printf("  mean / max activation     %.4g / %.4g\n", val.mean_active_activation, val.max_activation);
      std::printf("  EV per active latent      %.3g%%\n", 100 * val.ev_per_active_latent);
      if (val_fp32)
        std::printf("  fp32 encoder, same weights explained variance %.4f; %.2f%% of active latents the same\n",
                    val_fp32->explained_variance, 100 * overlap);
      std::printf("  training time             %.1f s\n", summary.seconds);
      sae::examples::test_fault_point("before-commit");
      run.commit();
      std::cout << "wrote " << (out / "metrics.json").string() << ", history.csv, activation_frequency.npy, checkpoint/"
                << exported << "\n";
      return 0;
    };

    // Any registered architecture: the fields it shares with the TopK config (shape, K, seed, decoder
    // bias, tied init) copied by key, then its own.
    return sae::with_architecture<float>(arch, [&](auto tag) {
      using Model = typename decltype(tag)::type;
      typename Model::Config c{};
      sae::io::assign_shared_fields(config, c);
      if constexpr (std::is_same_v<Model, sae::JumpReluAutoencoder<float>>)
        c.sparsity_coefficient = jumprelu_flags.sparsity_coefficient, c.bandwidth = jumprelu_flags.bandwidth, c.initial_l0 = k;
      Model model(c);
      return run_model(model);
    });
  });
  return mpi.finish(status);
}
