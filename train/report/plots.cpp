// The report's pictures: SVG elements and a small rasteriser behind one Canvas interface, and the line
// plot and heatmap layouts drawn on it (see plots.h). The single translation unit that compiles
// stb_image_write; stb_easy_font supplies the PNG's bitmap text.
#include "train/report/plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>
#include <stb/stb_easy_font.h>

#include "engine/error.h"
#include "train/atomic_write.h"

namespace scpn::train::plots {

namespace {

const Rgb kBlack{0, 0, 0}, kWhite{255, 255, 255}, kGrid{229, 229, 229}, kAxis{64, 64, 64};

// Numbers in SVG attributes: two decimals at most, no trailing zeros.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}


std::string class_attr(const std::string& css_class) {
  return css_class.empty() ? "" : " class=\"" + xml_escape(css_class) + "\"";
}

// stb_easy_font draws glyphs 7 units tall above the baseline, 6 units apart; one unit = size / 10 px
// makes the PNG text about as large as the SVG's sans-serif text of that size.
constexpr double kFontUnitsPerPx = 10.0;
constexpr double kCapUnits = 7.0;

}  // namespace

std::string hex(Rgb c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}

Rgb colormap(double t) {
  // viridis at 0, 1/8, …, 1
  static const Rgb stops[9] = {{68, 1, 84},    {71, 45, 123},  {59, 82, 139},  {44, 114, 142}, {33, 145, 140},
                               {40, 174, 128}, {94, 201, 98},  {173, 220, 48}, {253, 231, 37}};
  if (std::isnan(t)) return {160, 160, 160};
  t = std::clamp(t, 0.0, 1.0) * 8.0;
  int i = std::min(int(t), 7);
  double f = t - i;
  auto mix = [f](uint8_t a, uint8_t b) { return uint8_t(std::lround(a + (b - a) * f)); };
  return {mix(stops[i].r, stops[i + 1].r), mix(stops[i].g, stops[i + 1].g), mix(stops[i].b, stops[i + 1].b)};
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  SCPN_CHECK(std::isfinite(lo) && std::isfinite(hi) && target >= 1, "nice_ticks: bad range [", lo, ", ", hi, "]");
  if (hi <= lo) hi = lo + 1;
  double raw = (hi - lo) / target, mag = std::pow(10.0, std::floor(std::log10(raw))), norm = raw / mag;
  double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  std::vector<double> ticks;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step; k += 1) ticks.push_back(k * step);
  return ticks;
}

std::string tick_label(double value, double step) {
  int decimals = std::clamp(int(-std::floor(std::log10(step) + 1e-9)), 0, 6);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  std::string s = buf;
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // "-0.0" → "0.0"
  return s;
}

Rgb Image::at(int x, int y) const {
  SCPN_CHECK(x >= 0 && y >= 0 && x < width && y < height, "Image::at: (", x, ", ", y, ") outside ", width, "x", height);
  const uint8_t* p = &rgb[(size_t(y) * width + x) * 3];
  return {p[0], p[1], p[2]};
}

// ---- SVG ---------------------------------------------------------------------------------------------

SvgCanvas::SvgCanvas(int width, int height) : width_(width), height_(height) {
  rect(0, 0, width, height, kWhite, "background");
}

void SvgCanvas::rect(double x, double y, double w, double h, Rgb fill, const std::string& css_class) {
  body_ += "<rect" + class_attr(css_class) + " x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(w) +
           "\" height=\"" + num(h) + "\" fill=\"" + hex(fill) + "\"/>\n";
}

void SvgCanvas::polyline(const std::vector<double>& xs, const std::vector<double>& ys, Rgb color, double width,
                         bool dashed, const std::string& css_class) {
  std::string points;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (i) points += ' ';
    points += num(xs[i]);
    points += ',';
    points += num(ys[i]);
  }
  body_ += "<polyline" + class_attr(css_class) + " points=\"" + points + "\" fill=\"none\" stroke=\"" + hex(color) +
           "\" stroke-width=\"" + num(width) + "\"" + (dashed ? " stroke-dasharray=\"6 4\"" : "") +
           " stroke-linejoin=\"round\"/>\n";
}

