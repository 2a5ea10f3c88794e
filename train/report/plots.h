// Pictures for the evaluation report (tools/eval): line plots (mAP against capacity or MACs, the training
// curves) and heatmaps (the compatibility matrix), as SVG and PNG. Tested by tests/train/test_plots.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace scpn::train::plots {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};
std::string hex(Rgb color);  // "#1f77b4"

// The heatmap's colour scale: t ∈ [0, 1] (clamped; NaN → grey) from dark purple through teal to yellow,
// perceptually ordered like viridis (piecewise-linear through nine of its colours).
Rgb colormap(double t);

// Tick positions at "nice" steps (1, 2 or 5 × 10^k) covering [lo, hi], about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target);
// A tick label: the shortest of %.0f … %.4f that shows the step ("0.2", "15", "0.05").
std::string tick_label(double value, double step);

// A drawing surface in pixel coordinates, origin at the top left, y downwards. Every picture is drawn once,
// through this interface: SvgCanvas turns it into the SVG (the primary, readable picture), RasterCanvas
// into the PNG's pixels.
class Canvas {
 public:
  enum class Anchor { start, middle, end };
  virtual ~Canvas() = default;
  // `css_class` names the element's role in the SVG ("cell", "point", …) so readers and tests can find it.
  virtual void rect(double x, double y, double w, double h, Rgb fill, const std::string& css_class = "") = 0;
  virtual void polyline(const std::vector<double>& xs, const std::vector<double>& ys, Rgb color, double width,
                        bool dashed = false, const std::string& css_class = "") = 0;
  // A circle of radius r with a stroke of `color`, filled with `color` or (filled = false) white.
  virtual void circle(double cx, double cy, double r, Rgb color, bool filled, const std::string& css_class = "") = 0;
  // Text whose baseline starts, centres or ends at (x, y); vertical text reads bottom to top, rotated
  // about (x, y).
  virtual void text(double x, double y, const std::string& s, double size, Anchor anchor = Anchor::start,
                    bool vertical = false, Rgb color = {}) = 0;
  virtual void line(double x1, double y1, double x2, double y2, Rgb color, double width, bool dashed = false,
                    const std::string& css_class = "") {
    polyline({x1, x2}, {y1, y2}, color, width, dashed, css_class);
  }
  // Elements drawn between the two calls belong together (an SVG <g class="...">), so readers and tests can
  // tell the parts of a composed picture apart; pixels have no groups.
  virtual void begin_group(const std::string& css_class) {}
  virtual void end_group() {}
};

// Another canvas, shifted by (dx, dy): several pictures composed into one.
class ShiftedCanvas : public Canvas {
 public:
  ShiftedCanvas(Canvas& base, double dx, double dy) : base_(base), dx_(dx), dy_(dy) {}
  void rect(double x, double y, double w, double h, Rgb fill, const std::string& css_class = "") override;
  void polyline(const std::vector<double>& xs, const std::vector<double>& ys, Rgb color, double width,
                bool dashed = false, const std::string& css_class = "") override;
  void line(double x1, double y1, double x2, double y2, Rgb color, double width, bool dashed = false,
            const std::string& css_class = "") override;
  void circle(double cx, double cy, double r, Rgb color, bool filled, const std::string& css_class = "") override;
  void text(double x, double y, const std::string& s, double size, Anchor anchor = Anchor::start, bool vertical = false,
            Rgb color = {}) override;
  void begin_group(const std::string& css_class) override { base_.begin_group(css_class); }
  void end_group() override { base_.end_group(); }

 private:
  Canvas& base_;
  double dx_, dy_;
};

// 8-bit RGB pixels, row-major, top row first.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  Rgb at(int x, int y) const;
};

