// sae-matryoshka: report 000 — a Matryoshka (BatchTopK, nested groups) SAE trained side by side
// with the TopK grid on the same data, the report's matched-config table, and the feature
// semantics of an early and a late layer (top latents by frequency, their top samples' CoT steps,
// the report's pattern heuristics).
#include "layer_analysis.hpp"
#include <sae/report/figures.hpp>

#include <sae/analysis/layer_semantics.hpp>

#include <cmath>
#include <fstream>
#include <map>

namespace {

using sae::index_t;
using sae::examples::fmt;
using sae::examples::md_cell;
using TopK = sae::TopKAutoencoder<float>;
using Matryoshka = sae::MatryoshkaAutoencoder<float>;
namespace fs = std::filesystem;
namespace an = sae::analysis;

struct Row {
  std::string name;
  long k = 0, d = 0;
  sae::metrics::Evaluation val;
};

// The report's published Matryoshka figures (LLaMA-3.2-1B layer 14, position 3): quoted, not measured.
constexpr double kPublishedDead = 0.625, kPublishedEv = 0.721;
constexpr long kPublishedActive = 769;

sae::io::Json row_json(const Row& r) {
  sae::io::Json j = sae::metrics::to_json(r.val);
  j["name"] = r.name;
  j["k"] = r.k;
  j["latent_dim"] = r.d;
  return j;
}

std::string row_md(const std::string& label, double dead, long active, double ev, double mat_eff) {
  const double eff = active > 0 ? ev / static_cast<double>(active) : 0.0;
  return "| " + label + " | " + fmt("%.1f%%", 100 * dead) + " | " + std::to_string(active) + " | " + fmt("%.1f%%", 100 * ev) +
         " | " + fmt("%.3f%%", 100 * eff) + " | " + (mat_eff > 0 ? fmt("%.2fx", eff / mat_eff) : "—") + " |\n";
}

// How common each pattern is among all samples: the chance level the ">= 3 of the top samples" rule
// has to beat.
std::string base_rates(const std::vector<an::CotFeatures>& features) {
  const auto share = [&](auto&& shows) {
    double n = 0;
    for (const auto& f : features) n += shows(f) ? 1 : 0;
    return fmt("%.0f%%", 100 * n / static_cast<double>(features.size()));
  };
  std::string out;
  for (an::Operation op : an::kOperations)
    out += std::string(out.empty() ? "" : ", ") + an::name(op) + " " + share([op](const an::CotFeatures& f) { return f.has(op); });
  return out + ", round numbers " + share([](const an::CotFeatures& f) { return f.round_number; });
}

std::string profile_table(const std::vector<an::LatentProfile>& latents, const sae::analysis::AnnotatedLayer& layer,
                          an::PatternRule rule) {
  std::ostringstream t;
  t << "| Rank | Latent | Activation freq | Mean magnitude | Detected patterns | Keywords (>= " << rule.min_samples
    << " top samples) |\n|---|---|---|---|---|---|\n";
  for (const auto& p : latents) {
    const auto pats = an::detect_patterns(p, layer.validation_features, rule);
    t << "| " << p.rank << " | " << p.latent << " | " << fmt("%.1f%%", 100 * p.frequency) << " | "
      << fmt("%.3f", p.mean_activation) << " | "
      << (pats.has_pattern() ? sae::examples::join(pats.patterns, ", ") : "Unknown/Mixed") << " | "
      << (pats.keywords.empty() ? "—" : sae::examples::join(pats.keywords, ", ")) << " |\n";
  }
  return t.str();
}

}  // namespace