void SvgCanvas::line(double x1, double y1, double x2, double y2, Rgb color, double width, bool dashed,
                     const std::string& css_class) {
  body_ += "<line" + class_attr(css_class) + " x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) +
           "\" y2=\"" + num(y2) + "\" stroke=\"" + hex(color) + "\" stroke-width=\"" + num(width) + "\"" +
           (dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>\n";
}

void SvgCanvas::circle(double cx, double cy, double r, Rgb color, bool filled, const std::string& css_class) {
  body_ += "<circle" + class_attr(css_class) + " cx=\"" + num(cx) + "\" cy=\"" + num(cy) + "\" r=\"" + num(r) +
           "\" fill=\"" + hex(filled ? color : kWhite) + "\" stroke=\"" + hex(color) + "\" stroke-width=\"1.5\"/>\n";
}

void SvgCanvas::text(double x, double y, const std::string& s, double size, Anchor anchor, bool vertical, Rgb color) {
  const char* anchors[] = {"start", "middle", "end"};
  body_ += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" font-size=\"" + num(size) + "\" text-anchor=\"" +
           anchors[int(anchor)] + "\"" + (color == kBlack ? "" : " fill=\"" + hex(color) + "\"") +
           (vertical ? " transform=\"rotate(-90 " + num(x) + " " + num(y) + ")\"" : "") + ">" + xml_escape(s) +
           "</text>\n";
}

void SvgCanvas::begin_group(const std::string& css_class) { body_ += "<g" + class_attr(css_class) + ">\n"; }

void SvgCanvas::end_group() { body_ += "</g>\n"; }

std::string SvgCanvas::svg() const {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
         std::to_string(width_) + "\" height=\"" + std::to_string(height_) + "\" viewBox=\"0 0 " +
         std::to_string(width_) + " " + std::to_string(height_) +
         "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n" + body_ + "</svg>\n";
}

// ---- shifted -----------------------------------------------------------------------------------------

void ShiftedCanvas::rect(double x, double y, double w, double h, Rgb fill, const std::string& css_class) {
  base_.rect(x + dx_, y + dy_, w, h, fill, css_class);
}

void ShiftedCanvas::polyline(const std::vector<double>& xs, const std::vector<double>& ys, Rgb color, double width,
                             bool dashed, const std::string& css_class) {
  std::vector<double> sx(xs), sy(ys);
  for (double& x : sx) x += dx_;
  for (double& y : sy) y += dy_;
  base_.polyline(sx, sy, color, width, dashed, css_class);
}

void ShiftedCanvas::line(double x1, double y1, double x2, double y2, Rgb color, double width, bool dashed,
                         const std::string& css_class) {
  base_.line(x1 + dx_, y1 + dy_, x2 + dx_, y2 + dy_, color, width, dashed, css_class);
}

void ShiftedCanvas::circle(double cx, double cy, double r, Rgb color, bool filled, const std::string& css_class) {
  base_.circle(cx + dx_, cy + dy_, r, color, filled, css_class);
}

void ShiftedCanvas::text(double x, double y, const std::string& s, double size, Anchor anchor, bool vertical, Rgb color) {
  base_.text(x + dx_, y + dy_, s, size, anchor, vertical, color);
}

// ---- raster ------------------------------------------------------------------------------------------

RasterCanvas::RasterCanvas(int width, int height) {
  SCPN_CHECK(width >= 1 && height >= 1, "RasterCanvas: size ", width, "x", height, " is empty");
  image_.width = width;
  image_.height = height;
  image_.rgb.assign(size_t(width) * height * 3, 255);
}

void RasterCanvas::blend(int x, int y, Rgb c, double alpha) {
  if (x < 0 || y < 0 || x >= image_.width || y >= image_.height || alpha <= 0) return;
  alpha = std::min(alpha, 1.0);
  uint8_t* p = &image_.rgb[(size_t(y) * image_.width + x) * 3];
  const uint8_t src[3] = {c.r, c.g, c.b};
  for (int k = 0; k < 3; ++k) p[k] = uint8_t(std::lround(p[k] + (src[k] - p[k]) * alpha));
}

void RasterCanvas::rect(double x, double y, double w, double h, Rgb fill, const std::string&) {
  // Each pixel gets the fraction of its area the rectangle covers: exact colours inside, soft edges.
  int x0 = int(std::floor(x)), x1 = int(std::ceil(x + w)), y0 = int(std::floor(y)), y1 = int(std::ceil(y + h));
  for (int py = std::max(y0, 0); py < std::min(y1, image_.height); ++py) {
    double cover_y = std::min(py + 1.0, y + h) - std::max(double(py), y);
    for (int px = std::max(x0, 0); px < std::min(x1, image_.width); ++px) {
      double cover_x = std::min(px + 1.0, x + w) - std::max(double(px), x);
      blend(px, py, fill, cover_x * cover_y);
    }
  }
}

void RasterCanvas::polyline(const std::vector<double>& xs, const std::vector<double>& ys, Rgb color, double width,
                            bool dashed, const std::string&) {
  if (xs.size() < 2) return;
  // Coverage of the whole polyline first (the maximum over its segments), blended once, so joints are not
  // painted twice. Coverage falls off linearly over the last pixel: cheap anti-aliasing.
  double half = width / 2, pad = half + 1;
  int bx0 = int(std::floor(*std::min_element(xs.begin(), xs.end()) - pad)), by0 = int(std::floor(*std::min_element(ys.begin(), ys.end()) - pad));
  int bx1 = int(std::ceil(*std::max_element(xs.begin(), xs.end()) + pad)), by1 = int(std::ceil(*std::max_element(ys.begin(), ys.end()) + pad));
  bx0 = std::max(bx0, 0), by0 = std::max(by0, 0);
  bx1 = std::min(bx1, image_.width), by1 = std::min(by1, image_.height);
  if (bx1 <= bx0 || by1 <= by0) return;
  int bw = bx1 - bx0;
  std::vector<float> cover(size_t(bw) * (by1 - by0), 0.f);
  const double dash = 6, gap = 4;  // as the SVG's stroke-dasharray
  double travelled = 0;
  for (size_t i = 0; i + 1 < xs.size(); ++i) {
    double ax = xs[i], ay = ys[i], dx = xs[i + 1] - ax, dy = ys[i + 1] - ay, len2 = dx * dx + dy * dy, len = std::sqrt(len2);
    int sx0 = std::max(bx0, int(std::floor(std::min(ax, ax + dx) - pad))), sx1 = std::min(bx1, int(std::ceil(std::max(ax, ax + dx) + pad)));
    int sy0 = std::max(by0, int(std::floor(std::min(ay, ay + dy) - pad))), sy1 = std::min(by1, int(std::ceil(std::max(ay, ay + dy) + pad)));
    for (int py = sy0; py < sy1; ++py)
      for (int px = sx0; px < sx1; ++px) {
        double cx = px + 0.5 - ax, cy = py + 0.5 - ay;
        double t = len2 > 0 ? std::clamp((cx * dx + cy * dy) / len2, 0.0, 1.0) : 0.0;
        double ex = cx - t * dx, ey = cy - t * dy, d = std::sqrt(ex * ex + ey * ey);
        if (dashed && std::fmod(travelled + t * len, dash + gap) > dash) continue;
        float a = float(std::clamp(half + 0.5 - d, 0.0, 1.0));
        float& slot = cover[size_t(py - by0) * bw + (px - bx0)];
        slot = std::max(slot, a);
      }
    travelled += len;
  }
  for (int py = by0; py < by1; ++py)
    for (int px = bx0; px < bx1; ++px) blend(px, py, color, cover[size_t(py - by0) * bw + (px - bx0)]);
}

void RasterCanvas::circle(double cx, double cy, double r, Rgb color, bool filled, const std::string&) {
  const double stroke = 1.5;
  int x0 = int(std::floor(cx - r - 2)), x1 = int(std::ceil(cx + r + 2));
  int y0 = int(std::floor(cy - r - 2)), y1 = int(std::ceil(cy + r + 2));
  for (int py = y0; py < y1; ++py)
    for (int px = x0; px < x1; ++px) {
      double d = std::hypot(px + 0.5 - cx, py + 0.5 - cy);
      blend(px, py, filled ? color : kWhite, std::clamp(r + 0.5 - d, 0.0, 1.0));
      blend(px, py, color, std::clamp(stroke / 2 + 0.5 - std::abs(d - r), 0.0, 1.0));
    }
}

void RasterCanvas::text(double x, double y, const std::string& s, double size, Anchor anchor, bool vertical, Rgb color) {
  // stb_easy_font covers printable ASCII only: anything else (UTF-8 bytes) becomes '?'.
  std::string ascii;
  for (char c : s) ascii += (c >= 32 && c < 127) ? c : '?';
  if (ascii.empty()) return;
  const double unit = size / kFontUnitsPerPx;
  double width = stb_easy_font_width(ascii.data()) * unit;
  double shift = anchor == Anchor::start ? 0 : anchor == Anchor::middle ? -width / 2 : -width;
  // At most 64 bytes per quad and 16 quads per glyph ("270 bytes per character" is the header's average;
  // digits like 8 need more, and a short buffer silently drops segments).
  std::vector<char> quads(ascii.size() * 64 * 16 + 64);
  int count = stb_easy_font_print(0, 0, ascii.data(), nullptr, quads.data(), int(quads.size()));
  for (int q = 0; q < count; ++q) {
    // Vertex layout: x, y, z (floats) and 4 colour bytes; the quad's corners are vertices 0 and 2.
    const float* v0 = reinterpret_cast<const float*>(quads.data() + q * 64);
    const float* v2 = reinterpret_cast<const float*>(quads.data() + q * 64 + 32);
    // Text-local coordinates (u along the text, v downwards) with the baseline at v = 0.
    double u0 = shift + v0[0] * unit, u1 = shift + v2[0] * unit;
    double w0 = (v0[1] - kCapUnits) * unit, w1 = (v2[1] - kCapUnits) * unit;
    if (!vertical)
      rect(x + u0, y + w0, u1 - u0, w1 - w0, color);
    else  // rotated by −90° about (x, y): (u, v) → (x + v, y − u)
      rect(x + w0, y - u1, w1 - w0, u1 - u0, color);
  }
}

std::string encode_png(const Image& image) {
  SCPN_CHECK(image.width >= 1 && image.height >= 1 && image.rgb.size() == size_t(image.width) * image.height * 3,
             "encode_png: image ", image.width, "x", image.height, " with ", image.rgb.size(), " bytes");
  std::string bytes;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size_t(size));
  };
  SCPN_CHECK(stbi_write_png_to_func(append, &bytes, image.width, image.height, 3, image.rgb.data(), image.width * 3),
             "encode_png: stb_image_write failed");
  return bytes;
}

