// sae-train: train one SAE — TopK (the reports'), BatchTopK, JumpReLU or Matryoshka — on
// activations (a .npy/.safetensors file or a shard set, optionally against targets from another
// layer or file; planted synthetic rows without --data, the default), print its metrics, and
// write metrics.json, history.csv and a checkpoint.
#include "common.hpp"
#include "output_paths.hpp"
#include "mpi_mode.hpp"

#include <sae/data/training_rows.hpp>
#include <sae/model/registry.hpp>
#include <sae/report/train_run.hpp>

#include <optional>
#include <sstream>

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
        .declare("", train_defaults, {"seed", "validate_every", "shuffle_block", "shuffle_window"});
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
    sae::examples::add_data_options(field_flags, "", {});
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
    sae::examples::refuse_idle_flags(args, {{"momentum", use_sgd, "does nothing with --optimizer adam (momentum is SGD's)"},
                                            {"stream", !args.count("mpi"), "does nothing with --mpi (every rank streams its share anyway)"}});
    sae::examples::refuse_idle_schedule_flags(args, train_config.schedule);
    field_flags.read(args, planted);
    auto data_options = sae::examples::data_flags(args, field_flags);
    // The planted flags shape rows only when no --data is given; --layer/--position only slice a file.
    if (data_options.data.empty()) {
      field_flags.for_each_given(args, data_options, [&](const std::string& flag, const std::string& key) {
        if (key != "val_fraction")
          sae::examples::refuse_idle_flag(args, flag, "--" + flag + " is about a --data file; without --data the rows are planted");
      });
    } else {
      field_flags.for_each_given(args, planted, [&](const std::string& flag, const std::string&) {
        sae::examples::refuse_idle_flag(args, flag, "--" + flag + " shapes planted rows; it does nothing with --data");
      });
    }
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
    // Flags for fields --arch's model lacks would change nothing: refused, from the field lists.
    sae::examples::refuse_flags_of_other_architectures(args, field_flags, arch, {"k"}, model_flags, jumprelu_flags);
    sae::examples::check_flag(arch == "topk" || sae::examples::recipe_flag(args) == sae::Recipe::reports,
                              "--recipe modern is for --arch topk only");
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

    if (data_options.has_targets()) {
      sae::examples::check_flag(model_flags.resample_every == 0, "--resample-every re-seeds latents with input rows, which "
                                                                 "assumes an autoencoder; drop it with --target-*");
      sae::examples::check_flag(!args.count("export"), "--export: transcoders are not exported to SAELens/sparsify yet; "
                                                       "drop --export with --target-*");
    }
    sae::examples::check_flag(!(args.count("mpi") && (model_flags.tracks_dead_latents() ||
                                                     sae::examples::recipe_flag(args) == sae::Recipe::modern)),
                              "--aux-k, --resample-every or --recipe modern with --mpi: dead latents are counted per process, so "
                              "data-parallel ranks would disagree; train it in one process");
    mpi.start(args.count("mpi") > 0, "sae-train");
    // Under --mpi each rank reads only its share of every batch, from the memory map (one copy in the
    // page cache for the node), instead of each loading every row.
    if (mpi.on()) data_options.stream = true;
    // Planted rows always fit in memory, so --shuffle-window without --shuffle-block does nothing.
    if (data_options.data.empty())
      sae::examples::refuse_idle_flags(args, {{"shuffle-window", train_config.shuffle_block > 0,
                                               "does nothing without --shuffle-block (rows are shuffled one by one)"}});
    sae::examples::refuse_idle_step_flags_early(args, train_config, data_options, planted.num_samples, early_stop, checkpoint_every);
    sae::examples::require_outputs_apart(args, {"out"});
    std::optional<sae::io::RunDirectory> run_folder;  // rank 0 writes; other ranks only train
    if (mpi.root()) run_folder.emplace(args["out"].as<std::string>(), "sae-train");
    const auto data = sae::data::open_training_rows(data_options, planted, seed);
    const sae::index_t train_rows = data.train->rows();
    sae::examples::check_flag(!data.train->has_targets() || data.train->target_dim() == data.train->input_dim(),
                              "--target-*: the targets are " + std::to_string(data.train->target_dim()) +
                                  " wide but the inputs " + std::to_string(data.train->input_dim()) +
                                  "; a transcoder between widths is not built yet (same-width layers are)");
    sae::TopKConfig config = sae::examples::with_dead_window(model_flags, train_rows);
    config.input_dim = data.train->input_dim();
    config.seed = seed;
    config = sae::apply_recipe(config, sae::examples::recipe_flag(args), train_rows);
    sae::examples::require_training_memory(config, train_config.batch_size);
    // Rows too many for memory are read from disk: a row-by-row shuffle would read them at random.
    if (data.too_large && !args.count("shuffle-block")) {
      train_config.shuffle_block = 4096;
      if (mpi.root())
        std::cout << "note: the rows do not fit in memory; batches are read from the memory map with --shuffle-block 4096 "
                     "--shuffle-window " << train_config.shuffle_window << " (give --shuffle-block to choose)\n";
    }

    // (Only rows too many for memory get a block without --shuffle-block: checked once they are opened.)
    sae::examples::refuse_idle_flags(args, {{"shuffle-window", train_config.shuffle_block > 0,
                                             "does nothing without --shuffle-block (rows are shuffled one by one)"}});

    // Trains, scores and writes out `model`, whichever architecture it is.
    const auto run_model = [&](auto& model) -> int {
      using Model = std::decay_t<decltype(model)>;
      constexpr bool topk = std::is_same_v<Model, sae::TopKAutoencoder<float>>;
      // Intermediate checkpoints only when asked; the final one is written after timing stops.
      struct PeriodicCheckpoint {
        std::filesystem::path dir;
        long every;
        const sae::data::DataMetadata* data;
        void on_epoch_end(const sae::EpochStats& s, const Model& m) const {
          if (every > 0 && s.epoch % every == 0 && s.epoch < s.epochs) sae::save_checkpoint(dir, m, *data);
        }
      };
      std::ostringstream sink;
      sae::ProgressPrinter progress(args.count("quiet") ? static_cast<std::ostream&>(sink) : std::cout);
      const auto fit = [&](auto&& trainer) {
        if (!mpi.root()) return trainer.fit(model, *data.train, data.validation.get(), sae::EarlyStop(early_stop));
        return trainer.fit(model, *data.train, data.validation.get(), progress, sae::CsvLogger(run_folder->stage("history.csv")),
                           PeriodicCheckpoint{run_folder->stage("checkpoint"), checkpoint_every, &data.metadata}, sae::EarlyStop(early_stop));
      };
      sae::report::TrainRunSetup record;
      record.source = data.source, record.split = data.split, record.data_fingerprint = data.fingerprint;
      record.train = train_config, record.adam = adam;
      if (use_sgd) record.sgd = sgd;
      record.early_stop = early_stop;
      record.exports = exports;
      // Trains with `optimizer`; data parallel under --mpi.
      const auto train_with = [&](auto optimizer) {
#if SAE_HAVE_MPI
        if (mpi.on()) {
          auto trainer = sae::make_trainer<Model>(train_config, std::move(optimizer), sae::mpi::GradientExchange(mpi.comm()));
          const auto summary = fit(trainer);
          record.data_parallel = sae::mpi::exchange_statistics(trainer.exchange(), mpi.size());
          if (mpi.root()) std::cout << sae::mpi::describe_exchange(*record.data_parallel) << "\n";
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
      std::cout << "data: " << data.source << "\n"
                << "split: " << data.split << " (" << train_rows << " train, " << data.validation->rows()
                << " validation)\n"
                << "model: " << Model::architecture << ", D=" << config.input_dim << " F=" << latents << " K=" << k
                << (topk ? ", encoder GEMM " + precision : std::string())
                << ", threads=" << sae::max_threads() << (mpi.on() ? " per rank, " + std::to_string(mpi.size()) + " ranks (data parallel)" : "")
                << "\n";
      const sae::TrainSummary summary = train_model();
      sae::save_checkpoint(run.stage("checkpoint"), model, data.metadata);
      std::cout << sae::report::write_train_report(run, record, model, *data.train, *data.validation, summary);
      sae::examples::test_fault_point("before-commit");
      run.commit();
      std::string exported;
      for (auto format : exports) exported += std::string(", ") + sae::name(format) + "/";
      std::cout << "wrote " << (run.out() / "metrics.json").string() << ", history.csv, activation_frequency.npy, checkpoint/"
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
