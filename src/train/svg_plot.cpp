#include "train/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace tern::train {
namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '<')
      o += "&lt;";
    else if (ch == '>')
      o += "&gt;";
    else if (ch == '&')
      o += "&amp;";
    else
      o += ch;
  }
  return o;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

// "Nice" tick positions covering [lo, hi].
std::vector<double> ticks(double lo, double hi, int want) {
  const double span = hi - lo > 0 ? hi - lo : 1.0;
  const double raw = span / want, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag >= 5 ? 5 * mag : raw / mag >= 2 ? 2 * mag : mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) t.push_back(v);
  return t;
}

const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

}  // namespace

std::string line_chart_svg(const std::string& title, const std::string& x_label,
                           const std::string& y_label, const std::vector<Series>& series) {
  const double W = 720, H = 420, L = 70, R = 20, T = 40, B = 50;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series& s : series)
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i])) {
        x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
        y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
      }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
       "fill=\"white\"/>\n";
  o << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << esc(title)
    << "</text>\n";
  for (double t : ticks(y0, y1, 6))
    o << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << py(t) << "\" y2=\"" << py(t)
      << "\" stroke=\"#ddd\"/><text x=\"" << L - 6 << "\" y=\"" << py(t) + 4
      << "\" text-anchor=\"end\">" << num(t) << "</text>\n";
  for (double t : ticks(x0, x1, 8))
    o << "<line x1=\"" << px(t) << "\" x2=\"" << px(t) << "\" y1=\"" << H - B << "\" y2=\""
      << H - B + 5 << "\" stroke=\"black\"/><text x=\"" << px(t) << "\" y=\"" << H - B + 18
      << "\" text-anchor=\"middle\">" << num(t) << "</text>\n";
  o << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\""
    << H - T - B << "\" fill=\"none\" stroke=\"black\"/>\n";
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">"
    << esc(x_label) << "</text>\n<text transform=\"translate(16," << (T + H - B) / 2
    << ") rotate(-90)\" text-anchor=\"middle\">" << esc(y_label) << "</text>\n";
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const char* col = kColours[k % 6];
    o << "<polyline fill=\"none\" stroke=\"" << col << "\" stroke-width=\"1.5\" points=\"";
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i])) o << px(s.x[i]) << "," << py(s.y[i]) << " ";
    o << "\"/>\n";
    if (s.x.size() == 1)
      o << "<circle cx=\"" << px(s.x[0]) << "\" cy=\"" << py(s.y[0]) << "\" r=\"3\" fill=\"" << col
        << "\"/>\n";
    o << "<rect x=\"" << W - R - 150 << "\" y=\"" << T + 10 + 18 * double(k)
      << "\" width=\"12\" height=\"3\" fill=\"" << col << "\"/><text x=\"" << W - R - 132
      << "\" y=\"" << T + 15 + 18 * double(k) << "\">" << esc(s.label) << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

std::string heatmap_svg(const std::string& title, const std::string& x_label,
                        const std::vector<std::string>& row_labels,
                        const std::vector<std::vector<double>>& cells, double lo, double hi,
                        const std::string& scale_note) {
  const size_t rows = cells.size(), cols = rows ? cells[0].size() : 0;
  const double L = 110, T = 40, cell_h = 14, W = 720, R = 20;
  const double cell_w = cols ? (W - L - R) / double(cols) : 1;
  const double H = T + cell_h * double(rows) + 60;
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" "
       "fill=\"white\"/>\n<text x=\""
    << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << esc(title) << "</text>\n";
  for (size_t r = 0; r < rows; ++r) {
    o << "<text x=\"" << L - 6 << "\" y=\"" << T + cell_h * (double(r) + 0.75)
      << "\" text-anchor=\"end\">" << esc(r < row_labels.size() ? row_labels[r] : "")
      << "</text>\n";
    for (size_t k = 0; k < cols; ++k) {
      const double v = std::clamp((cells[r][k] - lo) / (hi > lo ? hi - lo : 1.0), 0.0, 1.0);
      const int red = int(255 - 230 * v), green = int(255 - 180 * v), blue = int(255 - 80 * v);
      o << "<rect x=\"" << L + cell_w * double(k) << "\" y=\"" << T + cell_h * double(r)
        << "\" width=\"" << cell_w + 0.5 << "\" height=\"" << cell_h << "\" fill=\"rgb(" << red
        << "," << green << "," << blue << ")\"/>\n";
    }
  }
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << T + cell_h * double(rows) + 20
    << "\" text-anchor=\"middle\">" << esc(x_label) << "</text>\n<text x=\"" << L << "\" y=\""
    << T + cell_h * double(rows) + 42 << "\">" << esc(scale_note) << "</text>\n</svg>\n";
  return o.str();
}