void write_png(const std::string& path, const Image& image) { write_text_atomic(path, encode_png(image)); }

// ---- line plot ---------------------------------------------------------------------------------------

namespace {

struct Range {
  double lo, hi;
  std::vector<double> ticks;
};

// The axis range: the given one, or the data's widened to include 0 and rounded out to ticks.
Range axis_range(double lo, double hi, const std::vector<double>& values) {
  if (lo < hi) return {lo, hi, nice_ticks(lo, hi, 5)};
  double dmin = 0, dmax = 0;
  for (double v : values)
    if (std::isfinite(v)) dmin = std::min(dmin, v), dmax = std::max(dmax, v);
  if (dmax <= dmin) dmax = dmin + 1;
  std::vector<double> ticks = nice_ticks(dmin, dmax, 5);
  double step = ticks.size() >= 2 ? ticks[1] - ticks[0] : (dmax - dmin);
  if (ticks.front() > dmin + 1e-12) ticks.insert(ticks.begin(), ticks.front() - step);
  if (ticks.back() < dmax - 1e-12) ticks.push_back(ticks.back() + step);
  return {ticks.front(), ticks.back(), ticks};
}

}  // namespace

void draw_line_plot(Canvas& canvas, const LinePlot& plot) {
  SCPN_CHECK(plot.width >= 400 && plot.height >= 240, "line plot '", plot.title, "': size ", plot.width, "x",
             plot.height, " is below 400x240");
  std::vector<double> all_x, all_y;
  for (const Series& s : plot.series) {
    SCPN_CHECK(s.x.size() == s.y.size() && (s.filled.empty() || s.filled.size() == s.x.size()), "line plot '",
               plot.title, "': series '", s.label, "' has ", s.x.size(), " x, ", s.y.size(), " y and ", s.filled.size(),
               " marker values");
    all_x.insert(all_x.end(), s.x.begin(), s.x.end());
    all_y.insert(all_y.end(), s.y.begin(), s.y.end());
  }
  Range xr = axis_range(plot.x_lo, plot.x_hi, all_x), yr = axis_range(plot.y_lo, plot.y_hi, all_y);
  const double left = 72, right = 250, top = 44, bottom = 58;
  const double px0 = left, px1 = plot.width - right, py0 = top, py1 = plot.height - bottom;
  auto sx = [&](double v) { return px0 + (v - xr.lo) / (xr.hi - xr.lo) * (px1 - px0); };
  auto sy = [&](double v) { return py1 - (v - yr.lo) / (yr.hi - yr.lo) * (py1 - py0); };

  canvas.text(px0, 26, plot.title, 15);
  // Grid and ticks.
  double xstep = xr.ticks.size() >= 2 ? xr.ticks[1] - xr.ticks[0] : 1, ystep = yr.ticks.size() >= 2 ? yr.ticks[1] - yr.ticks[0] : 1;
  for (double t : xr.ticks) {
    canvas.line(sx(t), py0, sx(t), py1, kGrid, 1, false, "grid");
    canvas.line(sx(t), py1, sx(t), py1 + 5, kAxis, 1, false, "tick");
    canvas.text(sx(t), py1 + 19, tick_label(t, xstep), 11, Canvas::Anchor::middle);
  }
  for (double t : yr.ticks) {
    canvas.line(px0, sy(t), px1, sy(t), kGrid, 1, false, "grid");
    canvas.line(px0 - 5, sy(t), px0, sy(t), kAxis, 1, false, "tick");
    canvas.text(px0 - 8, sy(t) + 4, tick_label(t, ystep), 11, Canvas::Anchor::end);
  }
  canvas.polyline({px0, px1, px1, px0, px0}, {py0, py0, py1, py1, py0}, kAxis, 1, false, "axes");
  canvas.text((px0 + px1) / 2, plot.height - 16, plot.x_label, 13, Canvas::Anchor::middle);
  canvas.text(22, (py0 + py1) / 2, plot.y_label, 13, Canvas::Anchor::middle, true);

  // Series: the line through the valid points, then their markers on top.
  for (const Series& s : plot.series) {
    std::vector<double> xs, ys;
    std::vector<bool> filled;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xs.push_back(sx(s.x[i]));
      ys.push_back(sy(s.y[i]));
      filled.push_back(s.filled.empty() || s.filled[i]);
    }
    canvas.polyline(xs, ys, s.color, s.markers ? 2 : 1.5, s.dashed, "series");
    if (s.markers)
      for (size_t i = 0; i < xs.size(); ++i) canvas.circle(xs[i], ys[i], 3.5, s.color, filled[i], "point");
  }

  // Legend, right of the plot area.
  double lx = px1 + 18, ly = py0 + 8;
  for (const Series& s : plot.series) {
    canvas.line(lx, ly, lx + 26, ly, s.color, 2, s.dashed, "legend");
    if (s.markers) canvas.circle(lx + 13, ly, 3.5, s.color, true, "legend");
    canvas.text(lx + 34, ly + 4, s.label, 11);
    ly += 20;
  }
  if (!plot.filled_note.empty()) {
    ly += 6;
    canvas.circle(lx + 13, ly, 3.5, kAxis, true, "legend");
    canvas.text(lx + 34, ly + 4, plot.filled_note, 11);
    ly += 20;
    canvas.circle(lx + 13, ly, 3.5, kAxis, false, "legend");
    canvas.text(lx + 34, ly + 4, plot.hollow_note, 11);
  }
}