class SvgCanvas : public Canvas {
 public:
  SvgCanvas(int width, int height);  // starts with a white background
  void rect(double x, double y, double w, double h, Rgb fill, const std::string& css_class = "") override;
  void polyline(const std::vector<double>& xs, const std::vector<double>& ys, Rgb color, double width,
                bool dashed = false, const std::string& css_class = "") override;
  void line(double x1, double y1, double x2, double y2, Rgb color, double width, bool dashed = false,
            const std::string& css_class = "") override;
  void circle(double cx, double cy, double r, Rgb color, bool filled, const std::string& css_class = "") override;
  void text(double x, double y, const std::string& s, double size, Anchor anchor = Anchor::start, bool vertical = false,
            Rgb color = {}) override;
  void begin_group(const std::string& css_class) override;
  void end_group() override;
  std::string svg() const;  // the complete document

 private:
  int width_, height_;
  std::string body_;
};

// The rasteriser: anti-aliased lines, area-coverage rectangles, text from stb_easy_font.
class RasterCanvas : public Canvas {
 public:
  RasterCanvas(int width, int height);  // white
  void rect(double x, double y, double w, double h, Rgb fill, const std::string& css_class = "") override;
  void polyline(const std::vector<double>& xs, const std::vector<double>& ys, Rgb color, double width,
                bool dashed = false, const std::string& css_class = "") override;
  void circle(double cx, double cy, double r, Rgb color, bool filled, const std::string& css_class = "") override;
  void text(double x, double y, const std::string& s, double size, Anchor anchor = Anchor::start, bool vertical = false,
            Rgb color = {}) override;
  const Image& image() const { return image_; }

 private:
  // Blends `color` into pixel (x, y) with coverage alpha ∈ [0, 1]; pixels outside are ignored.
  void blend(int x, int y, Rgb color, double alpha);
  Image image_;
};

// PNG bytes of an image (stb_image_write), and writing them atomically.
std::string encode_png(const Image& image);
void write_png(const std::string& path, const Image& image);

// ---- the two kinds of picture ----------------------------------------------------------------------

struct Series {
  std::string label;
  std::vector<double> x, y;  // same length; points with a NaN coordinate are left out
  std::vector<bool> filled;  // per point: filled marker (e.g. a trained capacity) or hollow; empty = all filled
  Rgb color;
  bool dashed = false;
  bool markers = true;  // a circle at every point; off for long curves (training steps)
};

struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  // Axis ranges; lo == hi means "from the data" (including 0, rounded out to ticks).
  double x_lo = 0, x_hi = 0, y_lo = 0, y_hi = 0;
  std::string filled_note, hollow_note;  // legend text for the two markers; empty = no marker legend
  int width = 760, height = 460;
};

struct Heatmap {
  std::string title, x_label, y_label;
  std::vector<std::string> row_labels, col_labels;
  std::vector<std::vector<double>> values;  // [row][col]
  double v_lo = 0, v_hi = 1;                // colour scale range (v_lo < v_hi)
  int cell = 48;                            // cell size in pixels
};

// Picture sizes and drawing; errors name the plot and what is wrong (sizes, ranges).
void draw_line_plot(Canvas& canvas, const LinePlot& plot);
void heatmap_size(const Heatmap& map, int& width, int& height);
void draw_heatmap(Canvas& canvas, const Heatmap& map);
// The heatmap cell (row, col)'s top-left corner and its colour, as draw_heatmap places and paints it.
void heatmap_cell(const Heatmap& map, size_t row, size_t col, double& x, double& y, Rgb& color);

std::string line_plot_svg(const LinePlot& plot);
Image line_plot_image(const LinePlot& plot);
std::string heatmap_svg(const Heatmap& map);
Image heatmap_image(const Heatmap& map);

// Writes <stem>.svg and <stem>.png atomically.
void write_line_plot(const std::string& stem, const LinePlot& plot);
void write_heatmap(const std::string& stem, const Heatmap& map);

// s with &, <, >, " and ' written as entities: text for SVG and HTML.
std::string xml_escape(const std::string& s);

}  // namespace scpn::train::plots
