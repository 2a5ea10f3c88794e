// The report's pictures: the colour scale and ticks, heatmap and line plot as SVG (well-formed XML with the
// expected cells, points and sizes) and as PNG (decoded back with stb_image: size, cell colours, marker
// colours at the SVG's positions, text ink), and bad plot input with its message.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <stb/stb_image.h>

#include "kernels/common/error.h"
#include "tests/support/xml.h"
#include "train/report/plots.h"

using namespace scpn;
using namespace scpn::train::plots;

namespace {

using Element = test::XmlElement;
using test::parse_xml;
using test::with_class;

// PNG bytes decoded by stb_image (3 channels).
struct Decoded {
  int width = 0, height = 0;
  std::vector<unsigned char> rgb;
  Rgb at(int x, int y) const {
    const unsigned char* p = &rgb[(size_t(y) * width + x) * 3];
    return {p[0], p[1], p[2]};
  }
};

Decoded decode_png(const std::string& bytes) {
  Decoded d;
  int channels = 0;
  unsigned char* pixels = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(bytes.data()), int(bytes.size()),
                                                &d.width, &d.height, &channels, 3);
  REQUIRE(pixels != nullptr);
  d.rgb.assign(pixels, pixels + size_t(d.width) * d.height * 3);
  stbi_image_free(pixels);
  return d;
}

Heatmap sample_heatmap() {
  Heatmap h;
  h.title = "Compatibility: mAP & R@1 <test>";
  h.x_label = "gallery capacity";
  h.y_label = "query capacity";
  h.row_labels = {"1.00", "0.50", "0.25"};
  h.col_labels = {"1.00", "0.75", "0.50", "0.25"};
  h.values = {{0.9, 0.7, 0.5, 0.3}, {0.6, 0.8, 0.4, 0.2}, {0.1, 0.35, 0.55, std::nan("")}};
  h.v_lo = 0;
  h.v_hi = 1;
  return h;
}

LinePlot sample_plot() {
  LinePlot p;
  p.title = "mAP against capacity";
  p.x_label = "capacity";
  p.y_label = "mAP";
  p.x_lo = 0, p.x_hi = 1, p.y_lo = 0, p.y_hi = 1;
  p.filled_note = "trained";
  p.hollow_note = "re-estimated";
  p.series.push_back({"self", {0.2, 0.4, 0.6, 0.8, 1.0}, {0.3, 0.5, 0.6, 0.7, 0.75}, {true, false, true, false, true},
                      Rgb{31, 119, 180}, false});
  p.series.push_back({"cross", {0.2, 0.6, 1.0}, {0.15, std::nan(""), 0.72}, {}, Rgb{255, 127, 14}, true});
  return p;
}

double ink(const Image& image) {
  double sum = 0;
  for (uint8_t v : image.rgb) sum += 255 - v;
  return sum;
}

}  // namespace

TEST_CASE("colour scale, ticks and tick labels") {
  CHECK(colormap(0) == Rgb{68, 1, 84});
  CHECK(colormap(0.5) == Rgb{33, 145, 140});
  CHECK(colormap(1) == Rgb{253, 231, 37});
  CHECK(colormap(-3) == colormap(0));
  CHECK(colormap(7) == colormap(1));
  CHECK(colormap(std::nan("")) == Rgb{160, 160, 160});
  CHECK(colormap(1.0 / 16) == Rgb{70, 23, 104});  // halfway between the first two stops, rounded
  CHECK(hex({31, 119, 180}) == "#1f77b4");

  std::vector<double> t = nice_ticks(0, 1, 5);
  REQUIRE(t.size() == 6);
  for (size_t i = 0; i < t.size(); ++i) CHECK(t[i] == doctest::Approx(0.2 * double(i)));
  CHECK(nice_ticks(0, 1.808, 5) == std::vector<double>{0, 0.5, 1.0, 1.5});
  t = nice_ticks(0.23, 0.61, 4);  // step 0.1, from the first multiple inside the range
  REQUIRE(t.size() == 4);
  CHECK(t.front() == doctest::Approx(0.3));
  CHECK(t.back() == doctest::Approx(0.6));
  CHECK(tick_label(0.2, 0.2) == "0.2");
  CHECK(tick_label(15, 5) == "15");
  CHECK(tick_label(0.05, 0.05) == "0.05");
  CHECK(tick_label(-1e-17, 0.1) == "0.0");
}