std::string timeline_svg(const std::string& title, const std::string& x_label,
                         const std::vector<TimelineRow>& rows,
                         const std::vector<std::string>& legend) {
  const double W = 960, L = 110, R = 20, T = 40, row_h = 22, gap = 4, B = 70;
  const double H = T + double(rows.size()) * (row_h + gap) + B;
  double end = 0;
  for (const TimelineRow& r : rows)
    for (const TimelineBox& b : r.boxes) end = std::max(end, b.end);
  if (end <= 0) end = 1;
  const double pw = W - L - R;
  auto X = [&](double t) { return L + t / end * pw; };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" << esc(title)
    << "</text>\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const double y = T + double(i) * (row_h + gap);
    const TimelineRow& r = rows[i];
    if (r.label.empty()) continue;
    o << "<text x=\"" << L - 6 << "\" y=\"" << y + row_h * 0.7 << "\" text-anchor=\"end\">"
      << esc(r.label) << "</text>\n";
    o << "<rect x=\"" << L << "\" y=\"" << y << "\" width=\"" << pw << "\" height=\"" << row_h
      << "\" fill=\"#f2f2f2\"/>\n";
    for (const TimelineBox& b : r.boxes) {
      const double x0 = X(b.start), w = std::max(0.5, X(b.end) - x0);
      const char* fill = kColours[size_t(b.colour) % (sizeof kColours / sizeof *kColours)];
      o << "<rect x=\"" << num(x0) << "\" y=\"" << y << "\" width=\"" << num(w) << "\" height=\""
        << row_h << "\" fill=\"" << fill << "\" stroke=\"white\" stroke-width=\"0.5\"/>\n";
      if (!b.label.empty() && w >= 7.0 * double(b.label.size()))
        o << "<text x=\"" << num(x0 + w / 2) << "\" y=\"" << y + row_h * 0.7
          << "\" text-anchor=\"middle\" fill=\"white\">" << esc(b.label) << "</text>\n";
    }
  }
  const double axis_y = T + double(rows.size()) * (row_h + gap) + 4;
  o << "<line x1=\"" << L << "\" y1=\"" << axis_y << "\" x2=\"" << L + pw << "\" y2=\"" << axis_y
    << "\" stroke=\"black\"/>\n";
  for (double t : ticks(0, end, 8))
    o << "<text x=\"" << num(X(t)) << "\" y=\"" << axis_y + 14 << "\" text-anchor=\"middle\">"
      << num(t) << "</text>\n";
  o << "<text x=\"" << L + pw / 2 << "\" y=\"" << axis_y + 30 << "\" text-anchor=\"middle\">"
    << esc(x_label) << "</text>\n";
  double lx = L;
  for (size_t i = 0; i < legend.size(); ++i) {
    o << "<rect x=\"" << lx << "\" y=\"" << axis_y + 40 << "\" width=\"12\" height=\"12\" fill=\""
      << kColours[i % (sizeof kColours / sizeof *kColours)] << "\"/>\n";
    o << "<text x=\"" << lx + 16 << "\" y=\"" << axis_y + 50 << "\">" << esc(legend[i])
      << "</text>\n";
    lx += 24 + 7.0 * double(legend[i].size());
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace tern::train
