// Figures of the report programs through gnuplot: each figure's data and script are written next to
// the PNG, gnuplot renders to a temporary name, and the PNG is renamed into place. Without gnuplot
// (or with plots off) the data and scripts are still written, and the caller is told once.
#pragma once

#include <sae/io/atomic_file.hpp>
#include <sae/report/text.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace sae::report {

class Plotter {
 public:
  // enabled = false: write data and scripts only. `note` hears once that gnuplot is missing.
  Plotter(std::filesystem::path dir, bool enabled, std::ostream& note = std::cout) : dir_(std::move(dir)) {
    available_ = enabled && std::system("command -v gnuplot >/dev/null 2>&1") == 0;
    if (enabled && !available_)
      note << "note: gnuplot not found; writing figure data and gnuplot scripts without PNGs "
              "(apt-get install gnuplot-nox)\n";
    std::filesystem::create_directories(dir_);
  }

  bool available() const { return available_; }

  // values[r][c] drawn as a labelled grid: rows bottom-up = row_labels, columns = col_labels.
  void heatmap(const std::string& name, const std::string& title, const std::string& row_axis,
               const std::vector<std::string>& row_labels, const std::string& col_axis,
               const std::vector<std::string>& col_labels, const std::vector<std::vector<double>>& values,
               const std::string& cell_format) {
    std::ostringstream dat;
    for (std::size_t r = 0; r < values.size(); ++r)
      for (std::size_t c = 0; c < values[r].size(); ++c) dat << c << ' ' << r << ' ' << values[r][c] << '\n';
    write_text_file(dir_ / (name + ".dat"), dat.str());
    std::ostringstream gp;
    gp << "set title '" << title << "'\nset xlabel '" << col_axis << "'\nset ylabel '" << row_axis << "'\n"
       << "set xtics (" << tics(col_labels) << ")\nset ytics (" << tics(row_labels) << ")\n"
       << "set xrange [-0.5:" << col_labels.size() - 0.5 << "]\nset yrange [-0.5:" << row_labels.size() - 0.5 << "]\n"
       << "set termoption noenhanced\n"
       << "set palette defined (0 '#f7fbff', 1 '#4292c6')\nunset key\n"
       << "plot '" << name << ".dat' using 1:2:3 with image, '' using 1:2:(sprintf('" << cell_format
       << "', $3)) with labels font ',11' tc rgb 'black'\n";
    render(name, gp.str(), 640, 480);
  }

  // One line per series (x, y); points marked in `highlight` are circled and named in the key by
  // `highlight_label`; `band` shades an x interval (e.g. a rank range).
  struct Series {
    std::string label;
    std::vector<double> x, y;
    std::vector<bool> highlight;  // empty = none
  };
  struct LineStyle {
    bool log_x = false, log_y = false, points = true;
    bool connect = true;  // false: points only (a scatter)
    std::string highlight_label = "Pareto-optimal";
    std::optional<std::pair<double, double>> band;
    std::string band_label;
    std::string key = "bottom right";
  };
  void lines(const std::string& name, const std::string& title, const std::string& x_axis, const std::string& y_axis,
             const std::vector<Series>& series, const LineStyle& style) {
    std::ostringstream dat;
    for (const auto& s : series) {
      dat << "# " << s.label << '\n';
      for (std::size_t i = 0; i < s.x.size(); ++i)
        dat << s.x[i] << ' ' << s.y[i] << ' ' << (i < s.highlight.size() && s.highlight[i] ? 1 : 0) << '\n';
      dat << "\n\n";
    }
    write_text_file(dir_ / (name + ".dat"), dat.str());
    std::ostringstream gp;
    gp << "set title '" << title << "'\nset xlabel '" << x_axis << "'\nset ylabel '" << y_axis << "'\n"
       << "set termoption noenhanced\n" << (style.log_x ? "set logscale x\n" : "")
       << (style.log_y ? "set logscale y\n" : "") << "set key " << style.key << "\nset grid\n";
    if (style.band)
      gp << "set object 1 rect from " << style.band->first << ", graph 0 to " << style.band->second
         << ", graph 1 fc rgb '#fdd49e' fs solid 0.5 noborder behind\n"
         << "set label 1 '" << style.band_label << "' at " << style.band->first << ", graph 0.95 offset 0.5,0\n";
    gp << "plot ";
    for (std::size_t i = 0; i < series.size(); ++i)
      gp << (i ? ", " : "") << "'" << name << ".dat' index " << i << " using 1:2 with "
         << (!style.connect ? "points pt 7 ps 1.5" : style.points ? "linespoints lw 2 pt 7" : "lines lw 2") << " title '" << series[i].label << "'";
    bool any = false;
    for (const auto& s : series)
      for (std::size_t i = 0; i < s.highlight.size(); ++i) any = any || s.highlight[i];
    if (any)
      gp << ", '" << name << ".dat' using 1:($3 > 0 ? $2 : 1/0) with points pt 6 ps 2.5 lc rgb 'black' title '"
         << style.highlight_label << "'";
    gp << "\n";
    render(name, gp.str(), 720, 480);
  }

 private:
  static std::string tics(const std::vector<std::string>& labels) {
    std::string t;
    for (std::size_t i = 0; i < labels.size(); ++i) t += (i ? ", '" : "'") + labels[i] + "' " + std::to_string(i);
    return t;
  }

  void render(const std::string& name, const std::string& body, int w, int h) {
    const std::string tmp_png = name + ".png.tmp";
    const std::string script = "set terminal pngcairo size " + std::to_string(w) + "," + std::to_string(h) +
                               "\nset output '" + tmp_png + "'\n" + body;
    write_text_file(dir_ / (name + ".gp"), script);
    if (!available_) return;
    const std::string cmd = "cd '" + dir_.string() + "' && gnuplot '" + name + ".gp' 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::cerr << "warning: gnuplot failed on " << (dir_ / (name + ".gp")).string() << "\n";
      return;
    }
    std::error_code ec;
    std::filesystem::rename(dir_ / tmp_png, dir_ / (name + ".png"), ec);
    if (ec) std::cerr << "warning: cannot move " << tmp_png << " into place: " << ec.message() << "\n";
  }

  std::filesystem::path dir_;
  bool available_ = false;
};

}  // namespace sae::report