std::string line_plot_svg(const LinePlot& plot) {
  SvgCanvas canvas(plot.width, plot.height);
  draw_line_plot(canvas, plot);
  return canvas.svg();
}

Image line_plot_image(const LinePlot& plot) {
  RasterCanvas canvas(plot.width, plot.height);
  draw_line_plot(canvas, plot);
  return canvas.image();
}

// ---- heatmap -----------------------------------------------------------------------------------------

namespace {

constexpr double kHeatLeft = 84, kHeatTop = 48, kHeatBottom = 58, kHeatRight = 110;

void check_heatmap(const Heatmap& map) {
  SCPN_CHECK(!map.values.empty() && map.values.size() == map.row_labels.size(), "heatmap '", map.title, "': ",
             map.values.size(), " rows of values, ", map.row_labels.size(), " row labels");
  for (const auto& row : map.values)
    SCPN_CHECK(!row.empty() && row.size() == map.col_labels.size(), "heatmap '", map.title, "': a row of ", row.size(),
               " values, ", map.col_labels.size(), " column labels");
  SCPN_CHECK(map.v_lo < map.v_hi, "heatmap '", map.title, "': colour range [", map.v_lo, ", ", map.v_hi, "] is empty");
  SCPN_CHECK(map.cell >= 8, "heatmap '", map.title, "': cell size ", map.cell, " is below 8 pixels");
}

}  // namespace