TEST_CASE("heatmap: well-formed SVG with one cell per value, PNG with the cells' colours") {
  Heatmap h = sample_heatmap();
  int width = 0, height = 0;
  heatmap_size(h, width, height);

  std::vector<Element> svg = parse_xml(heatmap_svg(h));
  REQUIRE(svg.front().name == "svg");
  CHECK(svg.front().attrs.at("width") == std::to_string(width));
  CHECK(svg.front().attrs.at("height") == std::to_string(height));
  std::vector<Element> cells = with_class(svg, "cell");
  REQUIRE(cells.size() == 12);
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 4; ++j) {
      double x, y;
      Rgb color;
      heatmap_cell(h, i, j, x, y, color);
      const Element& cell = cells[i * 4 + j];  // drawn row by row
      CHECK(std::stod(cell.attrs.at("x")) == doctest::Approx(x));
      CHECK(std::stod(cell.attrs.at("y")) == doctest::Approx(y));
      CHECK(cell.attrs.at("fill") == hex(color));
    }
  CHECK(with_class(svg, "scale").size() == 64);
  // Cell values are printed, except the missing one; the title's special characters are escaped.
  size_t texts = 0;
  for (const Element& e : svg) texts += e.name == "text";
  CHECK(texts == 1 + 11 + 3 + 4 + 2 + 6);  // title, values, row and column labels, axis titles, scale ticks
  CHECK(heatmap_svg(h).find("mAP &amp; R@1 &lt;test&gt;") != std::string::npos);

  Decoded png = decode_png(encode_png(heatmap_image(h)));
  CHECK(png.width == width);
  CHECK(png.height == height);
  CHECK(png.at(0, 0) == Rgb{255, 255, 255});
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 4; ++j) {
      double x, y;
      Rgb color;
      heatmap_cell(h, i, j, x, y, color);
      CAPTURE(i);
      CAPTURE(j);
      // Near the corner, clear of the printed value: exactly the cell's colour.
      CHECK(png.at(int(x) + 3, int(y) + 3) == color);
      CHECK(png.at(int(x) + h.cell - 4, int(y) + h.cell - 4) == color);
    }
  double x, y;
  Rgb color;
  heatmap_cell(h, 0, 0, x, y, color);
  CHECK(color == colormap(0.9));
  heatmap_cell(h, 2, 3, x, y, color);
  CHECK(color == Rgb{160, 160, 160});  // NaN
}

TEST_CASE("line plot: SVG points and series, PNG markers where the SVG puts them") {
  LinePlot p = sample_plot();
  std::string svg_text = line_plot_svg(p);
  std::vector<Element> svg = parse_xml(svg_text);
  CHECK(svg.front().attrs.at("width") == "760");
  CHECK(svg.front().attrs.at("viewBox") == "0 0 760 460");
  std::vector<Element> points = with_class(svg, "point");
  REQUIRE(points.size() == 5 + 2);  // the NaN point is left out
  CHECK(with_class(svg, "series").size() == 2);
  CHECK(with_class(svg, "grid").size() == 12);  // six ticks per axis
  std::vector<Element> series = with_class(svg, "series");
  CHECK(series[1].attrs.at("stroke-dasharray") == "6 4");
  CHECK(series[0].attrs.count("stroke-dasharray") == 0);
  // Filled and hollow markers as asked.
  CHECK(points[0].attrs.at("fill") == "#1f77b4");
  CHECK(points[1].attrs.at("fill") == "#ffffff");
  CHECK(points[5].attrs.at("fill") == "#ff7f0e");
  // x = 0.2 and x = 1 lie on the first and last x ticks' grid lines.
  std::vector<Element> grid = with_class(svg, "grid");
  CHECK(std::stod(points[0].attrs.at("cx")) == doctest::Approx(std::stod(grid[1].attrs.at("x1"))));
  CHECK(std::stod(points[4].attrs.at("cx")) == doctest::Approx(std::stod(grid[5].attrs.at("x1"))));

  Image image = line_plot_image(p);
  Decoded png = decode_png(encode_png(image));
  CHECK(png.width == 760);
  CHECK(png.height == 460);
  for (size_t i = 0; i < points.size(); ++i) {
    CAPTURE(i);
    int cx = int(std::floor(std::stod(points[i].attrs.at("cx"))));
    int cy = int(std::floor(std::stod(points[i].attrs.at("cy"))));
    Rgb expected = points[i].attrs.at("fill") == "#ffffff" ? Rgb{255, 255, 255}
                   : i < 5                                 ? Rgb{31, 119, 180}
                                                           : Rgb{255, 127, 14};
    CHECK(png.at(cx, cy) == expected);
  }
}

TEST_CASE("PNG text: every glyph is drawn (no truncated quads), vertical text turns") {
  RasterCanvas one(200, 60), eight(200, 60), vertical(60, 200);
  one.text(10, 30, "8", 11);
  eight.text(10, 30, "88888888", 11);
  vertical.text(30, 190, "88888888", 11, Canvas::Anchor::start, true);
  CHECK(ink(one.image()) > 0);
  CHECK(ink(eight.image()) / ink(one.image()) == doctest::Approx(8).epsilon(0.02));
  CHECK(ink(vertical.image()) == doctest::Approx(ink(eight.image())).epsilon(0.02));
  // The vertical text stays in a narrow column: nothing drawn right of x = 40.
  bool clear = true;
  for (int y = 0; y < 200; ++y)
    for (int x = 41; x < 60; ++x) clear &= vertical.image().at(x, y) == Rgb{255, 255, 255};
  CHECK(clear);
}

TEST_CASE("bad plot input is refused with its message") {
  Heatmap h = sample_heatmap();
  h.col_labels.pop_back();
  CHECK_THROWS_WITH_AS(heatmap_svg(h), "heatmap 'Compatibility: mAP & R@1 <test>': a row of 4 values, 3 column labels", Error);
  h = sample_heatmap();
  h.v_lo = h.v_hi = 0.5;
  CHECK_THROWS_WITH_AS(heatmap_image(h), "heatmap 'Compatibility: mAP & R@1 <test>': colour range [0.5, 0.5] is empty",
                       Error);
  LinePlot p = sample_plot();
  p.series[1].y.pop_back();
  CHECK_THROWS_WITH_AS(line_plot_svg(p), "line plot 'mAP against capacity': series 'cross' has 3 x, 2 y and 0 marker values",
                       Error);
  p = sample_plot();
  p.width = 100;
  CHECK_THROWS_WITH_AS(line_plot_image(p), "line plot 'mAP against capacity': size 100x460 is below 400x240", Error);
  CHECK_THROWS_WITH_AS(encode_png(Image{2, 2, {}}), "encode_png: image 2x2 with 0 bytes", Error);
}
