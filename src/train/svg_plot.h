// Small SVG charts for run pictures: line charts (loss curves) and heatmaps (expert load per
// layer over training). Self-contained SVG 1.1 text, viewable in any browser; no library.
#pragma once

#include <string>
#include <vector>

namespace tern::train {

struct Series {
  std::string label;
  std::vector<double> x, y;
};

// A line chart of the series with axes, ticks and a legend.
std::string line_chart_svg(const std::string& title, const std::string& x_label,
                           const std::string& y_label, const std::vector<Series>& series);

// rows × cols cells coloured by value in [lo, hi] (white → dark blue), with row labels and a
// colour-scale note. cells[r][c].
std::string heatmap_svg(const std::string& title, const std::string& x_label,
                        const std::vector<std::string>& row_labels,
                        const std::vector<std::vector<double>>& cells, double lo, double hi,
                        const std::string& scale_note);

// A Gantt chart: one row per lane (a pipeline rank), boxes placed by start and end on a shared
// time axis, filled with colour `colour` (an index into the legend's names) and labelled when
// wide enough. Rows with an empty label are spacers between groups.
struct TimelineBox {
  double start = 0, end = 0;
  std::string label;
  int colour = 0;
};
struct TimelineRow {
  std::string label;
  std::vector<TimelineBox> boxes;
};
std::string timeline_svg(const std::string& title, const std::string& x_label,
                         const std::vector<TimelineRow>& rows,
                         const std::vector<std::string>& legend);

}  // namespace tern::train