void heatmap_size(const Heatmap& map, int& width, int& height) {
  check_heatmap(map);
  width = int(kHeatLeft + map.col_labels.size() * map.cell + kHeatRight);
  height = int(kHeatTop + map.row_labels.size() * map.cell + kHeatBottom);
  width = std::max(width, 360);  // room for the title
}

void heatmap_cell(const Heatmap& map, size_t row, size_t col, double& x, double& y, Rgb& color) {
  x = kHeatLeft + double(col) * map.cell;
  y = kHeatTop + double(row) * map.cell;
  color = colormap((map.values.at(row).at(col) - map.v_lo) / (map.v_hi - map.v_lo));
}

void draw_heatmap(Canvas& canvas, const Heatmap& map) {
  check_heatmap(map);
  const size_t rows = map.row_labels.size(), cols = map.col_labels.size();
  const double c = map.cell, grid_right = kHeatLeft + cols * c, grid_bottom = kHeatTop + rows * c;
  canvas.text(kHeatLeft, 28, map.title, 15);
  const double value_size = std::min(11.0, c / 4.2);
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) {
      double x, y;
      Rgb color;
      heatmap_cell(map, i, j, x, y, color);
      canvas.rect(x, y, c, c, color, "cell");
      double v = map.values[i][j];
      if (c >= 28 && std::isfinite(v)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f", v);
        // Light text on the dark half of the scale, dark text on the light half.
        bool dark = (v - map.v_lo) / (map.v_hi - map.v_lo) < 0.55;
        canvas.text(x + c / 2, y + c / 2 + value_size * 0.36, buf, value_size, Canvas::Anchor::middle, false,
                    dark ? kWhite : kBlack);
      }
    }
  canvas.polyline({kHeatLeft, grid_right, grid_right, kHeatLeft, kHeatLeft},
                  {kHeatTop, kHeatTop, grid_bottom, grid_bottom, kHeatTop}, kAxis, 1, false, "axes");
  for (size_t i = 0; i < rows; ++i)
    canvas.text(kHeatLeft - 6, kHeatTop + (i + 0.5) * c + 4, map.row_labels[i], 11, Canvas::Anchor::end);
  for (size_t j = 0; j < cols; ++j)
    canvas.text(kHeatLeft + (j + 0.5) * c, grid_bottom + 16, map.col_labels[j], 11, Canvas::Anchor::middle);
  canvas.text((kHeatLeft + grid_right) / 2, grid_bottom + 42, map.x_label, 13, Canvas::Anchor::middle);
  canvas.text(20, (kHeatTop + grid_bottom) / 2, map.y_label, 13, Canvas::Anchor::middle, true);

  // Colour scale: a bar of thin strips from v_hi (top) to v_lo (bottom), with ticks.
  const double bar_x = grid_right + 22, bar_w = 16, bar_h = grid_bottom - kHeatTop;
  const int strips = 64;
  for (int k = 0; k < strips; ++k) {
    double t = 1.0 - (k + 0.5) / strips;
    canvas.rect(bar_x, kHeatTop + k * bar_h / strips, bar_w, bar_h / strips + 0.5, colormap(t), "scale");
  }
  canvas.polyline({bar_x, bar_x + bar_w, bar_x + bar_w, bar_x, bar_x},
                  {kHeatTop, kHeatTop, grid_bottom, grid_bottom, kHeatTop}, kAxis, 1);
  std::vector<double> ticks = nice_ticks(map.v_lo, map.v_hi, 5);
  double step = ticks.size() >= 2 ? ticks[1] - ticks[0] : map.v_hi - map.v_lo;
  for (double t : ticks) {
    double y = grid_bottom - (t - map.v_lo) / (map.v_hi - map.v_lo) * bar_h;
    canvas.line(bar_x + bar_w, y, bar_x + bar_w + 4, y, kAxis, 1, false, "tick");
    canvas.text(bar_x + bar_w + 7, y + 4, tick_label(t, step), 11);
  }
}

std::string heatmap_svg(const Heatmap& map) {
  int w, h;
  heatmap_size(map, w, h);
  SvgCanvas canvas(w, h);
  draw_heatmap(canvas, map);
  return canvas.svg();
}

Image heatmap_image(const Heatmap& map) {
  int w, h;
  heatmap_size(map, w, h);
  RasterCanvas canvas(w, h);
  draw_heatmap(canvas, map);
  return canvas.image();
}

void write_line_plot(const std::string& stem, const LinePlot& plot) {
  write_text_atomic(stem + ".svg", line_plot_svg(plot));
  write_png(stem + ".png", line_plot_image(plot));
}

void write_heatmap(const std::string& stem, const Heatmap& map) {
  write_text_atomic(stem + ".svg", heatmap_svg(map));
  write_png(stem + ".png", heatmap_image(map));
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace scpn::train::plots
