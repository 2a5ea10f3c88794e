#include "tests/support/golden.h"

#include <fstream>

namespace scpn::test {

nlohmann::json load_golden(const std::string& relative_path) {
  std::ifstream in(relative_path);
  if (!in) throw Error(cat(relative_path, ": cannot open the golden fixture (run the test from the repository root)"));
  return nlohmann::json::parse(in);
}

Tensor golden_tensor(const nlohmann::json& j, DType dtype) {
  Shape shape = j.at("shape").get<Shape>();
  std::vector<double> data = j.at("data").get<std::vector<double>>();
  return from_vector(data, shape, dtype);
}

models::ResNetConfig golden_model_config(const nlohmann::json& c, models::Granularity g,
                                         const std::vector<double>& bn_capacities) {
  models::ResNetConfig cfg;
  cfg.arch = "custom";
  cfg.block = c.at("arch") == "basic" ? models::BlockType::basic : models::BlockType::bottleneck;
  cfg.layers = c.at("layers").get<std::vector<int64_t>>();
  cfg.stem = models::parse_stem(c.at("stem"));
  cfg.in_channels = c.at("in_channels");
  cfg.base_width = c.at("base_width");
  cfg.feature_dim = c.at("feature_dim");
  cfg.num_classes = c.at("num_classes");
  cfg.granularity = g;
  cfg.bn_capacities = bn_capacities;
  return cfg;
}

}  // namespace scpn::test