int main(int argc, char** argv) {
  return sae::examples::run_main("sae-matryoshka", [&] {
    cxxopts::Options options("sae-matryoshka",
                             "Report 000: Matryoshka vs TopK on the same data, and feature semantics of two layers.");
    sae::examples::add_data_options(options, SAE_DEFAULT_DATA);
    sae::examples::FieldFlags field_flags(options);
    sae::examples::add_grid_options(options, field_flags, "5,10,20,100", "512,1024,2048", /*resumable=*/false);
    // clang-format off
    options.add_options("matryoshka")
      ("mat-latents", "Matryoshka dictionary size", cxxopts::value<long>()->default_value("2048"))
      ("mat-k", "Matryoshka mean latents per sample (BatchTopK keeps k x batch)", cxxopts::value<long>()->default_value("20"))
      ("mat-groups", "nested group sizes summing to --mat-latents (default F/16,F/16,F/8,F/4,F/2)",
       cxxopts::value<std::vector<long>>());
    sae::examples::add_early_layer_options(options, SAE_EARLY_DATA);
    options.add_options("semantics")
      ("sem-k", "K of the SAEs analysed", cxxopts::value<long>()->default_value("100"))
      ("sem-latents", "latent_dim of the SAEs analysed", cxxopts::value<long>()->default_value("512"))
      ("top-latents", "most frequent latents to analyse", cxxopts::value<long>()->default_value("20"))
      ("ranks", "extra rank ranges to list, e.g. 50-60,400-410", cxxopts::value<std::vector<std::string>>()->default_value(""))
      ("top-samples", "top-activating samples per latent", cxxopts::value<long>()->default_value("10"))
      ("min-samples", "a pattern counts when this many top samples show it", cxxopts::value<long>()->default_value("3"))
      ("out", "output directory", cxxopts::value<std::string>()->default_value("results/matryoshka"));
    // clang-format on
    const auto parsed = sae::examples::parse_args(options, argc, argv);
    if (!parsed) return 0;
    const auto& args = *parsed;
    const auto flags = sae::examples::read_grid_flags(args, field_flags);
    using sae::examples::int_flag;
    const long mat_latents = int_flag(args, "mat-latents", 1), mat_k = int_flag(args, "mat-k", 1, mat_latents);
    const long sem_k = int_flag(args, "sem-k", 1), sem_latents = int_flag(args, "sem-latents", 1);
    sae::examples::check_k_within_latents({sem_k}, {sem_latents});
    const long top_latents = int_flag(args, "top-latents", 1, sem_latents), top_samples = int_flag(args, "top-samples", 1, 1000000);
    const an::PatternRule rule{int_flag(args, "min-samples", 1, top_samples)};
    const auto ranges = sae::examples::rank_ranges_flag(args, "ranks", sem_latents);
    sae::MatryoshkaConfig mat_config;
    mat_config.num_latents = mat_latents;
    mat_config.k = mat_k;
    mat_config.seed = flags.train.seed;
    if (args.count("mat-groups"))
      for (long g : sae::examples::int_list_flag(args, "mat-groups", 1)) mat_config.group_sizes.push_back(g);

    // Data: the late layer (--data) for the comparison and semantics, the early layer for semantics.
    const auto layers = sae::examples::load_two_layers(args, flags.train.seed);
    const auto& late = layers.late;
    const auto& early = layers.early;
    mat_config.input_dim = late.data.train.cols();
    mat_config.validate("--mat-*");
    sae::io::RunDirectory run(args["out"].as<std::string>(), "sae-matryoshka");
    sae::examples::write_resolved_config(run, options, args);
    const fs::path out = run.out();
    std::cout << "late layer: " << late.data.source << "\nearly layer: " << early.data.source << "\n"
              << late.data.train.rows() << " train, " << late.data.validation.rows() << " validation rows (" << late.data.split
              << "), samples " << layers.samples_path << "\n";

    // 1. The TopK grid and the Matryoshka SAE on the late layer.
    std::vector<Row> topk;
    std::optional<TopK> semantics_late;
    const int count = static_cast<int>(flags.ks.size() * flags.latents.size());
    int index = 0;
    for (index_t d : flags.latents)
      for (index_t k : flags.ks) {
        const std::string name = "TopK K=" + std::to_string(k) + ", d=" + std::to_string(d);
        TopK model = sae::examples::train_topk(late.data, k, d, flags,
                                               "[" + std::to_string(++index) + "/" + std::to_string(count + 1) + " " + name + "]");
        topk.push_back({name, k, d, sae::metrics::evaluate(model, late.data.validation)});
        if (k == sem_k && d == sem_latents) semantics_late = std::move(model);
      }
    Matryoshka mat(mat_config);
    {
      auto trainer = sae::make_trainer<Matryoshka>(flags.train, sae::Adam<float>(flags.adam));
      trainer.fit(mat, late.data.train, &late.data.validation,
                  sae::ProgressPrinter(sae::examples::progress_output(),
                                       "[" + std::to_string(count + 1) + "/" + std::to_string(count + 1) +
                                           " Matryoshka k=" + std::to_string(mat_k) + ", d=" + std::to_string(mat_latents) + "]"));
    }
    const Row mrow{"Matryoshka (ours) k=" + std::to_string(mat_k) + ", d=" + std::to_string(mat_latents), mat_k, mat_latents,
                   sae::metrics::evaluate(mat, late.data.validation)};
    // Each nested prefix on its own, the property Matryoshka trains for.
    std::vector<std::pair<index_t, double>> prefix_ev;
    {
      const auto codes = mat.encode(late.data.validation);
      for (index_t m = 1; m <= mat.num_groups(); ++m)
        prefix_ev.emplace_back(mat.prefix_end(m),
                               sae::metrics::explained_variance(late.data.validation, mat.decode_prefix(codes, m)));
    }

    const auto closest = [&](auto distance) {
      return *std::min_element(topk.begin(), topk.end(), [&](const Row& a, const Row& b) { return distance(a) < distance(b); });
    };
    const Row dead_match = closest([&](const Row& r) { return std::abs(r.val.dead_fraction - mrow.val.dead_fraction); });
    const Row active_match = closest([&](const Row& r) {
      return std::abs(static_cast<double>(r.val.alive_latents - mrow.val.alive_latents));
    });
    const Row best = closest([](const Row& r) { return -r.val.explained_variance; });

    // 2. Semantics of both layers at (sem-k, sem-latents).
    if (!semantics_late)
      semantics_late = sae::examples::train_topk(late.data, sem_k, sem_latents, flags, "[semantics, late layer]");
    const TopK early_model = sae::examples::train_topk(early.data, sem_k, sem_latents, flags, "[semantics, early layer]");
    const auto early_sem = an::layer_semantics("early", early, early_model, top_latents, ranges, top_samples, rule);
    const auto late_sem = an::layer_semantics("late", late, *semantics_late, top_latents, ranges, top_samples, rule);

    // 3. Report.
    std::ostringstream md;
    const double mat_eff = mrow.val.ev_per_active_latent;
    md << "# TopK vs Matryoshka and feature semantics (report 000)\n\n"
       << "Late layer: `" << late.data.source << "`; early layer: `" << early.data.source << "`. " << late.data.train.rows()
       << " train / " << late.data.validation.rows() << " validation rows (" << late.data.split << "); metrics on validation. " << flags.train.epochs
       << " epochs, batch " << flags.train.batch_size << ", Adam lr " << flags.adam.lr
       << ". EV = 1 - SSE/SST (SAELens). Active latents = latents firing on at least one validation sample.\n\n"
       << "## Matched comparison\n\n"
       << "| Config | Death % | Active latents | EV | EV per active latent | vs Matryoshka (ours) |\n|---|---|---|---|---|---|\n"
       << row_md("**" + mrow.name + "**", mrow.val.dead_fraction, mrow.val.alive_latents, mrow.val.explained_variance, 0)
       << row_md("Matryoshka (published, LLaMA layer 14; quoted, not measured)", kPublishedDead, kPublishedActive,
                 kPublishedEv, 0)
       << row_md(dead_match.name + " — death-rate match", dead_match.val.dead_fraction, dead_match.val.alive_latents,
                 dead_match.val.explained_variance, mat_eff)
       << row_md(active_match.name + " — active-latent match", active_match.val.dead_fraction,
                 active_match.val.alive_latents, active_match.val.explained_variance, mat_eff)
       << row_md(best.name + " — best EV", best.val.dead_fraction, best.val.alive_latents, best.val.explained_variance,
                 mat_eff)
       << "\nMatryoshka inference threshold " << fmt("%.4f", mat.threshold()) << "; mean L0 at inference "
       << fmt("%.1f", mrow.val.l0) << " (trained with k=" << mat_k << ").\n\nEV of each nested prefix of the Matryoshka dictionary:\n\n"
       << "| Latents used | EV |\n|---|---|\n";
    for (const auto& [end, ev] : prefix_ev) md << "| 1-" << end << " | " << fmt("%.3f", ev) << " |\n";
    // Figure: EV against dictionary size — each Matryoshka prefix, and each TopK K across d.
    sae::report::Plotter plot(run.stage("figures"), !args.count("no-plots"));
    std::vector<sae::report::Plotter::Series> series;
    sae::report::Plotter::Series ms;
    ms.label = "Matryoshka k=" + std::to_string(mat_k) + ": prefix 1..m";
    for (const auto& [end, ev] : prefix_ev) ms.x.push_back(static_cast<double>(end)), ms.y.push_back(ev);
    series.push_back(ms);
    for (index_t k : flags.ks) {
      sae::report::Plotter::Series ts;
      ts.label = "TopK K=" + std::to_string(k);
      for (const auto& r : topk)
        if (r.k == k) ts.x.push_back(static_cast<double>(r.d)), ts.y.push_back(r.val.explained_variance);
      series.push_back(ts);
    }
    sae::report::Plotter::LineStyle style;
    style.log_x = true;
    plot.lines("ev_by_size", "Validation EV by dictionary size (latents used)", "latents", "explained variance", series,
               style);
    md << "\n![EV by dictionary size](figures/ev_by_size.png)\n";
    md << "\nAll TopK configs:\n\n| Config | Death % | Active latents | EV | EV per active latent | vs Matryoshka (ours) |\n"
       << "|---|---|---|---|---|---|\n";
    for (const auto& r : topk)
      md << row_md(r.name, r.val.dead_fraction, r.val.alive_latents, r.val.explained_variance, mat_eff);

    md << "\n## Feature semantics (K=" << sem_k << ", d=" << sem_latents << ")\n\n"
       << "Latents ranked by activation frequency on the validation rows; for each, its " << top_samples
       << " strongest samples' CoT steps. A pattern counts when at least " << rule.min_samples
       << " of them show it: addition (+), subtraction (binary -), multiplication (*), division (/), round numbers "
          "(100, 200, 500, 1000 as an operand or result). Question keywords (how many, total, sum, difference, product; "
          "whole words) are listed apart and do not make a latent \"clear\".\n\n"
       << "Base rates over all " << late.validation_features.size() << " validation samples: " << base_rates(late.validation_features)
       << ". A pattern shown by more than about a third of all samples is expected in 3 of 10 top samples by chance.\n\n";
    for (const auto* s : {&early_sem, &late_sem}) {
      const auto& layer = s == &early_sem ? early : late;
      md << "### " << (s == &early_sem ? "Early" : "Late") << " layer: `" << s->source << "` (EV "
         << fmt("%.3f", s->val.explained_variance) << ", death " << fmt("%.1f%%", 100 * s->val.dead_fraction) << ")\n\n"
         << profile_table(s->top, layer, rule) << "\nTop 3 samples of each latent (all " << top_samples
         << " are in semantics.json):\n\n";
      for (const auto& p : s->top) {
        md << "- latent " << p.latent << ":\n";
        for (std::size_t t = 0; t < std::min<std::size_t>(3, p.top.size()); ++t)
          md << "  - " << fmt("%.2f", p.top[t].activation) << ": `"
             << an::cot_line(layer.validation_samples[static_cast<std::size_t>(p.top[t].sample)]) << "`\n";
      }
      for (const auto& [range, ps] : s->ranges) md << "\nRanks " << range.label() << ":\n\n" << profile_table(ps, layer, rule);
      md << "\n";
    }
    const auto range_text = [](const an::SemanticsSummary& s) {
      return fmt("%.2f", s.min_mean_activation) + " - " + fmt("%.2f", s.max_mean_activation);
    };
    md << "### Side by side\n\n| Metric | Early | Late |\n|---|---|---|\n"
       << "| Latents with a clear pattern | " << early_sem.summary.with_pattern << "/" << early_sem.summary.latents << " | "
       << late_sem.summary.with_pattern << "/" << late_sem.summary.latents << " |\n"
       << "| Mean activation frequency | " << fmt("%.1f%%", 100 * early_sem.summary.mean_frequency) << " | "
       << fmt("%.1f%%", 100 * late_sem.summary.mean_frequency) << " |\n"
       << "| Mean-magnitude range | " << range_text(early_sem.summary) << " | " << range_text(late_sem.summary) << " |\n"
       << "| EV | " << fmt("%.3f", early_sem.val.explained_variance) << " | " << fmt("%.3f", late_sem.val.explained_variance)
       << " |\n";

    sae::io::Json comparison = sae::io::Json::object();
    comparison["matryoshka"] = row_json(mrow);
    comparison["matryoshka"]["threshold"] = static_cast<double>(mat.threshold());
    comparison["matryoshka"]["group_sizes"] = sae::io::Json::array();
    for (index_t g : mat.config().group_sizes) comparison["matryoshka"]["group_sizes"].push_back(g);
    comparison["matryoshka"]["prefix_explained_variance"] = sae::io::Json::array();
    for (const auto& [end, ev] : prefix_ev) comparison["matryoshka"]["prefix_explained_variance"].push_back(ev);
    comparison["published_matryoshka"] = sae::io::Json::object();
    comparison["published_matryoshka"]["dead_fraction"] = kPublishedDead;
    comparison["published_matryoshka"]["alive_latents"] = kPublishedActive;
    comparison["published_matryoshka"]["explained_variance"] = kPublishedEv;
    comparison["death_rate_match"] = dead_match.name;
    comparison["active_latent_match"] = active_match.name;
    comparison["best_topk"] = best.name;
    comparison["topk"] = sae::io::Json::array();
    for (const auto& r : topk) comparison["topk"].push_back(row_json(r));
    sae::io::Json semantics = sae::io::Json::object();
    semantics["early"] = an::to_json(early_sem, early, rule);
    semantics["late"] = an::to_json(late_sem, late, rule);

    sae::io::write_text_atomically(run.stage("comparison.json"), comparison.dump() + "\n");
    sae::save_checkpoint(run.stage("checkpoint"), mat);  // the Matryoshka SAE (sae-convert exports it)
    sae::io::write_text_atomically(run.stage("semantics.json"), semantics.dump() + "\n");
    sae::io::write_text_atomically(run.stage("report.md"), md.str());
    sae::examples::test_fault_point("before-commit");
    run.commit();
    std::cout << "\nMatryoshka: EV " << fmt("%.3f", mrow.val.explained_variance) << ", "
              << fmt("%.1f%%", 100 * mrow.val.dead_fraction) << " dead, " << mrow.val.alive_latents << " active\n"
              << "death-rate match: " << dead_match.name << "; active-latent match: " << active_match.name
              << "; best: " << best.name << "\nclear patterns: early " << early_sem.summary.with_pattern << "/"
              << early_sem.summary.latents << ", late " << late_sem.summary.with_pattern << "/" << late_sem.summary.latents
              << "\nwrote " << (out / "report.md").string() << ", comparison.json, semantics.json, checkpoint/, figures/ev_by_size"
              << (plot.available() ? ".png" : ".gp (no PNG: gnuplot unavailable or --no-plots)") << "\n";
    return 0;
  });
}
