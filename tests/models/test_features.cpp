// Retrieval features (models/features.h), the core of tools/extract_features: unit-norm rows equal to the
// model's forward feature normalised by hand, the same for any batch size, at capacities with their own or
// the parent's BatchNorm statistics; every bad input refused with its message.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "models/features.h"
#include "tests/support/check.h"

using namespace scpn;
using namespace scpn::models;

namespace {

ResNetConfig tiny_config() {
  ResNetConfig c = ResNetConfig::named("resnet18");
  c.stem = Stem::small;
  c.base_width = 4;
  c.feature_dim = 8;
  c.num_classes = 5;
  c.bn_capacities = {0.8, 0.5};
  return c;
}

void randomise(const ResNet& model, uint64_t seed) {
  Generator gen(seed);
  for (auto& [name, t] : model.state()) {
    bool var = name.find("running_var") != std::string::npos;
    t.copy_(uniform(t.shape(), var ? 0.5 : -1.0, var ? 1.5 : 1.0, gen, t.dtype()));
  }
}

// The oracle: forward on the whole batch, each row divided by its norm in plain loops.
Tensor normalised_forward_feature(const ResNet& model, const Tensor& images, const ForwardContext& ctx) {
  NoGradGuard no_grad;
  Tensor f = model.forward(images, ctx).feature;
  int64_t n = f.size(0), d = f.size(1);
  std::vector<double> v = f.to_vector();
  for (int64_t i = 0; i < n; ++i) {
    double sq = 0;
    for (int64_t j = 0; j < d; ++j) sq += v[size_t(i * d + j)] * v[size_t(i * d + j)];
    double norm = std::sqrt(sq);
    for (int64_t j = 0; j < d; ++j) v[size_t(i * d + j)] /= norm;
  }
  return from_vector(v, {n, d}, DType::f64);
}

}  // namespace

TEST_CASE("extract_features: L2-normalised forward features, any batch size, own and parent statistics") {
  Generator gen(1);
  ResNet model(tiny_config(), gen, DType::f64);
  randomise(model, 2);
  model.eval();
  Generator input_gen(3);
  Tensor images = uniform({7, 3, 10, 10}, -1.0, 1.0, input_gen, DType::f64);

  struct Case {
    double capacity;
    BnStatsMode mode;
  };
  for (Case c : {Case{1.0, BnStatsMode::own}, Case{0.8, BnStatsMode::own}, Case{0.5, BnStatsMode::own},
                 Case{0.5, BnStatsMode::parent}, Case{0.35, BnStatsMode::parent}}) {
    ForwardContext ctx{c.capacity, c.mode};
    Tensor want = normalised_forward_feature(model, images, ctx);
    for (int64_t batch : {1, 3, 7, 64}) {
      CAPTURE(c.capacity);
      CAPTURE(batch);
      Tensor got = extract_features(model, images, ctx, batch);
      REQUIRE(got.shape() == Shape{7, 8});
      CHECK(got.dtype() == DType::f64);
      CHECK_FALSE(got.requires_grad());
      CHECK_CLOSE(got, want, 1e-13, 1e-12);
      std::vector<double> v = got.to_vector();
      for (int64_t i = 0; i < 7; ++i) {
        double sq = 0;
        for (int64_t j = 0; j < 8; ++j) sq += v[size_t(i * 8 + j)] * v[size_t(i * 8 + j)];
        CHECK(std::sqrt(sq) == doctest::Approx(1.0).epsilon(1e-12));
      }
    }
  }
  // Own statistics really are used: they differ from the parent's here, and so do the features.
  ForwardContext own{0.5, BnStatsMode::own}, parent{0.5, BnStatsMode::parent};
  CHECK_FALSE(test::compare(extract_features(model, images, own), extract_features(model, images, parent), 1e-6, 0).ok);
}

TEST_CASE("extract_features converts float32 images to a float64 model's dtype") {
  Generator gen(1);
  ResNet model(tiny_config(), gen, DType::f64);
  model.eval();
  Generator input_gen(3);
  Tensor images32 = uniform({2, 3, 8, 8}, -1.0, 1.0, input_gen, DType::f32);
  Tensor got = extract_features(model, images32, {}, 2);
  CHECK(got.dtype() == DType::f64);
  CHECK_CLOSE(got, normalised_forward_feature(model, images32.to(DType::f64), {}), 1e-13, 1e-12);
}

TEST_CASE("extract_features refuses bad input with its message") {
  Generator gen(1);
  ResNet model(tiny_config(), gen);
  Generator input_gen(3);
  Tensor images = uniform({2, 3, 8, 8}, -1.0, 1.0, input_gen);
  CHECK_THROWS_WITH_AS(
      extract_features(model, images),
      "extract_features: the model is in training mode; call eval() first so BatchNorm uses running statistics", Error);
  model.eval();
  CHECK_THROWS_WITH_AS(extract_features(model, images, {}, 0), "extract_features: batch size 0 must be >= 1", Error);
  CHECK_THROWS_WITH_AS(extract_features(model, images, {0.0}), "extract_features: capacity 0 is outside (0, 1]", Error);
  CHECK_THROWS_WITH_AS(extract_features(model, images, {1.5}), "extract_features: capacity 1.5 is outside (0, 1]",
                       Error);
  CHECK_THROWS_WITH_AS(extract_features(model, zeros({2, 1, 8, 8})),
                       "extract_features: images [2, 1, 8, 8] have 1 channels, the model expects 3", Error);
  CHECK_THROWS_WITH_AS(extract_features(model, zeros({3, 8, 8})), "extract_features: images [3, 8, 8] must be [N, C, H, W]",
                       Error);
  CHECK_THROWS_WITH_AS(extract_features(model, zeros({2, 3, 8, 8}, DType::u8)),
                       "extract_features: images have dtype u8, a float dtype is expected", Error);
  CHECK_THROWS_WITH_AS(extract_features(model, images, {0.35}),
                       "extract_features: the model has no BatchNorm statistics for capacity 0.35 (it has: 0.80, "
                       "0.50); use bn_stats=parent or re-estimate them",
                       Error);
  CHECK(extract_features(model, images, {0.35, BnStatsMode::parent}).shape() == Shape{2, 8});
}
