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

}  // namespace scpn::test
